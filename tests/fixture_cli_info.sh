#!/usr/bin/env bash
# qv info / gen-weights / top-level CLI: exit codes and one-line errors on bad model folders.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
T="$QV_TMP"; rm -rf "$T"/*; mkdir -p "$T"
QV="$QV_BIN"
tiny="$QV_FIXTURES/models/tiny-qwen2vl"

out=$("$QV" info --model "$tiny"); ok test $? -eq 0
ok grep -q "hidden 32, 2 layers" <<<"$out"
ok grep -q "tensors      57" <<<"$out"
"$QV" info --model "$tiny" --json > "$T/info.json"; ok test $? -eq 0
ok grep -q '"tensors": 57' "$T/info.json"

# errors: exit 1, exactly one line on stderr, naming the problem
check_err() { # dir pattern
  "$QV" info --model "$1" > /dev/null 2> "$T/err"; rc=$?
  ok test $rc -eq 1
  ok test "$(wc -l < "$T/err")" -eq 1
  ok grep -q "$2" "$T/err"
}
check_err "$T/nowhere" "nowhere"
mkdir -p "$T/copy"; cp "$tiny"/*.json "$tiny"/*.safetensors "$T/copy/"
check_err_ok() { "$QV" info --model "$T/copy" > /dev/null 2>&1; ok test $? -eq 0; }
check_err_ok
# truncated shard
truncate -s 100000 "$T/copy/model-00002-of-00002.safetensors"
check_err "$T/copy" "model-00002-of-00002.safetensors"
cp "$tiny"/model-00002-of-00002.safetensors "$T/copy/"
# corrupt config
echo '{"hidden_size": "big"' > "$T/copy/config.json"
check_err "$T/copy" "config.json"
cp "$tiny/config.json" "$T/copy/"
# empty shard file
: > "$T/copy/model-00001-of-00002.safetensors"
check_err "$T/copy" "too short"

# gen-weights: usage errors exit 2; a bad config exits 1
"$QV" gen-weights --out "$T/x" 2>/dev/null; ok test $? -eq 2
echo '{' > "$T/bad.json"
"$QV" gen-weights --config "$T/bad.json" --out "$T/x" 2> "$T/err"; ok test $? -eq 1
ok grep -q "bad.json" "$T/err"

# top level
"$QV" --help > /dev/null; ok test $? -eq 0
"$QV" --version | grep -q '^qv '; ok test $? -eq 0
"$QV" no-such-command 2>/dev/null; ok test $? -eq 2
echo "$pass passed, $fail failed"
test $fail -eq 0
