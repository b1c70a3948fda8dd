#!/usr/bin/env bash
# fixture_demo.sh — `qv demo` from nothing: makes the demo checkpoint (tokenizer written by qv, formula
# weights), the clip (ffmpeg CLI; and, with ffmpeg off the PATH, the Y4M qv writes itself), runs ask and
# subtitles, says the answers are noise; `qv info` accepts the checkpoint; a second run reuses it and,
# greedy, writes the same captions.
set -u
QV=${QV_BIN:-build/qv}
T=${QV_TMP:-/tmp/qv-fixture-demo}
pass=0
fail=0
check() {
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; fi
}
rm -rf "$T/demo" "$T/demo2"
mkdir -p "$T"

start=$(date +%s)
"$QV" demo --dir "$T/demo" --max-tokens 6 --window 5 --threads 2 >"$T/out.txt" 2>"$T/err.txt"
rc=$?
check [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || cat "$T/err.txt" >&2
check grep -q "random" "$T/out.txt"
check grep -q '^\$ qv ask ' "$T/out.txt"
check grep -q '^\$ qv subtitles ' "$T/out.txt"
check [ -f "$T/demo/tokenizer.json" ]
check [ -f "$T/demo/demo.mp4" ]
check [ -f "$T/demo/demo.srt" ]
check grep -qx "00:00:00,000 --> 00:00:05,000" "$T/demo/demo.srt"
check grep -qx "00:00:05,000 --> 00:00:10,000" "$T/demo/demo.srt"
check [ ! -e "$T/demo/.demo-src" ]
"$QV" info --model "$T/demo" >"$T/info.txt" 2>&1
check [ $? -eq 0 ]
secs=$(($(date +%s) - start))
echo "first demo run: ${secs} s" >&2
check [ "$secs" -lt 300 ]  # minutes, even under sanitizers

# second run: reuses the model and clip; greedy decoding gives the same captions
cp "$T/demo/demo.srt" "$T/first.srt"
"$QV" demo --dir "$T/demo" --max-tokens 6 --window 5 --threads 2 >"$T/out2.txt" 2>"$T/err2.txt"
check [ $? -eq 0 ]
check grep -q "using the demo checkpoint" "$T/err2.txt"
check cmp -s "$T/first.srt" "$T/demo/demo.srt"

# no ffmpeg on the PATH: qv writes its own Y4M clip
env PATH=/nonexistent "$QV" demo --dir "$T/demo2" --max-tokens 4 --window 5 --threads 2 >"$T/out3.txt" 2>"$T/err3.txt"
check [ $? -eq 0 ]
check [ -f "$T/demo2/demo.y4m" ]
check grep -qx "00:00:05,000 --> 00:00:10,000" "$T/demo2/demo.srt"

# usage errors
"$QV" demo --model /elsewhere >/dev/null 2>&1
check [ $? -eq 2 ]
"$QV" demo --help >/dev/null
check [ $? -eq 0 ]

[ "$fail" -eq 0 ] && rm -rf "$T/demo" "$T/demo2"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
