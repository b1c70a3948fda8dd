#!/usr/bin/env bash
# cost_table.sh — the README's cost table: clip length -> frames -> visual tokens -> estimated and measured
# time of `qv ask`, for the default settings and two cheaper ones, and whether the estimate printed before
# the run (pipeline/cost.h) is within a factor of 1.5 of the measured time.
#
#   scripts/cost_table.sh MODEL_DIR [WORKDIR]
#   env: QV (default build/qv), SIZE (clip size, default 640x360), LENGTHS (seconds, default "10 30 60 300"),
#        MEASURE (the lengths also run for real, default "10"), TOKENS (generated per run, default 16),
#        THREADS (default: all CPUs), CHEAP_ONLY=1 (measure only the two cheaper settings: the defaults'
#        run is the longest, ~3000 visual tokens on the 10 s clip)
#
# Clips are testsrc2 (moving content) encoded with libx264 by the ffmpeg command line. Lengths not in
# MEASURE get the estimate only (`qv ask --dry-run`: no weights loaded, no frame decoded). Each measured
# run generates exactly TOKENS tokens (--no-stop), so the estimate's generation part is exact in count;
# "measured" is the run's own media + vision + prefill + generate seconds (the model load apart), with
# --no-cache, so a rerun of the script measures the work again instead of reading the cache.
# Prints a markdown table on stdout; exits 1 when a measured run is outside [estimate / 1.5, estimate * 1.5].
set -euo pipefail
model=${1:?usage: scripts/cost_table.sh MODEL_DIR [WORKDIR]}
work=${2:-/tmp/qv-cost}
QV=${QV:-build/qv}
SIZE=${SIZE:-640x360}
LENGTHS=${LENGTHS:-10 30 60 300}
MEASURE=${MEASURE:-10}
TOKENS=${TOKENS:-16}
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
mkdir -p "$work"
settings=("defaults|" "--max-pixels 100352|--max-pixels 100352" "--total-pixels 1605632|--total-pixels 1605632")
num() { sed -n "s/.*\"$1\": *\([-0-9.e]*\).*/\1/p" | head -1; }
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
echo "Machine: $cpu, $(nproc) CPUs; model $(basename "$model"); clips ${SIZE} testsrc2 H.264; $TOKENS tokens generated per run"
echo
echo "| clip | setting | frames | resolution | visual tokens | estimate | measured | measured / estimate |"
echo "|---|---|---|---|---|---|---|---|"
bad=0
for L in $LENGTHS; do
  clip="$work/clip_${L}s_${SIZE}.mp4"
  [ -s "$clip" ] || ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i "testsrc2=size=$SIZE:rate=30" \
      -t "$L" -c:v libx264 -preset veryfast -pix_fmt yuv420p "$clip"
  for s in "${settings[@]}"; do
    name=${s%%|*}; read -r -a opts <<< "${s#*|}"
    args=(ask --model "$model" "$clip" "What happens in this video?" --no-stop --max-tokens "$TOKENS" "${threads[@]}" "${opts[@]}")
    dry=$("$QV" "${args[@]}" --dry-run 2> /dev/null)
    frames=$(num frames <<< "$dry"); w=$(num width <<< "$dry"); h=$(num height <<< "$dry")
    tok=$(num visual_tokens <<< "$dry"); est=$(num estimate_s <<< "$dry")
    meas="-"; ratio="-"
    if [[ " $MEASURE " == *" $L "* ]] && ! { [ "${CHEAP_ONLY:-0}" = 1 ] && [ "$name" = defaults ]; }; then
      out=$("$QV" "${args[@]}" --json --quiet --no-cache)
      meas=$(python3 -c 'import json,sys; t=json.loads(sys.stdin.read())["timings"]; print("%.1f" % (t["decode_media_s"]+t["vision_s"]+t["prefill_s"]+t["generate_s"]))' <<< "$out")
      ratio=$(awk -v m="$meas" -v e="$est" 'BEGIN { printf "%.2f", m / e }')
      awk -v r="$ratio" 'BEGIN { exit !(r >= 1/1.5 && r <= 1.5) }' || bad=1
      meas="${meas} s"
    fi
    printf "| %s s | %s | %s | %sx%s | %s | %.1f s | %s | %s |\n" "$L" "$name" "$frames" "$w" "$h" "$tok" "$est" "$meas" "$ratio"
  done
done
[ $bad -eq 0 ] && echo && echo "every measured run is within 1.5x of its estimate"
exit $bad
