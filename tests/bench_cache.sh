#!/usr/bin/env bash
# bench_cache.sh — the speed of the cache (issue 11), for the README. Not run in CI.
#   tests/bench_cache.sh MODEL_DIR [qv options...]     e.g. --max-pixels 100352 --fps 1 --threads 2
# Makes a 30-second 720p clip (ffmpeg testsrc2, H.264), then on a fresh cache folder (after a warm-up on a
# small image that pages the weights in and fingerprints the model):
#   1. qv ask Q1            cold: decode + encode + prefill the whole prompt, entries written
#   2. qv ask Q2            warm: the video's prefix KV read from the folder, only Q2 prefilled
#   3. qv ask -q Q1 -q Q2 -q Q3 --no-cache   one process, the prefix kept in memory
#   4. three separate qv ask --no-cache runs (skip with QV_BENCH_SKIP_SEPARATE=1)
# Time to first token = wall clock from the start of the process to the first byte of the answer on
# stdout (model load included). The issue asks run 2 to be at least 20x shorter than run 1.
set -euo pipefail
MODEL=${1:?usage: tests/bench_cache.sh MODEL_DIR [qv options...]}
shift
QV=${QV_BIN:-$(dirname "$0")/../build/qv}
W=$(mktemp -d /tmp/qv-bench-cache.XXXXXX)
trap 'rm -rf "$W"' EXIT
V="$W/clip720.mp4"
ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30:duration=30 -c:v libx264 -preset veryfast \
  -pix_fmt yuv420p "$V"
C="$W/cache"
Q1="What is shown in this video?"; Q2="Which colours appear in the video?"; Q3="Is there any text on the screen?"
MT=${QV_BENCH_MAX_TOKENS:-16}
echo "model $MODEL, clip 30 s 1280x720, options: ${*:-(none)}, max tokens $MT"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"

# ttft LABEL qv-args... : prints "LABEL: first token after X s, done after Y s"
ttft() {
  local label=$1; shift
  local t0 t1 t2
  t0=$(date +%s.%N)
  { "$QV" "$@" 2> "$W/err" || echo "(qv failed: $(tail -1 "$W/err"))" >&2; } |
    { IFS= read -r -n1 _ || true; date +%s.%N > "$W/t1"; cat > /dev/null; }
  t2=$(date +%s.%N); t1=$(cat "$W/t1")
  printf '%-44s first token after %8.2f s, done after %8.2f s\n' "$label:" "$(echo "$t1 - $t0" | bc -l)" \
    "$(echo "$t2 - $t0" | bc -l)"
  echo "$t1 - $t0" | bc -l > "$W/last"
}
common=(ask --model "$MODEL" --max-tokens "$MT" "$@")
# warm-up on a small image: pages the weights in and makes the model fingerprint (once per model and
# cache folder), so that run 1 is not charged for either
ffmpeg -loglevel error -f lavfi -i testsrc2=size=64x64:rate=1:duration=1 -frames:v 1 "$W/warm.png"
t0=$(date +%s.%N)
"$QV" ask --model "$MODEL" --max-tokens 1 --cache-dir "$C" "$W/warm.png" "Hi" > /dev/null 2>&1 || true
printf '%-44s %8.2f s\n' "0. warm-up (weights paged in, fingerprint):" "$(echo "$(date +%s.%N) - $t0" | bc -l)"
ttft "1. ask Q1, empty cache" "${common[@]}" --cache-dir "$C" "$V" "$Q1"; a=$(cat "$W/last")
ttft "2. ask Q2, same cache" "${common[@]}" --cache-dir "$C" "$V" "$Q2"; b=$(cat "$W/last")
grep -h "prompt tokens" "$W/err" || true
printf 'time to first token, run 1 / run 2: %.1fx (the issue asks >= 20x)\n' "$(echo "$a / $b" | bc -l)"
"$QV" cache du --cache-dir "$C"
t0=$(date +%s.%N)
"$QV" "${common[@]}" --no-cache "$V" -q "$Q1" -q "$Q2" -q "$Q3" > /dev/null 2> "$W/err3"
t3=$(echo "$(date +%s.%N) - $t0" | bc -l)
printf '%-44s %8.2f s\n' "3. ask -q Q1 -q Q2 -q Q3 (no cache folder):" "$t3"
if [ "${QV_BENCH_SKIP_SEPARATE:-0}" != 1 ]; then
  t0=$(date +%s.%N)
  for q in "$Q1" "$Q2" "$Q3"; do "$QV" "${common[@]}" --no-cache "$V" "$q" > /dev/null 2>&1; done
  t4=$(echo "$(date +%s.%N) - $t0" | bc -l)
  printf '%-44s %8.2f s (%.2fx the one-process run)\n' "4. three separate asks (no cache):" "$t4" "$(echo "$t4 / $t3" | bc -l)"
fi
