#!/usr/bin/env bash
# The cost up front (issue 13), its plumbing on the tiny model: --dry-run reports the frames, size and
# visual tokens the real run then uses (ask with a video, an image, several inputs, pixel options; the
# windows of subtitles), reads config.json only (no weights), exits without running; a real run prints the
# one cost line before its work; scripts/cost_table.sh produces its table.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL (line ${BASH_LINENO[0]}): $*" >&2; fi; }
T="$QV_TMP"; rm -rf "${T:?}"/*; mkdir -p "$T"
QV="$QV_BIN"
tiny="$QV_FIXTURES/models/tiny-qwen2vl"
A="$QV_FIXTURES/media/sample_a.mp4"
C="$QV_FIXTURES/media/image_c.png"
export QV_MODEL="$tiny"
num() { sed -n "s/.*\"$1\": *\([-0-9.e]*\).*/\1/p" | head -1; }

# dry-run tokens == the real run's vision tokens, for several input kinds and options
same_tokens() { # args of ask (inputs, question, options)
  local dry real
  dry=$("$QV" ask "$@" --dry-run 2> "$T/dry.err"); ok test $? -eq 0
  ok grep -q "cost: .* visual tokens" "$T/dry.err"
  real=$("$QV" ask "$@" --max-tokens 1 --json --quiet)
  ok test -n "$(num visual_tokens <<<"$dry")"
  ok test "$(num visual_tokens <<<"$dry")" = "$(sed -n 's/.*"n_vision_tokens":\([0-9]*\).*/\1/p' <<<"$real")"
}
same_tokens "$A" "What happens?"
same_tokens "$C" "What is in the picture?"
same_tokens --video "$A" --image "$C" "Is the picture in the video?"
same_tokens "$A" "What happens?" --max-pixels 50176 --min-pixels 25088
same_tokens "$A" "What happens?" --fps 1 --start 0:01 --end 3
same_tokens "$A" "What happens?" --total-pixels 200704

# the frames and size are the stream's, as `qv preprocess` (which decodes) gives them
pre=$("$QV" preprocess "$A" | head -1)
dry=$("$QV" ask "$A" "What happens?" --dry-run 2>/dev/null)
ok test "$(num width <<<"$dry")" = "$(num resized_width <<<"$pre")"
ok test "$(num height <<<"$dry")" = "$(num resized_height <<<"$pre")"

# no weights needed: a folder holding config.json alone
mkdir -p "$T/cfgonly"; cp "$tiny/config.json" "$T/cfgonly/"
"$QV" ask --model "$T/cfgonly" "$A" "What happens?" --dry-run > "$T/d.json" 2>/dev/null; ok test $? -eq 0
ok test "$(num visual_tokens < "$T/d.json")" = "$(num visual_tokens <<<"$dry")"
# ... and nothing runs: no answer, an estimate > 0, the option that shrinks it named
ok test "$(wc -l < "$T/d.json")" -eq 1
ok awk -v e="$(num estimate_s < "$T/d.json")" 'BEGIN { exit !(e > 0) }'
"$QV" ask "$A" "What happens?" --dry-run 2>&1 >/dev/null | grep -q -- "--max-pixels"; ok test $? -eq 0

# subtitles: one run per window, the windows' frames summed (3 windows of 1 s: 4 frames each)
d=$("$QV" subtitles "$A" --window 1 --dry-run 2>/dev/null)
ok test "$(num runs <<<"$d")" = 3
ok test "$(num frames <<<"$d")" = 12
w1=$("$QV" ask "$A" "x y" --start 0 --end 1 --dry-run 2>/dev/null | num visual_tokens)
ok test "$(num visual_tokens <<<"$d")" = "$((3 * w1))"
d=$("$QV" summarize "$A" --detail --window 1 --dry-run 2>/dev/null)
ok test "$(num runs <<<"$d")" = 4

# a real run prints the cost line first, before any progress line (sample_a: 6 frames resized to 448x252,
# 432 video tokens, as in the golden tiny_video case of ../shared/fixtures)
"$QV" ask "$A" "What happens?" --max-tokens 2 2> "$T/run.err" > /dev/null; ok test $? -eq 0
ok grep -q "^qv ask: cost: 6 frames at 448x252 -> 432 visual tokens" <(head -1 "$T/run.err")
"$QV" ask "$A" "What happens?" --max-tokens 2 --quiet 2> "$T/run.err" > /dev/null
ok test ! -s "$T/run.err"

# the README table's script, on the tiny model (its ratios mean nothing at this size: plumbing only)
QV="$QV" LENGTHS="2" MEASURE="2" TOKENS=4 bash scripts/cost_table.sh "$tiny" "$T/ct" > "$T/table.md"
ok test "$(grep -c '^| 2 s |' "$T/table.md")" -eq 3
# 640x360 -> smart_resize (factor 28) 644x364 = 46x26 patches; 2 s at 2 fps = 4 frames = 2 pairs: 2*46*26/4
ok grep -q "defaults | 4 | 644x364 | 598 |" "$T/table.md"
echo "$pass passed, $fail failed"
test $fail -eq 0
