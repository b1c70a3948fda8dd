#!/usr/bin/env bash
# The cache through the CLI (issue 11): key tests (renamed file hits; another file with the same name, size
# and mtime misses; --fps, --max-pixels, --start miss; a new question hits vision and prefix), fault tests
# (flipped byte, truncated entry, other format version, read-only or unusable folder, a file-size limit, two
# processes racing: right answers, one warning, no crash), several questions per run, qv chat through a
# pipe against qv ask, and qv cache list|du|clear.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
T="$QV_TMP"; rm -rf "$T"/*; mkdir -p "$T"
QV="$QV_BIN"
M="$QV_FIXTURES/models/tiny-qwen2vl"
cp "$QV_FIXTURES/media/sample_a.mp4" "$T/a.mp4"
C="$T/cache"
Q1="What is happening?"; Q2="Which colour is the box?"; Q3="How many objects?"
# ask DIR VIDEO QUESTION [opts...] -> $T/out.json, $T/err; echo rc
ask() {
  local dir=$1 vid=$2 q=$3; shift 3
  "$QV" ask --model "$M" --base --max-tokens 6 --no-stop --json --cache-dir "$dir" "$@" "$vid" "$q" > "$T/out.json" 2> "$T/err"
}
ids() { grep -o '"generated_ids":\[[0-9,]*\]' "$T/out.json"; }
vis() { grep -o '"vision_inputs_cached":[0-9]*' "$T/out.json" | cut -d: -f2; }
pre() { grep -o '"prefix_tokens_reused":[0-9]*' "$T/out.json" | cut -d: -f2; }
warns() { grep -c "warning" "$T/err"; }
uncached() { "$QV" ask --model "$M" --base --max-tokens 6 --no-stop --json --no-cache "$@" > "$T/u.json" 2>/dev/null; grep -o '"generated_ids":\[[0-9,]*\]' "$T/u.json"; }

want1=$(uncached "$T/a.mp4" "$Q1"); ok test -n "$want1"
want2=$(uncached "$T/a.mp4" "$Q2"); ok test -n "$want2"

# --- keys ---
ask "$C" "$T/a.mp4" "$Q1"; ok test $? -eq 0; ok test "$(vis)" = 0; ok test "$(pre)" = 0; ok test "$(ids)" = "$want1"
mv "$T/a.mp4" "$T/b.mp4"                                    # renamed: the content is the key
ask "$C" "$T/b.mp4" "$Q1"; ok test $? -eq 0; ok test "$(vis)" = 1; ok test "$(pre)" -gt 400; ok test "$(ids)" = "$want1"
ask "$C" "$T/b.mp4" "$Q2"; ok test $? -eq 0; ok test "$(vis)" = 1; ok test "$(pre)" -gt 400; ok test "$(ids)" = "$want2"
ok test "$(grep -c warning "$T/err")" -eq 0
for opt in "--fps 1" "--max-pixels 40000" "--start 1" "--autorotate"; do  # every frame option is in the key
  ask "$C" "$T/b.mp4" "$Q1" $opt; ok test $? -eq 0; ok test "$(vis)" = 0; ok test "$(pre)" = 0
  ask "$C" "$T/b.mp4" "$Q1" $opt; ok test "$(vis)" = 1
done
# another file with the same name, size and mtime: one byte differs near the end of the stream
cp -p "$T/b.mp4" "$T/orig.mp4"
size=$(stat -c %s "$T/b.mp4")
printf '\x55' | dd of="$T/b.mp4" bs=1 seek=$((size - 3000)) conv=notrunc status=none
touch -r "$T/orig.mp4" "$T/b.mp4"
ok test "$(stat -c %s.%Y "$T/b.mp4")" = "$(stat -c %s.%Y "$T/orig.mp4")"
differ() { ! cmp -s "$1" "$2"; }
ok differ "$T/b.mp4" "$T/orig.mp4"
ask "$C" "$T/b.mp4" "$Q1"; ok test $? -eq 0; ok test "$(vis)" = 0; ok test "$(pre)" = 0
mv "$T/orig.mp4" "$T/a.mp4"; rm -f "$T/b.mp4"

# --- faults: each one warning, the right answer, then the entry is good again ---
V="$T/a.mp4"
rm -rf "$C"; ask "$C" "$V" "$Q1"
kent=$(ls "$C"/k-*.qvc); vent=$(ls "$C"/v-*.qvc)
ok test -f "$kent"; ok test -f "$vent"
flip() { local f=$1 off=$2; printf '\x7f' | dd of="$f" bs=1 seek="$off" conv=notrunc status=none; }
flip "$kent" $(( $(stat -c %s "$kent") - 500 ))             # a flipped payload byte
ask "$C" "$V" "$Q1"; ok test $? -eq 0; ok test "$(ids)" = "$want1"; ok test "$(warns)" -eq 1; ok test "$(pre)" = 0
ok grep -q "checksum" "$T/err"
ask "$C" "$V" "$Q1"; ok test "$(warns)" -eq 0; ok test "$(pre)" -gt 400      # rebuilt
truncate -s $(( $(stat -c %s "$vent") - 1 )) "$vent"; rm -f "$C"/k-*.qvc   # a truncated vision entry
ask "$C" "$V" "$Q1"; ok test $? -eq 0; ok test "$(ids)" = "$want1"; ok test "$(warns)" -eq 1; ok test "$(vis)" = 0
ok grep -q "truncated" "$T/err"
flip "$(ls "$C"/k-*.qvc)" 8                                  # another format version
ask "$C" "$V" "$Q1"; ok test $? -eq 0; ok test "$(ids)" = "$want1"; ok test "$(warns)" -eq 1; ok test "$(pre)" = 0
ok grep -q "format version" "$T/err"
: > "$T/notadir"                                             # a folder that cannot be made
ask "$T/notadir/c" "$V" "$Q1"; ok test $? -eq 0; ok test "$(ids)" = "$want1"; ok test "$(warns)" -eq 1
if [ "$(id -u)" != 0 ]; then                                 # read-only (root is not stopped by modes)
  mkdir -p "$T/ro"; chmod 555 "$T/ro"
  ask "$T/ro" "$V" "$Q1"; ok test $? -eq 0; ok test "$(ids)" = "$want1"; ok test "$(warns)" -eq 1
  chmod 755 "$T/ro"
fi
( ulimit -f 40; ask "$T/full" "$V" "$Q1" ); ok test $? -eq 0  # a full disk: files over 40 KiB fail
ok test "$(ids)" = "$want1"; ok test "$(warns)" -eq 1; ok grep -q "File too large" "$T/err"
ok test -z "$(ls "$T/full" | grep tmp)"
# two processes racing on the same entries
rm -rf "$T/race"
for k in 1 2; do
  "$QV" ask --model "$M" --base --max-tokens 6 --no-stop --json --cache-dir "$T/race" "$V" "$Q1" > "$T/r$k.json" 2> "$T/r$k.err" &
done
wait
for k in 1 2; do
  ok test "$(grep -o '"generated_ids":\[[0-9,]*\]' "$T/r$k.json")" = "$want1"; ok test "$(grep -c warning "$T/r$k.err")" -eq 0
done
ask "$T/race" "$V" "$Q1"; ok test "$(warns)" -eq 0; ok test "$(pre)" -gt 400; ok test "$(ids)" = "$want1"

# --- several questions per run: each as if asked alone ---
want3=$(uncached "$V" "$Q3")
"$QV" ask --model "$M" --base --max-tokens 6 --no-stop --json --cache-dir "$T/multi" "$V" -q "$Q1" -q "$Q2" -q "$Q3" > "$T/m.json" 2>/dev/null
ok test $? -eq 0
ok test "$(wc -l < "$T/m.json")" -eq 3
mapfile -t got < <(grep -o '"generated_ids":\[[0-9,]*\]' "$T/m.json")
ok test "${got[0]}" = "$want1"; ok test "${got[1]}" = "$want2"; ok test "${got[2]}" = "$want3"
ok test "$(sed -n 2p "$T/m.json" | grep -o '"prefix_tokens_reused":[0-9]*' | cut -d: -f2)" -gt 400
ok grep -q "\"question\":\"$Q2\"" "$T/m.json"
printf '%s\n\n%s\n' "$Q3" "$Q1" > "$T/qs.txt"
"$QV" ask --model "$M" --base --max-tokens 6 --no-stop --json --no-cache "$V" --questions "$T/qs.txt" > "$T/m2.json" 2>/dev/null
mapfile -t got < <(grep -o '"generated_ids":\[[0-9,]*\]' "$T/m2.json")
ok test "${#got[@]}" -eq 2; ok test "${got[0]}" = "$want3"; ok test "${got[1]}" = "$want1"

# --- qv chat through a pipe = three qv ask runs (base form) ---
for q in "$Q1" "$Q2" "$Q3"; do
  "$QV" ask --model "$M" --base --max-tokens 6 --no-cache "$V" "$q" 2>/dev/null
done > "$T/ask.txt"
printf '%s\n%s\n%s\n' "$Q1" "$Q2" "$Q3" | "$QV" chat --model "$M" --base --max-tokens 6 --no-cache "$V" > "$T/chat.txt" 2>/dev/null
ok test $? -eq 0
ok test "$(wc -l < "$T/chat.txt")" -eq 3
ok cmp -s "$T/ask.txt" "$T/chat.txt"
printf '%s\n%s\n' "$Q1" "$Q2" | "$QV" chat --model "$M" --max-tokens 4 --json --cache-dir "$T/chat" "$V" > "$T/chat.json" 2>/dev/null
ok test $? -eq 0; ok test "$(wc -l < "$T/chat.json")" -eq 2                 # chat form: a conversation
ok grep -q '"prefix_tokens_reused":0' <(sed -n 1p "$T/chat.json")
ok test "$(sed -n 2p "$T/chat.json" | grep -o '"prefix_tokens_reused":[0-9]*' | cut -d: -f2)" -gt 400

# --- qv subtitles: each window's embeddings cached; a second run encodes nothing, same captions ---
"$QV" subtitles --model "$M" --cache-dir "$T/sub" --window 1 --max-tokens 3 "$V" > "$T/s1.srt" 2>/dev/null; ok test $? -eq 0
"$QV" subtitles --model "$M" --cache-dir "$T/sub" --window 1 --max-tokens 3 --verbose "$V" > "$T/s2.srt" 2> "$T/s2.err"
ok test $? -eq 0; ok cmp -s "$T/s1.srt" "$T/s2.srt"
ok test "$(grep -c 'vision of .* from the cache' "$T/s2.err")" -eq 3
ok test "$(grep -c -- '-->' "$T/s2.srt")" -eq 3

# --- qv batch: jobs on one video share its prefix (in memory here, no folder) ---
printf '{"id": "a", "video": "%s", "task": "ask", "question": "%s", "max_tokens": 3}\n{"id": "b", "video": "%s", "task": "ask", "question": "%s", "max_tokens": 3}\n' \
  "$V" "$Q1" "$V" "$Q2" > "$T/jobs.jsonl"
"$QV" batch "$T/jobs.jsonl" -o "$T/bo" --model "$M" --no-cache --verbose > /dev/null 2> "$T/b.err"; ok test $? -eq 0
ok test "$(grep -c 'prompt prefix of .* from memory' "$T/b.err")" -eq 1

# --- qv cache list | du | clear ---
out=$("$QV" cache list --cache-dir "$C"); ok test $? -eq 0
ok grep -q "a.mp4" <<<"$out"; ok grep -q "tiny-qwen2vl" <<<"$out"; ok grep -q "fps 2" <<<"$out"
ok grep -q "vision" <<<"$out"; ok grep -q "prefix" <<<"$out"
out=$("$QV" cache du --cache-dir "$C"); ok grep -q "2 entries" <<<"$out"
out=$("$QV" cache clear --cache-dir "$C"); ok grep -q "deleted 2 entries" <<<"$out"
out=$("$QV" cache list --cache-dir "$C"); ok grep -q "empty" <<<"$out"
"$QV" cache frobnicate --cache-dir "$C" 2>/dev/null; ok test $? -eq 2
"$QV" ask --model "$M" --cache-max 12Q "$V" "$Q1" 2>/dev/null; ok test $? -eq 2
# a tiny cap keeps only the newest entry
"$QV" ask --model "$M" --base --max-tokens 2 --cache-dir "$C" --cache-max 60K "$V" "$Q1" > /dev/null 2>&1
ok test "$(ls "$C"/*.qvc | wc -l)" -eq 1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
