#!/usr/bin/env bash
# cmake --install puts qv, the layer libraries (libqv_core.a ... libqv_pipeline.a), the public headers and qv.pc under a prefix; samples/ask.c then builds
# against the installed copy with pkg-config alone and runs on the tiny model (issue 13).
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL (line ${BASH_LINENO[0]}): $*" >&2; fi; }
T="$QV_TMP"; rm -rf "${T:?}"/*; mkdir -p "$T"
B=$(dirname "$QV_BIN")
cmake --install "$B" --prefix "$T/prefix" > "$T/install.log" 2>&1; ok test $? -eq 0
ok test -x "$T/prefix/bin/qv"
ok test -f "$T/prefix/share/doc/qv/LICENSE"
pc=$(find "$T/prefix" -name qv.pc | head -1)
ok test -n "$pc"
lib=$(find "$T/prefix" -name libqv_pipeline.a | head -1)
ok test -n "$lib"
ok test -f "$T/prefix/include/qv/engine.h"
ok test -f "$T/prefix/include/qv/core.h"
export PKG_CONFIG_PATH="$(dirname "$pc")"
# the sample, compiled from outside the source tree: only the installed headers and library
cp samples/ask.c "$T/ask.c"
san=()   # a sanitizer build (QV_SANITIZE) installs an instrumented library: link the runtime too
grep -q '^QV_SANITIZE:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null && san=(-fsanitize=address,undefined)
(cd "$T" && cc -std=c11 -O1 "${san[@]}" ask.c $(pkg-config --cflags --libs qv) -o ask) 2> "$T/cc.log"; ok test $? -eq 0
"$T/ask" "$QV_FIXTURES/models/tiny-qwen2vl" "$QV_FIXTURES/media/sample_a.mp4" "What happens?" > "$T/out" 2> "$T/err"
ok test $? -eq 0
ok grep -q "^WEBVTT" "$T/out"
ok grep -q "prompt tokens" "$T/out"
# the installed binary runs
"$T/prefix/bin/qv" --version | grep -q '^qv '; ok test $? -eq 0
echo "$pass passed, $fail failed"
test $fail -eq 0
