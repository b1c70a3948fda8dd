#!/usr/bin/env bash
# Guardrails of the command line (issue 13), on the tiny model: a question that is a file name is refused
# with a hint (also per batch job); a closed or full output stops the run at once; --temperature 0 is
# greedy; ffmpeg-style times; "did you mean"; qv info checks the tokenizer; --help lists only commands
# that exist. (Subtitles and outlines that are never lost: tests/fixture_keep_work.sh.)
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL (line ${BASH_LINENO[0]}): $*" >&2; fi; }
T="$QV_TMP"; rm -rf "${T:?}"/*; mkdir -p "$T"
QV="$QV_BIN"
tiny="$QV_FIXTURES/models/tiny-qwen2vl"
A="$QV_FIXTURES/media/sample_a.mp4"
C="$QV_FIXTURES/media/image_c.png"
export QV_MODEL="$tiny"

# ---- the question must be a question: exit 2, one line, a hint ----
usage_err() { # pattern cmd...
  local pat="$1"; shift
  "$@" > "$T/out" 2> "$T/err"; local rc=$?
  ok test $rc -eq 2
  ok test "$(wc -l < "$T/err")" -eq 1
  ok grep -q -- "$pat" "$T/err"
  ok test ! -s "$T/out"
}
usage_err "is a file, not a question" "$QV" ask "$A"
usage_err "--video A --video B" "$QV" ask "$A" "$A"
usage_err "--video A --video B" "$QV" ask "$A" "$C"
usage_err "looks like a file name" "$QV" ask "$A" other_clip.mp4
usage_err "no question given" "$QV" ask --video "$A"
usage_err "is a file" "$QV" ask --video "$A" "$C"
usage_err "--prompt" "$QV" subtitles "$A" "What is written on the slide?"
usage_err "--summary-prompt" "$QV" summarize "$A" "Who wins?"
usage_err "qv batch" "$QV" subtitles "$A" "$A"
usage_err "not a file" "$QV" subtitles "What happens in the video?"
usage_err "-o FILE" "$QV" subtitles "$A" --resume
# a real question still runs
"$QV" ask "$A" "What happens?" --max-tokens 2 --quiet > /dev/null; ok test $? -eq 0

# batch: the same rules per job (the job fails with the reason, the others run)
cp "$A" "$T/v.mp4"
printf '%s\n' '{"id": "q1", "video": "v.mp4", "question": "v.mp4", "max_tokens": 2}' \
  '{"id": "q2", "video": "v.mp4", "question": "What happens?", "max_token": 2}' \
  '{"id": "q3", "video": "v.mp4", "question": "What happens?", "max_tokens": 2, "temperature": 0}' > "$T/jobs.jsonl"
"$QV" batch "$T/jobs.jsonl" -o "$T/bout" --quiet; ok test $? -eq 1
ok grep -q '"id": *"q1".*is a file name, not a question' "$T/bout/results.jsonl"
ok grep -q '"id": *"q2".*did you mean .*max_tokens' "$T/bout/results.jsonl"
ok grep -q '"id": *"q3".*"status": *"ok"' "$T/bout/results.jsonl"

# ---- a closed output stops the work ----
# 3000 tokens take several seconds on the tiny model; a reader that leaves after 20 bytes ends it at once
# (the reader leaves after its 20 bytes; the run stops within a few tokens of the failed write, whatever
# the machine's speed: fewer than 300 of the 3000 generated)
"$QV" ask "$A" "What happens?" --no-stop --max-tokens 3000 --quiet 2> "$T/err" | head -c 20 > /dev/null
rc=${PIPESTATUS[0]}
ok test $rc -eq 1
ok grep -q "closed the pipe" "$T/err"
ok test "$(wc -l < "$T/err")" -eq 1
n=$(sed -n 's/.*stopped after \([0-9]*\) generated tokens.*/\1/p' "$T/err")
ok test -n "$n"
ok test "${n:-3000}" -lt 300
"$QV" ask "$A" "What happens?" --no-stop --max-tokens 3000 --quiet > /dev/full 2> "$T/err"; rc=$?
ok test $rc -eq 1
ok grep -q "No space left" "$T/err"
"$QV" subtitles "$A" --window 1 --max-tokens 4 --quiet > /dev/full 2> "$T/err"; ok test $? -eq 1
ok grep -q "No space left" "$T/err"
"$QV" subtitles "$A" --window 0.5 --full-answer --max-tokens 400 --quiet 2> "$T/err" | head -c 10 > /dev/null
ok test "${PIPESTATUS[0]}" -eq 1
ok grep -q "closed the pipe" "$T/err"

# ---- --temperature 0 means greedy (whatever the seed) ----
g=$("$QV" ask "$A" "What happens?" --max-tokens 12 --no-stop --greedy --json --quiet | grep -o '"generated_ids":\[[^]]*\]')
for seed in 1 2; do
  t=$("$QV" ask "$A" "What happens?" --max-tokens 12 --no-stop --temperature 0 --seed $seed --json --quiet | grep -o '"generated_ids":\[[^]]*\]')
  ok test -n "$t"
  ok test "$t" = "$g"
done

# ---- times like ffmpeg's -ss, in every time option ----
"$QV" preprocess "$A" --start 1 --end 2.5 | head -1 > "$T/t1"
"$QV" preprocess "$A" --start 0:01 --end 00:00:02.500 | head -1 > "$T/t2"
ok test -s "$T/t1"; ok cmp -s "$T/t1" "$T/t2"
usage_err "MM:SS" "$QV" preprocess "$A" --start 1:75
usage_err "MM:SS" "$QV" ask "$A" "What?" --end 1.5:30
usage_err "MM:SS" "$QV" subtitles "$A" --window -1
"$QV" subtitles "$A" --window 0:01 --max-tokens 2 --quiet --format json > "$T/w.json"; ok test $? -eq 0
ok test "$(grep -c '"start_ts"' "$T/w.json")" -eq 3

# ---- did you mean ----
usage_err "did you mean --max-tokens?" "$QV" ask "$A" "What?" --max-token 5
usage_err "did you mean --window?" "$QV" subtitles "$A" --windwo 3
usage_err "did you mean --quick?" "$QV" bench kernels --quik
usage_err "did you mean --json?" "$QV" info --jsno
"$QV" sumarize "$A" 2> "$T/err"; ok test $? -eq 2
ok grep -q "did you mean 'summarize'" "$T/err"

# ---- qv info needs a usable tokenizer ----
mkdir -p "$T/m"; cp "$tiny"/*.json "$tiny"/*.txt "$tiny"/*.safetensors "$T/m/"
"$QV" info --model "$T/m" > /dev/null; ok test $? -eq 0
rm "$T/m/tokenizer.json" "$T/m/merges.txt"
"$QV" info --model "$T/m" > /dev/null 2> "$T/err"; ok test $? -eq 1
ok test "$(wc -l < "$T/err")" -eq 1
echo '{"model": ' > "$T/m/tokenizer.json"
"$QV" info --model "$T/m" > /dev/null 2> "$T/err"; ok test $? -eq 1
ok grep -q "tokenizer.json" "$T/err"

# ---- --help lists only commands that exist ----
cmds=$("$QV" --help | awk '/^commands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on=0}')
ok test "$(wc -w <<<"$cmds")" -ge 10
for c in $cmds; do "$QV" "$c" --help > "$T/h_$c" 2>&1; ok test $? -eq 0; done
for w in $( { "$QV" --help; for c in $cmds; do cat "$T/h_$c"; done; } | grep -oE '^ +(QV_MODEL=[^ ]+ )?qv [a-z-]+' | awk '{print $NF}' | sort -u); do
  ok grep -qx "$w" <<<"$cmds"
done

echo "$pass passed, $fail failed"
test $fail -eq 0
