#!/usr/bin/env bash
# Builds qv and runs its test suite with ctest (labels unit, fixture and slow by default).
#   QV_TEST_LABELS="unit|fixture"   choose labels (regex alternatives)
#   QV_SANITIZE=1                   ASan+UBSan Debug build in build-asan (default labels unit|fixture)
# The slow tests share one realdims-depth2 checkpoint (real 7B dimensions, 2+2 layers, 3.3 GB),
# generated once into the build folder by qv gen-weights and passed as QV_REALDIMS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures="$(cd ../shared/fixtures 2>/dev/null && pwd || true)"
if [ -z "$fixtures" ]; then
  echo "test.sh: ../shared/fixtures not found beside this checkout" >&2
  exit 1
fi
if [ "${QV_SANITIZE:-0}" = 1 ]; then
  dir=build-asan
  labels="${QV_TEST_LABELS:-unit|fixture}"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DQV_SANITIZE=ON -DQV_FIXTURES="$fixtures"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
else
  dir=build
  labels="${QV_TEST_LABELS:-unit|fixture|slow}"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DQV_FIXTURES="$fixtures"
fi
cmake --build "$dir" -j"$(nproc)"
if [[ "$labels" == *slow* ]]; then
  rd="$PWD/$dir/models/realdims-depth2"
  if ! "$dir/qv" info --model "$rd" > /dev/null 2>&1; then
    rm -rf "$rd"
    "$dir/qv" gen-weights --config "$fixtures/models/realdims-depth2/config.json" --out "$rd" \
      --tokenizer-from "$fixtures/models/tiny-qwen2vl" --quiet
  fi
  export QV_REALDIMS_DIR="$rd"
fi
cd "$dir"
ctest -L "^(${labels})\$" --output-on-failure -j2
