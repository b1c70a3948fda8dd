#!/usr/bin/env bash
# qv bench: the model benchmark runs end to end on the tiny checkpoint and prints every number the 7B
# report needs (load, page-in, prefill, decode, vision image and clip, peak RSS), also after --context N;
# usage errors exit 2.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
QV="$QV_BIN"
tiny="$QV_FIXTURES/models/tiny-qwen2vl"

for path in --fast --ref; do
  out=$("$QV" bench model --model "$tiny" --threads 2 --prompt-tokens 24 --gen 3 --clip-frames 4 $path 2>&1)
  ok test $? -eq 0
  for pat in "^load: " "^page-in: " "^prefill: 24 tokens in .* tokens/s" "^decode:  3 tokens in .* tokens/s" \
             "^vision:  image 448x448" "^vision:  clip 4 frames 448x448 (grid 2x32x32, 512 tokens)" "^peak RSS: "; do
    ok grep -q "$pat" <<<"$out"
  done
done
"$QV" bench model --model "$tiny" --no-vision --no-warm --prompt-tokens 8 --gen 0 > /dev/null 2>&1; ok test $? -eq 0
"$QV" bench model --model "$tiny" --gen -1 > /dev/null 2>&1; ok test $? -eq 2
# --context: prefill and decode after N positions already in the KV cache (past several attention tiles)
for path in --fast --ref; do
  out=$("$QV" bench model --model "$tiny" --no-vision --context 1300 --prompt-tokens 40 --gen 2 $path 2>&1)
  ok test $? -eq 0
  ok grep -q "^context: 1300 tokens of random keys and values" <<<"$out"
  ok grep -q "^prefill: 40 tokens after the context in .* tokens/s" <<<"$out"
  ok grep -q "^decode:  2 tokens in" <<<"$out"
done
"$QV" bench model --model "$tiny" --context -5 > /dev/null 2>&1; ok test $? -eq 2
"$QV" bench nosuch > /dev/null 2>&1; ok test $? -eq 2
"$QV" bench model --model "$QV_TMP/nowhere" > /dev/null 2>&1; ok test $? -eq 1
echo "$pass passed, $fail failed"
test $fail -eq 0
