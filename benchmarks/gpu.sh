#!/usr/bin/env bash
# The GPU halves of the extractor, attribution and feature-visualisation benchmarks (issues 3, 5,
# 6: the H100 targets), in one command on a machine whose python3 has jax with CUDA.
#
#   here:       bash benchmarks/gpu_carry.sh
#   on the GPU: bash benchmarks/gpu.sh [extractor] [attribution] [featurevis] [demo]
#               (default: all) with .gpu carried; logs go to $OUT (or benchmarks/gpu_out/).
# The demo part runs the main job (scripts/demo.sh, its five steps and its table of each step's
# seconds) with this python on the GPU, its workspace under /tmp (synthetic photos: only the log
# comes back).
# SMOKE=1 shrinks every size so the script can be checked on a CPU in a minute
# (PYTHON=.venv/bin/python SMOKE=1 bash benchmarks/gpu.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/gpu_out}
mkdir -p "$out"
export PYTHONPATH="$PWD:$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(extractor attribution featurevis demo)
if [ "${SMOKE:-0}" = 1 ]; then
  ext=(--mode gpu --gpu_batches 2 --ceiling_n 256 --repeats 1)
  att=(--batch 2 --naive_images 1 --repeats 1 --methods saliency,integrated_gradients,occlusion)
  fv=(--mode gpu --gpu_batches 2 --gpu_steps 2)
  demo_n=60
else
  ext=(--repeats 10)
  # the four methods with targets first, so a part cut off by its time limit has them
  att=(--batch 64 --naive_images 4 --repeats 5 --methods saliency,guided_backprop,integrated_gradients,occlusion,gradient_x_input,smoothgrad,deconvnet,cam,grad_cam,guided_grad_cam,deeplift)
  fv=()
  demo_n=430
fi
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$py" -c 'import jax, flax; print("jax", jax.__version__, "flax", flax.__version__, jax.devices())'
} 2>&1 | tee "$out/machine.txt"
# Each part's wall-clock limit in seconds (LIMIT_<part>), so one slow part cannot use up a lease:
# the parts print each result as it comes, and what a part printed before its limit stays in $out.
declare -A limit=([extractor]=${LIMIT_extractor:-120} [attribution]=${LIMIT_attribution:-290}
                  [featurevis]=${LIMIT_featurevis:-150} [demo]=${LIMIT_demo:-540})
rc=0
for part in "${parts[@]}"; do
  case $part in
    extractor) args=("${ext[@]}") ;;
    attribution) args=("${att[@]}") ;;
    featurevis) args=("${fv[@]}") ;;
    demo)
      ws=$(mktemp -d /tmp/gradejax-demo.XXXXXX)
      echo "== scripts/demo.sh (N=$demo_n, workspace $ws)" | tee "$out/demo.txt"
      PY=$py JAX_PLATFORMS=${JAX_PLATFORMS:-cuda} WS=$ws N=$demo_n timeout "${limit[demo]}" \
        bash scripts/demo.sh 2>&1 | grep --line-buffered -v '^[IW][0-9]\{4\} ' | tee -a "$out/demo.txt"
      status=${PIPESTATUS[0]}
      [ "$status" -eq 124 ] && echo "scripts/demo.sh stopped at its ${limit[demo]} s limit" | tee -a "$out/demo.txt"
      [ "$status" -ne 0 ] && { echo "scripts/demo.sh failed with $status"; rc=1; }
      rm -rf "$ws"
      continue ;;
    *) echo "unknown part $part (extractor, attribution, featurevis, demo)"; exit 2 ;;
  esac
  echo "== benchmarks/$part.py ${args[*]}" | tee "$out/$part.txt"
  timeout "${limit[$part]}" "$py" "benchmarks/$part.py" "${args[@]}" 2>&1 | grep --line-buffered -v '^[IW][0-9]\{4\} ' | tee -a "$out/$part.txt"
  status=${PIPESTATUS[0]}
  [ "$status" -eq 124 ] && echo "benchmarks/$part.py stopped at its ${limit[$part]} s limit" | tee -a "$out/$part.txt"
  [ "$status" -ne 0 ] && { echo "benchmarks/$part.py failed with $status"; rc=1; }
done
exit $rc
