#!/usr/bin/env bash
# bench_serve_ttft.sh — time to first token of two `qv serve` requests about the same video.
# The second request asks another question about the same video: with the engine's prefix cache (the
# video cache issue) it reuses the first one's prefix, so its time to first token is the question's
# prefill only. Prints, per request, the time to the first streamed text as the client sees it and the
# server's own stage timings (media decode, vision encoder, prefill, ttft).
#
#   scripts/bench_serve_ttft.sh MODEL_DIR VIDEO [-- extra qv serve options]
#   e.g. scripts/bench_serve_ttft.sh ~/Qwen2-VL-7B /work/shared/fixtures/media/sample_a.mp4 -- --threads 16
#
# Needs curl and jq. The server listens on a free loopback port and is killed at the end.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
MODEL=$1
VIDEO=$(realpath "$2")
shift 2
[ "${1:-}" = "--" ] && shift
QV=${QV_BIN:-$(dirname "$0")/../build/qv}
MAXTOK=${QV_BENCH_MAX_TOKENS:-16}
TMP=$(mktemp -d)
LOG=$TMP/serve.log
"$QV" serve --model "$MODEL" --port 0 --media-root "$(dirname "$VIDEO")" "$@" 2>"$LOG" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$TMP"' EXIT
URL=""
for _ in $(seq 3000); do # model load: up to 5 minutes
    URL=$(grep -o 'listening on http://[^ ]*' "$LOG" | head -1 | sed 's/listening on //') && [ -n "$URL" ] && break
    kill -0 $PID 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.1
done
[ -n "$URL" ] || { echo "the server did not start" >&2; exit 1; }
echo "server: $(head -1 "$LOG")"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) threads online"

ask() { # ask N QUESTION
    local body
    body=$(jq -n --arg v "file://$VIDEO" --arg q "$2" --argjson m "$MAXTOK" \
        '{messages: [{role: "user", content: [{type: "video_url", video_url: {url: $v}}, {type: "text", text: $q}]}],
          max_tokens: $m, stream: true, stream_options: {include_usage: true}}')
    local t0=$EPOCHREALTIME first="" line timings=""
    while IFS= read -r line; do
        if [ -z "$first" ] && [[ $line == *'"delta":{"content":"'[^\"]* ]]; then first=$EPOCHREALTIME; fi
        [[ $line == *'"usage"'* ]] && timings=${line#data: }
    done < <(curl -sN --max-time 3600 -H 'Content-Type: application/json' -d "$body" "$URL/v1/chat/completions")
    local t1=$EPOCHREALTIME
    [ -n "$first" ] || first=$t1
    printf 'request %s: time to first token %.3f s (client), total %.3f s; ' "$1" \
        "$(echo "$first - $t0" | bc -l)" "$(echo "$t1 - $t0" | bc -l)"
    echo "$timings" | jq -c '{prompt_tokens: .usage.prompt_tokens, vision_tokens: .usage.vision_tokens,
        cached_tokens: (.usage.prompt_tokens_details.cached_tokens // 0), server: .timings}'
}
ask 1 "What is happening in this video?"
ask 2 "What colours do you see in this video?"
curl -s "$URL/metrics" | grep -E '^qv_(cache_hits|cached_prompt|time_to_first)' || true
