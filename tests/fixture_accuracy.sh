#!/usr/bin/env bash
# qv bench accuracy (issue 16): the fast paths must keep the --ref path's answers at every position of
# a 512-token mixed text (tests/data/accuracy_text.txt), on the tiny fixture model (formula weights) and
# on a checkpoint with outlier channels made here by qv gen-weights --outliers. The outlier checkpoint is
# 256 wide (the tiny config widened): 5 outlier channels of 256 (2 %) are closer to a real model's few of
# 3584 than 5 of the tiny model's 32 (16 %, checked too). Floors sit under the measured values (comments)
# and at least as tight as issue 16's bounds for the fast path (99 %, 2e-2). Also: thread count changes no
# number; usage errors.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
QV="$QV_BIN"
tiny="$QV_FIXTURES/models/tiny-qwen2vl"
text="$QV_SRC/tests/data/accuracy_text.txt"

# field of one path in the --json line: num JSON PATH FIELD (top1 or rel_l2)
num() { jq -r --arg p "$2" --arg f "$3" '.paths[] | select(.path == $p) | .[$f]' <<<"$1"; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

# check NAME JSON PATH MIN_TOP1 MAX_REL_L2
check() {
  local t r
  t=$(num "$2" "$3" top1); r=$(num "$2" "$3" rel_l2)
  echo "$1 $3: top-1 $t, rel L2 $r"
  ok test -n "$t"
  ok ge "${t:-0}" "$4"
  ok le "${r:-1}" "$5"
}

# the tiny fixture: every flip is a near-tie (the reference's top-2 gap under 0.2 % of the logits' rms
# with a 151936-word vocabulary on 32 dims): measured fast 99.6 % / 8e-4 (the 12-bit products; bf16
# activations read 98.4 %), q8 96.5 % / 1.3e-2 (95.5 % / 2.2e-2 with int8 activations in the prefill),
# the same on the scalar, AVX2 and AVX-512 tables
# q4 51.6 % / 0.22: 4-bit weights (16 levels) on a model whose every position is a near-tie
j=$("$QV" bench accuracy --model "$tiny" --text "$text" --tokens 512 --q8 --q4 --json --threads 2)
ok test $? -eq 0
check tiny "$j" fast 0.99 2e-3
check tiny "$j" q8 0.955 2e-2
check tiny "$j" q4 0.48 0.25
j1=$("$QV" bench accuracy --model "$tiny" --text "$text" --tokens 512 --q8 --q4 --json --threads 1)
ok test "$j" = "$j1"

# a 256-wide checkpoint with outlier channels
cfg="$QV_TMP/small256/config.json"
mkdir -p "$QV_TMP/small256"
sed -e 's/"hidden_size": 32,/"hidden_size": 256,/g' -e 's/"intermediate_size": 96,/"intermediate_size": 768,/' \
    -e 's/"num_attention_heads": 2,/"num_attention_heads": 4,/' -e 's/"num_key_value_heads": 1,/"num_key_value_heads": 2,/' \
    "$tiny/config.json" | tr '\n' '\r' | sed -e 's/"mrope_section": \[\r *2,\r *3,\r *3\r *\]/"mrope_section": [8, 12, 12]/' | tr '\r' '\n' > "$cfg"
ok grep -q '"mrope_section": \[8, 12, 12\]' "$cfg"
"$QV" gen-weights --config "$cfg" --out "$QV_TMP/outl256" --tokenizer-from "$tiny" --outliers --quiet
ok test $? -eq 0
j=$("$QV" bench accuracy --model "$QV_TMP/outl256" --text "$text" --tokens 512 --q8 --q4 --json --threads 2)
ok test $? -eq 0
check outliers-256 "$j" fast 0.99 2e-3
check outliers-256 "$j" q8 0.955 2e-2    # measured 96.7 % / 1.1e-2 (95.1 % / 2.0e-2 with int8 activations, 91.2 % / 0.12
                                         # before q8 kept the norms' outlier columns)
check outliers-256 "$j" q4 0.66 0.15     # measured 69.9 % / 0.13

# the tiny config with --outliers (5 of 32 channels): measured fast 99.6 % / 8.5e-4, q8 96.5 % / 8.4e-3,
# q4 51.8 % / 0.22
"$QV" gen-weights --config "$tiny/config.json" --out "$QV_TMP/outl32" --tokenizer-from "$tiny" --outliers --quiet
ok test $? -eq 0
j=$("$QV" bench accuracy --model "$QV_TMP/outl32" --text "$text" --tokens 512 --q8 --q4 --json --threads 2)
ok test $? -eq 0
check outliers-32 "$j" fast 0.99 2e-3
check outliers-32 "$j" q8 0.955 2e-2
check outliers-32 "$j" q4 0.48 0.25

# usage
"$QV" bench accuracy --model "$tiny" > /dev/null 2>&1; ok test $? -eq 2
"$QV" bench accuracy --model "$tiny" --text "$text" --tokens 100000 > /dev/null 2>&1; ok test $? -eq 1
# --json stays JSON whatever the path holds (quotes, backslashes)
odd="$QV_TMP/a\"b\\c.txt"
cp "$text" "$odd"
j=$("$QV" bench accuracy --model "$tiny" --text "$odd" --tokens 16 --json --threads 2)
ok test "$(jq -r .text <<<"$j")" = "$odd"
echo "$pass passed, $fail failed"
test $fail -eq 0
