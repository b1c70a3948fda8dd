#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan+UBSan, build-fuzz/) and runs each one for
# SECONDS (default 30) on a working copy of its seed corpus (tests/fuzz/corpus/NAME, never modified).
#   bash scripts/fuzz.sh                 # every target, 30 s each (what CI runs)
#   bash scripts/fuzz.sh 3600 fuzz_jobs  # one target for an hour
# Prints executions per target; exits non-zero when a target finds a crash, a leak or UB (the input is
# saved as build-fuzz/crash-*; rerun it with build-fuzz/tests/fuzz/NAME FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true
cc="${QV_FUZZ_CC:-clang}"
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found (scripts/install-deps.sh installs clang)" >&2; exit 1; }
fixtures="$(cd ../shared/fixtures 2>/dev/null && pwd || echo "$PWD/../shared/fixtures")"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER="$cc" -DQV_FUZZ=ON -DQV_FIXTURES="$fixtures" >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
# the targets that read paths write each input to a file: keep those in memory when possible
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${targets[@]}"; do
  name="${t#fuzz_}"
  work="build-fuzz/corpus/$name"
  mkdir -p "$work"
  log="build-fuzz/$t.log"
  set +e
  (cd build-fuzz && nice "./tests/fuzz/$t" -max_total_time="$secs" -jobs=1 -workers=1 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$PWD/$t-" "corpus/$name" "../tests/fuzz/corpus/$name") >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  if [ $rc -ne 0 ]; then
    status=1
    echo "$t: FAILED after ${execs:-?} executions (log: $log)"
    grep -m3 -e 'ERROR:' -e 'runtime error' -e 'Test unit written' "$log" || tail -5 "$log"
  else
    echo "$t: ${execs:-?} executions in ${secs} s, no finding"
  fi
done
exit $status
