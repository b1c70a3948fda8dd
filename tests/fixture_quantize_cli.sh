#!/usr/bin/env bash
# Stored quantized weights (issue 14, pipeline/qstore.h): qv quantize writes weights/<fingerprint>.q8|q4 in
# the cache folder once (a second run finds it); --q8/--q4 runs map it and answer exactly as a run that
# quantizes at load; a truncated file, a file for another key and a foreign file are warned about, ignored
# and rewritten, never trusted; usage errors.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
T="$QV_TMP"; rm -rf "$T"/*; mkdir -p "$T"
QV="$QV_BIN"
M="$QV_FIXTURES/models/tiny-qwen2vl"
V="$QV_FIXTURES/media/sample_a.mp4"
C="$T/cache"
ask() {   # ask FORMAT OUT [opts] -> stdout in OUT, stderr in OUT.err
  local f=$1 out=$2; shift 2
  "$QV" ask --model "$M" --base --max-tokens 8 --no-stop --json "$f" "$@" "$V" "What is happening?" > "$out" 2> "$out.err"
}
answer() { jq -r '.answer // .text // .' "$1" 2>/dev/null; }

for f in q8 q4; do
  out=$("$QV" quantize --model "$M" --$f --cache-dir "$C" --threads 2); ok test $? -eq 0
  ok grep -q "quantized and stored" <<<"$out"
  file=$(ls "$C"/weights/*.$f 2>/dev/null | head -1)
  ok test -n "$file"
  out=$("$QV" quantize --model "$M" --$f --cache-dir "$C"); ok test $? -eq 0
  ok grep -q "already stored" <<<"$out"
  # fresh quantization (no cache) and the mapped file give the same answer, bit for bit
  ask --$f "$T/fresh.json" --no-cache; ok test $? -eq 0
  ask --$f "$T/mapped.json" --cache-dir "$C" -v; ok test $? -eq 0
  ok grep -q "weights mapped" "$T/mapped.json.err"
  ok test "$(answer "$T/fresh.json")" = "$(answer "$T/mapped.json")"
  ok test -n "$(answer "$T/fresh.json")"
  size=$(stat -c %s "$file")
  # truncated: ignored with a warning, quantized again and stored whole again; same answer
  truncate -s $((size - 4096)) "$file"
  ask --$f "$T/trunc.json" --cache-dir "$C"; ok test $? -eq 0
  ok grep -q "stored weights ignored" "$T/trunc.json.err"
  ok test "$(answer "$T/trunc.json")" = "$(answer "$T/fresh.json")"
  ok test "$(stat -c %s "$file")" -eq "$size"
  # another key (a byte of the key text changed): ignored, rewritten
  printf 'X' | dd of="$file" bs=1 seek=40 conv=notrunc 2>/dev/null
  ask --$f "$T/key.json" --cache-dir "$C"; ok test $? -eq 0
  ok grep -q "another model or format" "$T/key.json.err"
  ok test "$(answer "$T/key.json")" = "$(answer "$T/fresh.json")"
  # not a weights file at all
  head -c "$size" /dev/urandom > "$file"
  ask --$f "$T/junk.json" --cache-dir "$C"; ok test $? -eq 0
  ok grep -q "stored weights ignored" "$T/junk.json.err"
  ok test "$(answer "$T/junk.json")" = "$(answer "$T/fresh.json")"
  ask --$f "$T/again.json" --cache-dir "$C" -v; ok test $? -eq 0
  ok grep -q "weights mapped" "$T/again.json.err"
done
# the two formats differ, and their files sit side by side
ok test "$(ls "$C"/weights | wc -l)" -eq 2
# the cache's trimming and clearing leave the folder alone
"$QV" cache clear --cache-dir "$C" > /dev/null 2>&1
ok test "$(ls "$C"/weights | wc -l)" -eq 2

# usage
"$QV" quantize --model "$M" --cache-dir "$C" > /dev/null 2>&1; ok test $? -eq 2
"$QV" quantize --q4 --model "$T/nope" --cache-dir "$C" > /dev/null 2>&1; ok test $? -eq 1
"$QV" quantize --q4 --model "$M" --frobnicate > /dev/null 2>&1; ok test $? -eq 2
echo "$pass passed, $fail failed"
test $fail -eq 0
