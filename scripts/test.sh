#!/usr/bin/env bash
# Builds qv (Release) and runs the unit, fixture and slow tests with ctest.
# QV_TEST_LABELS overrides the label regex; QV_SANITIZE=1 builds with ASan+UBSan into build-asan.
set -euo pipefail
cd "$(dirname "$0")/.."
labels="${QV_TEST_LABELS:-unit|fixture|slow}"
if [ "${QV_SANITIZE:-0}" = 1 ]; then
  dir=build-asan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DQV_SANITIZE=ON
else
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
ctest -L "^(${labels})\$" --output-on-failure -j2
