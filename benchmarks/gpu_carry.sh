#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for benchmarks/gpu.sh on a lent GPU machine: the GPU machine has
# jax (CUDA), flax, optax, scikit-image and absl but not face_recognition_models, so the dlib
# network file (22 MB) travels as .gpu/site/face_recognition_models/models/<file>.
# Run here, after scripts/setup.sh:  bash benchmarks/gpu_carry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(.venv/bin/python -c 'from gradejax import paths; print(paths.dlib_model(paths.FACE_RECOGNITION))')
dst=.gpu/site/face_recognition_models
mkdir -p "$dst/models"
: > "$dst/__init__.py"  # a regular package, found before any installed copy on PYTHONPATH
cp "$src" "$dst/models/"
du -sh .gpu
