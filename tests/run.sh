#!/usr/bin/env bash
# Builds kvferry and runs the whole test suite through CTest.
#   ./tests/run.sh                 # the 'ci' preset (clang, libFuzzer smoke runs)
#   KVF_PRESET=asan ./tests/run.sh # any configure preset from CMakePresets.json
#   ./tests/run.sh -L lab          # extra arguments go to ctest
# Tests that need root or a kernel feature skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
preset="${KVF_PRESET:-ci}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
# Lab tests bring namespaces up; a killed earlier run may have left some.
if [ "$(id -u)" -eq 0 ]; then ./deploy/lab/lab.sh down >/dev/null 2>&1 || true; fi
cd "build/$preset"
exec ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@"
