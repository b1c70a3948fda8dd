#!/usr/bin/env bash
# unit_layers.sh — the build enforces the layers (CMakeLists.txt):
#   qv_core (src) <- qv_tokenizer, qv_vision, qv_lm <- qv_pipeline <- CLI, samples, tests
# 1. headers: with the include directories the build gives each folder's files (compile_commands.json),
#    a header of the same or a lower layer compiles and one of a sideways or higher layer does not;
# 2. symbols: every qv_* symbol a layer's static library leaves undefined is defined in the layers below.
set -u
build=$(dirname "${QV_BIN:?QV_BIN not set}")
db="$build/compile_commands.json"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*" >&2; }
[ -f "$db" ] || { echo "no $db"; echo "0 passed, 1 failed"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -I flags of the first file of folder $1 in the compile database
flags_of() {
  grep -B1 "\"file\": \"[^\"]*/$1/[^/\"]*\\.c\"" "$db" | grep '"command"' | head -1 |
    grep -oE -- '-I[^ ]+|-isystem [^ ]+' | tr '\n' ' '
}
try() {   # folder header -> 0 when '#include "header"' compiles with the folder's flags
  printf '#include "%s"\nint qv_layers_probe;\n' "$2" > "$tmp/p.c"
  cc $(flags_of "$1") -fsyntax-only "$tmp/p.c" 2>/dev/null
}
expect() {   # folder header yes|no
  if try "$1" "$2"; then r=yes; else r=no; fi
  if [ "$r" = "$3" ]; then ok; else bad "$1 including $2: compiles=$r, want $3"; fi
}
for f in src tokenizer vision lm pipeline; do
  [ -n "$(flags_of $f)" ] && ok || bad "no compile command for $f"
done
expect src core.h yes;        expect src tokenizer.h no;  expect src encoder.h no; expect src lm.h no; expect src engine.h no
expect tokenizer tokenizer.h yes; expect tokenizer kernels.h yes; expect tokenizer lm.h no; expect tokenizer encoder.h no; expect tokenizer engine.h no
expect vision encoder.h yes;  expect vision kernels.h yes; expect vision lm.h no;   expect vision tokenizer.h no; expect vision engine.h no
expect lm lm.h yes;           expect lm quant.h yes;       expect lm encoder.h no;  expect lm tokenizer.h no; expect lm engine.h no
expect pipeline engine.h yes; expect pipeline lm.h yes;    expect pipeline encoder.h yes; expect pipeline tokenizer.h yes; expect pipeline cli.h no

# symbols: defined / undefined qv_* names per library
lib() { echo "$build/libqv_$1.a"; }
defs() { for l in "$@"; do nm -g --defined-only "$(lib $l)" 2>/dev/null | awk '$3 ~ /^qv_/ {print $3}'; done | sort -u; }
undefs() { nm -g --undefined-only "$(lib $1)" 2>/dev/null | awk '$2 ~ /^qv_/ {print $2}' | sort -u; }
check_syms() {   # layer, then the layers it may use (itself included)
  local l=$1
  [ -f "$(lib $l)" ] || { bad "no $(lib $l)"; return; }
  local missing
  missing=$(comm -23 <(undefs $l) <(defs "$@"))
  if [ -z "$missing" ]; then ok; else bad "libqv_$l.a uses symbols of no layer below it: $(echo $missing | head -c 300)"; fi
}
check_syms core core
check_syms tokenizer tokenizer core
check_syms vision vision core
check_syms lm lm core
check_syms pipeline pipeline tokenizer vision lm core
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
