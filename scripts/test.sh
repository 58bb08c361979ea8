#!/usr/bin/env bash
# The whole test suite: sets up .venv if needed, then runs pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
# One worker per core (TEST_WORKERS overrides; 0 = no workers), each test file on one worker so
# that its module fixtures (a prepared folder, a tiny trained run) are built once: on the 2-core
# machine 14:04 in one process, 9:38 with two (2026-12-03, benchmarks/RESULTS.md).
WORKERS=${TEST_WORKERS:-auto}
if [ "$WORKERS" = 0 ]; then
  exec .venv/bin/python -m pytest -q "$@" tests
fi
exec .venv/bin/python -m pytest -q -n "$WORKERS" --dist loadfile "$@" tests
