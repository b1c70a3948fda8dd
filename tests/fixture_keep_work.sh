#!/usr/bin/env bash
# Never lose finished work (issue 13), on the tiny model: subtitles stream each cue to stdout as it is made;
# several -o outputs in one run equal single runs; a killed run keeps its finished cues in every output and
# --resume ends with the same files as an uninterrupted run (from JSON, or from SRT alone); other windows
# are refused; summarize --detail keeps its outline the same way.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL (line ${BASH_LINENO[0]}): $*" >&2; fi; }
T="$QV_TMP"; rm -rf "${T:?}"/*; mkdir -p "$T"
QV="$QV_BIN"
A="$QV_FIXTURES/media/sample_a.mp4"
export QV_MODEL="$QV_FIXTURES/models/tiny-qwen2vl"

# ---- subtitles: several outputs, streaming, kill keeps cues, --resume ----
sub=(subtitles "$A" --window 1 --full-answer --max-tokens 150 --quiet)
"$QV" "${sub[@]}" -o "$T/full.srt"; ok test $? -eq 0
"$QV" "${sub[@]}" -o "$T/full.json"; ok test $? -eq 0
"$QV" "${sub[@]}" -o "$T/m.srt" -o "$T/m.vtt" -o "$T/m.json"; ok test $? -eq 0
ok cmp -s "$T/m.srt" "$T/full.srt"
ok cmp -s "$T/m.json" "$T/full.json"
ok head -1 "$T/m.vtt" | grep -q WEBVTT
ok test "$(grep -c -- '-->' "$T/m.vtt")" -eq 3
# stdout gets the first cue while the later windows still run
"$QV" "${sub[@]}" > "$T/stream.srt" & pid=$!
seen_early=0
for _ in $(seq 6000); do
  if grep -q -- '-->' "$T/stream.srt" 2>/dev/null; then kill -0 $pid 2>/dev/null && seen_early=1; break; fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.02
done
wait $pid; ok test $? -eq 0
ok test $seen_early -eq 1
ok cmp -s "$T/stream.srt" "$T/full.srt"
# killed after the first window: the finished cue is in every output; --resume ends like the full run
"$QV" "${sub[@]}" -o "$T/k.srt" -o "$T/k.json" 2> "$T/err" & pid=$!
for _ in $(seq 6000); do grep -q '"segments"' "$T/k.json" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
kill -TERM $pid; wait $pid; rc=$?
ok test $rc -eq 130
n=$(grep -c -- '-->' "$T/k.srt"); ok test "$n" -ge 1; ok test "$n" -lt 3
ok grep -q -- "--resume" "$T/err"
"$QV" "${sub[@]}" -o "$T/k.srt" -o "$T/k.json" --resume; ok test $? -eq 0
ok cmp -s "$T/k.srt" "$T/full.srt"
ok cmp -s "$T/k.json" "$T/full.json"
# resuming from an SRT only (no JSON beside it), with a different window: refused
head -4 "$T/full.srt" > "$T/p.srt"
"$QV" "${sub[@]}" -o "$T/p.srt" --resume; ok test $? -eq 0
ok cmp -s "$T/p.srt" "$T/full.srt"
"$QV" subtitles "$A" --window 2 --quiet -o "$T/p.srt" --resume 2> "$T/err"; ok test $? -eq 1
ok grep -q "cannot resume" "$T/err"

# ---- summarize --detail keeps the outline made so far ----
summ=(summarize "$A" --detail --window 1 --full-answer --max-tokens 150 --quiet)
"$QV" "${summ[@]}" -o "$T/s.json" & pid=$!
for _ in $(seq 6000); do grep -q '"segments"' "$T/s.json" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
kill -INT $pid; wait $pid; ok test $? -eq 130
ok grep -q '"start_ts"' "$T/s.json"
ok test "$(grep -c '"summary"' "$T/s.json")" -eq 0
"$QV" "${summ[@]}" -o "$T/s.json" --resume; ok test $? -eq 0
"$QV" "${summ[@]}" -o "$T/s_full.json"; ok test $? -eq 0
ok cmp -s "$T/s.json" "$T/s_full.json"
ok grep -q '"summary"' "$T/s.json"

echo "$pass passed, $fail failed"
test $fail -eq 0
