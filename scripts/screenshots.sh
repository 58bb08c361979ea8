#!/usr/bin/env bash
# Screenshots of a run's pages with headless Chromium (Debian package `chromium`), to look at
# what a researcher sees: the attribution report (verdict first) and the feature visualisation.
#   bash scripts/screenshots.sh [RUN_DIR] [OUT_DIR]      (defaults: workspace/runs/demo, RUN/shots)
# Optional environment: WIDTH (1200), HEIGHT (3000), TB=1 also shoots TensorBoard's Scalars,
# Graphs and Projector dashboards (tensorboard served on 127.0.0.1 only, stopped afterwards).
# The screenshots show students' photos: they stay under the run's folder, like the pages.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-workspace/runs/demo}
OUT=${2:-$RUN/shots}
WIDTH=${WIDTH:-1200}
HEIGHT=${HEIGHT:-3000}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ]; then
  echo "no chromium: apt-get install -y chromium (skipping screenshots)" >&2
  exit 0
fi
mkdir -p "$OUT"
shoot() {  # url png [extra flags]
  "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars --mute-audio \
    --no-first-run --disable-extensions --window-size="$WIDTH,$HEIGHT" \
    --virtual-time-budget="${BUDGET:-4000}" --screenshot="$2" "$1" >/dev/null 2>&1
  echo "wrote $2"
}
for page in report featurevis; do
  f="$RUN/$page/index.html"
  if [ -f "$f" ]; then
    shoot "file://$(realpath "$f")" "$OUT/$page.png"
  else
    echo "no $f (skipped)"
  fi
done
if [ "${TB:-0}" = 1 ] && [ -d "$RUN/tb" ]; then
  PY=${PY:-.venv/bin/python}
  [ -x "$PY" ] || PY=python
  PORT=${PORT:-6006}
  "$PY" -m tensorboard.main --logdir "$RUN/tb" --host 127.0.0.1 --port "$PORT" \
    >"$OUT/tensorboard.log" 2>&1 &
  TB_PID=$!
  trap 'kill $TB_PID 2>/dev/null || true' EXIT
  for _ in $(seq 60); do
    curl -s "http://127.0.0.1:$PORT" >/dev/null 2>&1 && break
    sleep 1
  done
  for dash in scalars graphs projector text; do
    BUDGET=15000 shoot "http://127.0.0.1:$PORT/#$dash" "$OUT/tb_$dash.png"
  done
fi
