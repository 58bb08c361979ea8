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
# One persistent XLA compilation cache for this run, shared by the workers and the commands the
# tests start: about half of a tiny run's time is compiling programs another test already built
# (the test_evaluate demo run: 50 s cold, 25 s with the cache warm). Fresh per run, so every run
# starts cold as CI's clean clone does; JAX_COMPILATION_CACHE_DIR set by the caller is kept.
# The tests that count compiles are unchanged by it: jax.monitoring's backend_compile event
# wraps the cache lookup too, so a program read from the cache is still counted as built.
if [ -z "${JAX_COMPILATION_CACHE_DIR:-}" ]; then
  JAX_COMPILATION_CACHE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gradejax-xla-cache.XXXXXX")
  trap 'rm -rf "$JAX_COMPILATION_CACHE_DIR"' EXIT
fi
export JAX_COMPILATION_CACHE_DIR
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-0}
if [ "$WORKERS" = 0 ]; then
  .venv/bin/python -m pytest -q "$@" tests
else
  .venv/bin/python -m pytest -q -n "$WORKERS" --dist loadfile "$@" tests
fi
