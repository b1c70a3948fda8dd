#!/usr/bin/env bash
# fixture_serve.sh — `qv serve` on the tiny fixture model, driven with curl (jq reads the JSON):
# a text question, an image as a data: URL and a video under --media-root give the same greedy ids and
# text as `qv ask` (the video also the reference's greedy ids); a streamed answer parsed chunk by chunk
# equals the plain one; a second question about the video reuses its prefix; stop strings; the security
# rules (file:// outside the root, "..", a symlink escape, http(s), no/wrong API key on a non-loopback
# bind, an oversized body, 1000 malformed requests then /health); a client that leaves mid-stream is cancelled and the next request is served at once;
# a full queue answers 503 + Retry-After; SIGTERM lets the running request finish, then the server exits.
# Every server started here is killed on exit; every wait is bounded.
set -u
QV=${QV_BIN:-build/qv}
T=${QV_TMP:-/tmp/qv-fixture-serve}
FX=${QV_FIXTURES:-../shared/fixtures}
M=$FX/models/tiny-qwen2vl
pass=0
fail=0
check() {
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL (line ${BASH_LINENO[0]}): $*" >&2; fi
}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; }
trap cleanup EXIT
command -v jq >/dev/null && command -v curl >/dev/null || { echo "jq and curl are needed" >&2; exit 1; }

rm -rf "$T"
mkdir -p "$T/root/sub" "$T/tmp" "$T/outside"
export XDG_CACHE_HOME="$T/cache" # the engine's cache folder (qv serve and qv ask): a fresh one
cp "$FX/media/sample_a.mp4" "$T/root/sub/clip.mp4"
cp "$FX/media/image_c.png" "$T/outside/secret.png"
ln -s "$T/outside/secret.png" "$T/root/escape.png"      # points outside the root
ln -s "$T/root/sub/clip.mp4" "$T/root/inside.mp4"       # points inside: allowed
ROOT=$(cd "$T/root" && pwd -P)

# start_server LOG ARGS...: runs qv serve --port 0 in the background, sets PID and URL
start_server() {
    local log=$1
    shift
    : >"$log"
    TMPDIR="$T/tmp" "$QV" serve --model "$M" --port 0 --threads 2 "$@" 2>"$log" &
    PID=$!
    PIDS+=("$PID")
    URL=""
    for _ in $(seq 600); do
        URL=$(grep -o 'listening on http://[^ ]*' "$log" | head -1 | sed 's/listening on //')
        [ -n "$URL" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "server did not start:" >&2
    cat "$log" >&2
    return 1
}

# post FILE [curl args...]: POSTs FILE as JSON to $URL/v1/chat/completions, body -> $T/out.json, code on stdout
post() {
    local f=$1
    shift
    curl -s --max-time 120 -o "$T/out.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$f" "$@" "$URL/v1/chat/completions"
}
msg() { # msg FILE CONTENT-JSON [EXTRA-FIELDS]: a one-user-message request
    printf '{"messages":[{"role":"user","content":%s}]%s}' "$2" "${3:-}" >"$1"
}
eq() { [ "$1" = "$2" ] || { echo "  '$1' != '$2'" >&2; return 1; }; }

start_server "$T/s1.log" --media-root "$T/root" --queue 1 --max-body 4M --ctx-max 4096 || exit 1
check grep -q "chat prompts" "$T/s1.log"

# ---- health, models, text ----------------------------------------------------------------------
check eq "$(curl -s --max-time 10 "$URL/health" | jq -r .status)" ok
check eq "$(curl -s --max-time 10 "$URL/v1/models" | jq -r '.data[0].id')" tiny-qwen2vl
Q="What is happening in this video?"
msg "$T/text.json" '"Hello there"' ',"max_tokens":8,"return_token_ids":true'
check eq "$(post "$T/text.json")" 200
cp "$T/out.json" "$T/text.out"
"$QV" ask --model "$M" --threads 2 --quiet --json --max-tokens 8 "Hello there" >"$T/ask_text.json"
check eq "$(jq -c '.choices[0].token_ids' "$T/text.out")" "$(jq -c .generated_ids "$T/ask_text.json")"
check eq "$(jq -r '.choices[0].message.content' "$T/text.out")" "$(jq -r .text "$T/ask_text.json")"
check eq "$(jq -c .prompt_token_ids "$T/text.out")" "$(jq -c .prompt_ids "$T/ask_text.json")"
check eq "$(jq -r .object "$T/text.out")" chat.completion
check eq "$(jq -r '.choices[0].finish_reason' "$T/text.out")" length
check eq "$(jq -r '.usage.completion_tokens' "$T/text.out")" 8
check eq "$(jq -r '.usage.prompt_tokens' "$T/text.out")" "$(jq -r .n_prompt "$T/ask_text.json")"
check eq "$(jq -r '.usage.vision_tokens' "$T/text.out")" 0

# ---- a video under the media root: qv ask's ids and the reference's greedy ids --------------------
msg "$T/video.json" "[{\"type\":\"video_url\",\"video_url\":{\"url\":\"file://$ROOT/sub/clip.mp4\"}},{\"type\":\"text\",\"text\":\"$Q\"}]" \
    ',"max_tokens":24,"return_token_ids":true'
check eq "$(post "$T/video.json")" 200
cp "$T/out.json" "$T/video.out"
"$QV" ask --model "$M" --threads 2 --quiet --json --max-tokens 24 "$T/root/sub/clip.mp4" "$Q" >"$T/ask_video.json"
check eq "$(jq -c '.choices[0].token_ids' "$T/video.out")" "$(jq -c .generated_ids "$T/ask_video.json")"
check eq "$(jq -r '.choices[0].message.content' "$T/video.out")" "$(jq -r .text "$T/ask_video.json")"
check eq "$(jq -c '.choices[0].token_ids' "$T/video.out")" "$(jq -c .greedy_ids "$FX/golden/tiny_video.json")"
check eq "$(jq -c .prompt_token_ids "$T/video.out")" "$(jq -c .input_ids "$FX/golden/tiny_video.json")"
check eq "$(jq -r .usage.vision_tokens "$T/video.out")" 432
check eq "$(jq -r .usage.prompt_tokens "$T/video.out")" 460
check eq "$(jq -r .usage.prompt_tokens_details.cached_tokens "$T/video.out")" 0
# another question about the same video reuses the first one's prompt prefix (the engine's cache: up to
# the end of the vision block), with the same ids as an uncached qv ask
Q3="Which colours are there?"
msg "$T/video3.json" "[{\"type\":\"video_url\",\"video_url\":{\"url\":\"file://$ROOT/sub/clip.mp4\"}},{\"type\":\"text\",\"text\":\"$Q3\"}]" \
    ',"max_tokens":8,"return_token_ids":true'
check eq "$(post "$T/video3.json")" 200
cached=$(jq -r .usage.prompt_tokens_details.cached_tokens "$T/out.json")
check [ "$cached" -gt 432 ] && check [ "$cached" -lt "$(jq -r .usage.prompt_tokens "$T/out.json")" ]
"$QV" ask --model "$M" --threads 2 --quiet --json --no-cache --max-tokens 8 "$T/root/sub/clip.mp4" "$Q3" >"$T/ask_video3.json"
check eq "$(jq -c '.choices[0].token_ids' "$T/out.json")" "$(jq -c .generated_ids "$T/ask_video3.json")"
check grep -q '^qv_cache_hits_total{kind="prefix"} 1$' <<<"$(curl -s --max-time 10 "$URL/metrics")"
# a symlink that stays inside the root, and per-request sampling fields (fewer frames -> fewer tokens)
msg "$T/video2.json" "[{\"type\":\"video_url\",\"video_url\":{\"url\":\"file://$ROOT/inside.mp4\"}},{\"type\":\"text\",\"text\":\"$Q\"}]" \
    ',"max_tokens":2,"fps":1,"start":0.5,"end":2.5'
check eq "$(post "$T/video2.json")" 200
v2=$(jq -r .usage.vision_tokens "$T/out.json")
check [ "$v2" -gt 0 ] && check [ "$v2" -lt 432 ]

# ---- an image as a data: URL --------------------------------------------------------------------
B64=$(base64 -w0 "$FX/media/image_c.png")
msg "$T/image.json" "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,$B64\"}},{\"type\":\"text\",\"text\":\"Describe it.\"}]" \
    ',"max_tokens":12,"return_token_ids":true'
check eq "$(post "$T/image.json")" 200
cp "$T/out.json" "$T/image.out"
"$QV" ask --model "$M" --threads 2 --quiet --json --max-tokens 12 --image "$FX/media/image_c.png" "Describe it." >"$T/ask_image.json"
check eq "$(jq -c '.choices[0].token_ids' "$T/image.out")" "$(jq -c .generated_ids "$T/ask_image.json")"
check eq "$(jq -r '.choices[0].message.content' "$T/image.out")" "$(jq -r .text "$T/ask_image.json")"
check [ "$(jq -r .usage.vision_tokens "$T/image.out")" -gt 0 ]
check eq "$(find "$T/tmp" -type f | wc -l)" 0            # decoded data: URLs are gone after the request
check eq "$(stat -c %a "$(find "$T/tmp" -mindepth 1 -maxdepth 1 -type d | head -1)")" 700

# ---- multi-message chat prompts equal transformers' chat template (fixtures/golden/chat_template.json)
# with each vision block's pads collapsed to one, as the golden rendering writes them
collapse='reduce .[] as $x ([]; if ($x == 151655 or $x == 151656) and (.[-1] // -1) == $x then . else . + [$x] end)'
for c in 1 2; do
    jq --arg v "file://$ROOT/sub/clip.mp4" --arg i "data:image/png;base64,$B64" --argjson c $c \
        '{max_tokens: 1, return_token_ids: true, messages: [.[$c].messages[] | .content |= (if type == "array" then
          map(if .type == "video" then {type: "video_url", video_url: {url: $v}} elif .type == "image" then
          {type: "image_url", image_url: $i} else . end) else . end)]}' "$FX/golden/chat_template.json" >"$T/chat$c.json"
    check eq "$(post "$T/chat$c.json")" 200
    check eq "$(jq -c ".prompt_token_ids | $collapse" "$T/out.json")" \
        "$(jq -j ".[$c].rendered" "$FX/golden/chat_template.json" | "$QV" tokenize --model "$M" | jq -c .)"
done

# ---- streaming, parsed chunk by chunk ------------------------------------------------------------
jq '. + {stream: true, stream_options: {include_usage: true}} | del(.return_token_ids)' "$T/video.json" >"$T/video_s.json"
code=$(curl -sN --max-time 120 -o "$T/stream.txt" -w '%{http_code}' --data-binary "@$T/video_s.json" "$URL/v1/chat/completions")
check eq "$code" 200
n_events=0 bad=0 role="" text="" finish="" usage="" done_seen=0 after_done=0
while IFS= read -r line; do
    [ -z "$line" ] && continue
    case $line in
    "data: [DONE]") done_seen=1 ;;
    "data: "*)
        [ $done_seen = 1 ] && after_done=1
        ev=${line#data: }
        echo "$ev" | jq -e . >/dev/null 2>&1 || bad=$((bad + 1))
        n_events=$((n_events + 1))
        [ "$(echo "$ev" | jq -r .object)" = chat.completion.chunk ] || bad=$((bad + 1))
        r=$(echo "$ev" | jq -r '.choices[0].delta.role // empty')
        [ -n "$r" ] && role=$r
        text+=$(echo "$ev" | jq -j '.choices[0].delta.content // empty'; printf x)
        text=${text%x}
        f=$(echo "$ev" | jq -r '.choices[0].finish_reason // empty')
        [ -n "$f" ] && finish=$f
        u=$(echo "$ev" | jq -r '.usage.completion_tokens // empty')
        [ -n "$u" ] && usage=$u
        ;;
    *) bad=$((bad + 1)) ;;
    esac
done <"$T/stream.txt"
check eq "$bad" 0
check [ "$n_events" -ge 4 ]
check eq "$role" assistant
check eq "$text" "$(jq -r '.choices[0].message.content' "$T/video.out")"
check eq "$finish" "$(jq -r '.choices[0].finish_reason' "$T/video.out")"
check eq "$usage" 24
check eq "$done_seen" 1
check eq "$after_done" 0

# ---- stop strings: the answer ends before the first occurrence (stream and not) -------------------
full=$(jq -r '.choices[0].message.content' "$T/text.out")
stop=$(jq -r '.text' "$T/ask_text.json" | awk '{print $2}')   # the second word of the answer
prefix=${full%%"$stop"*}
jq --arg s "$stop" '. + {stop: [$s, "never-generated"]} | del(.return_token_ids)' "$T/text.json" >"$T/stop.json"
check eq "$(post "$T/stop.json")" 200
check eq "$(jq -r '.choices[0].message.content' "$T/out.json")" "$prefix"
check eq "$(jq -r '.choices[0].finish_reason' "$T/out.json")" stop
jq '. + {stream: true}' "$T/stop.json" >"$T/stop_s.json"
curl -sN --max-time 60 --data-binary "@$T/stop_s.json" "$URL/v1/chat/completions" >"$T/stop_stream.txt"
st=$(grep '^data: {' "$T/stop_stream.txt" | sed 's/^data: //' | jq -j '.choices[0].delta.content // empty'; printf x)
check eq "${st%x}" "$prefix"
check grep -q '"finish_reason":"stop"' "$T/stop_stream.txt"

# ---- media confinement ---------------------------------------------------------------------------
media_req() { # media_req KIND URL [curl args] -> code, body in out.json
    msg "$T/m.json" "[{\"type\":\"$1\",\"$1\":{\"url\":\"$2\"}},{\"type\":\"text\",\"text\":\"x\"}]" ',"max_tokens":1'
    post "$T/m.json" "${@:3}"
}
check eq "$(media_req image_url "file://$T/outside/secret.png")" 403           # outside the root
check eq "$(jq -r .error.code "$T/out.json")" path_not_allowed
check eq "$(media_req image_url "file://$ROOT/sub/../../outside/secret.png")" 403   # ".."
check eq "$(media_req image_url "file://$ROOT/../outside/secret.png")" 403
check eq "$(media_req image_url "file://$ROOT/escape.png")" 403               # symlink escape
check eq "$(media_req image_url "file://$ROOT/%2e%2e/outside/secret.png")" 403  # "..", %-escaped
check eq "$(media_req video_url "file://$ROOT/sub")" 400                       # not a regular file
check eq "$(media_req video_url "file://$ROOT/nope.mp4")" 400
check eq "$(media_req video_url "https://example.com/a.mp4")" 400              # never fetched
check eq "$(jq -r .error.code "$T/out.json")" url_not_supported
check eq "$(media_req video_url "http://127.0.0.1:1/a.mp4")" 400
check eq "$(media_req video_url "ftp://x/a.mp4")" 400
check jq -e '.error.message and .error.type' "$T/out.json" >/dev/null

# ---- limits: body size, prompt over the context, too many media, absurd numbers -------------------
head -c 5000000 /dev/zero | tr '\0' ' ' >"$T/big.json"
check eq "$(post "$T/big.json")" 413
check eq "$(jq -r .error.code "$T/out.json")" request_too_large
jq '.max_tokens = 4000' "$T/video.json" >"$T/ctx.json"                         # 460 + 4000 > 4096
check eq "$(post "$T/ctx.json")" 400
check eq "$(jq -r .error.code "$T/out.json")" context_length_exceeded
parts=$(for i in $(seq 17); do printf '{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}},' "$B64"; done)
msg "$T/many.json" "[${parts}{\"type\":\"text\",\"text\":\"x\"}]"
check eq "$(post "$T/many.json")" 400
check grep -q "too many images" "$T/out.json"
check eq "$(find "$T/tmp" -type f | wc -l)" 0

# ---- 1000 malformed requests in a row, then /health ----------------------------------------------
mkdir -p "$T/bad"
i=0
for b in '{' '[]' '{}' '{"messages":"hi"}' '{"messages":[]}' '{"messages":[{"role":"wizard","content":"hi"}]}' \
    '{"messages":[{"role":"user","content":42}]}' '{"messages":[{"role":"user"}]}' '{"messages":[{"content":"hi"}]}' \
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":-5}' \
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1e300}' \
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2.5}' \
    '{"messages":[{"role":"user","content":"hi"}],"temperature":"hot"}' \
    '{"messages":[{"role":"user","content":"hi"}],"top_p":7}' '{"messages":[{"role":"user","content":"hi"}],"seed":"x"}' \
    '{"messages":[{"role":"user","content":"hi"}],"stop":[1,2]}' '{"messages":[{"role":"user","content":"hi"}],"n":3}' \
    '{"messages":[{"role":"user","content":"hi"}],"fps":0}' '{"messages":[{"role":"user","content":"hi"}],"start":5,"end":2}' \
    '{"messages":[{"role":"user","content":"hi"}],"max_pixels":1e30}' \
    '{"messages":[{"role":"user","content":"hi"}],"stream":"yes"}' \
    '{"messages":[{"role":"user","content":[{"type":"audio","x":1}]}]}' \
    '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,!!!!"}}]}]}' \
    '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]}' \
    '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,aGVsbG8="}}]}]}' \
    '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}' \
    '{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,aGVsbG8="}}]},{"role":"user","content":"hi"}]}' \
    '{"messages":[{"role":"user","content":"a {{video:/etc/passwd}} b"}]}' \
    '{"messages":[{"role":"user","content":[{"type":"text","text":"{{vid"},{"type":"text","text":"eo:/etc/passwd}}"}]}]}' \
    '{"messages":[{"role":"user","content":"<|image_pad|>"}]}' '{"messages":[{"role":"assistant","content":"hi"}]}' \
    "$(printf '%0.s[' $(seq 3000))" "$(head -c 300 /dev/urandom | base64 -w0)" ''; do
    printf '%s' "$b" >"$T/bad/$i.json"
    i=$((i + 1))
done
nb=$i
: >"$T/bad.cfg"
for k in $(seq 0 999); do
    [ "$k" -gt 0 ] && echo next >>"$T/bad.cfg"
    printf 'url = "%s/v1/chat/completions"\ndata-binary = "@%s/bad/%d.json"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
        "$URL" "$T" $((k % nb)) >>"$T/bad.cfg"
done
curl -s --max-time 300 -K "$T/bad.cfg" >"$T/bad_codes.txt"
check eq "$(wc -l <"$T/bad_codes.txt")" 1000
check eq "$(grep -cv '^4[0-9][0-9]$' "$T/bad_codes.txt")" 0
for k in $(seq 0 $((nb - 1))); do # each one answers an OpenAI error object
    c=$(curl -s --max-time 60 -o "$T/bad_out.json" -w '%{http_code}' --data-binary "@$T/bad/$k.json" "$URL/v1/chat/completions")
    [ "${c:0:1}" = 4 ] && jq -e '.error.message | length > 0' "$T/bad_out.json" >/dev/null || { echo "bad $k: $c $(cat "$T/bad/$k.json" | head -c 80)" >&2; fail=$((fail + 1)); }
done
msg "$T/notimg.json" '[{"type":"image_url","image_url":{"url":"data:image/png;base64,aGVsbG8="}}]'
check eq "$(post "$T/notimg.json")" 400                  # not an image: the engine's error, no temp path in it
check grep -q 'data: URL #1' "$T/out.json"
check eq "$(grep -c 'qv-serve-' "$T/out.json")" 0
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$URL/health")" 200
check kill -0 "$PID"
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$URL/nope")" 404
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$URL/v1/chat/completions")" 405
check eq "$(find "$T/tmp" -type f | wc -l)" 0

# ---- a client that leaves mid-stream: cancelled, and the next request is served at once ------------
msg "$T/long.json" '"Hello there"' ',"max_tokens":4000,"stream":true'
curl -sN --max-time 60 --data-binary "@$T/long.json" "$URL/v1/chat/completions" | head -n 6 >"$T/head.txt"
check eq "$(grep -c '^data: ' "$T/head.txt")" 3
t0=$(date +%s.%N)
check eq "$(post "$T/text.json")" 200
t1=$(date +%s.%N)
check awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 5) }'   # 4000 tokens would take ~20 s here
check eq "$(jq -c '.choices[0].token_ids' "$T/out.json")" "$(jq -c '.choices[0].token_ids' "$T/text.out")"
metrics=$(curl -s --max-time 10 "$URL/metrics")
check eq "$(echo "$metrics" | awk '$1 == "qv_chat_cancelled_total" {print $2}')" 1
# the same for a plain (not streamed) request whose client times out
msg "$T/long2.json" '"Hello there"' ',"max_tokens":4000'
curl -s --max-time 1 --data-binary "@$T/long2.json" "$URL/v1/chat/completions" >/dev/null
check eq "$(post "$T/text.json")" 200
metrics=$(curl -s --max-time 10 "$URL/metrics")
check eq "$(echo "$metrics" | awk '$1 == "qv_chat_cancelled_total" {print $2}')" 2
check grep -q '^qv_tokens_total{kind="vision"} [1-9]' <<<"$metrics"
check grep -q '^qv_stage_seconds_total{stage="prefill"}' <<<"$metrics"
check grep -q '^qv_queue_length 0' <<<"$metrics"
check grep -q '^qv_http_requests_total{code="400"}' <<<"$metrics"

# ---- a full queue (--queue 1): 503 with Retry-After -----------------------------------------------
curl -s --max-time 60 --data-binary "@$T/long2.json" "$URL/v1/chat/completions" >/dev/null &
C1=$!
for _ in $(seq 100); do [ "$(curl -s --max-time 5 "$URL/health" | jq -r .running)" = 1 ] && break; sleep 0.1; done
curl -s --max-time 60 --data-binary "@$T/long2.json" "$URL/v1/chat/completions" >/dev/null &
C2=$!
for _ in $(seq 100); do [ "$(curl -s --max-time 5 "$URL/health" | jq -r .queue)" = 1 ] && break; sleep 0.1; done
code=$(curl -s --max-time 10 -D "$T/hdr.txt" -o "$T/out.json" -w '%{http_code}' --data-binary "@$T/text.json" "$URL/v1/chat/completions")
check eq "$code" 503
check grep -qi '^Retry-After: [0-9]' "$T/hdr.txt"
check eq "$(jq -r .error.code "$T/out.json")" queue_full
kill "$C1" "$C2" 2>/dev/null
wait "$C1" "$C2" 2>/dev/null
for _ in $(seq 100); do h=$(curl -s --max-time 5 "$URL/health"); [ "$(echo "$h" | jq -r '.queue + .running')" = 0 ] && break; sleep 0.1; done
check eq "$(post "$T/text.json")" 200

# ---- SIGTERM: the running request finishes, then the server exits --------------------------------
msg "$T/mid.json" '"Hello there"' ',"max_tokens":300'
curl -s --max-time 120 -o "$T/term.json" -w '%{http_code}' --data-binary "@$T/mid.json" "$URL/v1/chat/completions" >"$T/term_code.txt" &
C3=$!
for _ in $(seq 100); do [ "$(curl -s --max-time 5 "$URL/health" | jq -r .running)" = 1 ] && break; sleep 0.05; done
kill -TERM "$PID"
wait "$C3"
check eq "$(cat "$T/term_code.txt")" 200
check eq "$(jq -r .usage.completion_tokens "$T/term.json")" 300
for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
check eq "$(kill -0 "$PID" 2>/dev/null && echo running || echo exited)" exited
wait "$PID"
check eq "$?" 0
check eq "$(find "$T/tmp" -mindepth 1 | wc -l)" 0       # the private temp folder is removed

# ---- base form (--base): the same ids as qv ask --base --------------------------------------------
start_server "$T/s4.log" --base || exit 1
check grep -q "base prompts" "$T/s4.log"
check eq "$(post "$T/image.json")" 200
"$QV" ask --model "$M" --base --threads 2 --quiet --json --max-tokens 12 --image "$FX/media/image_c.png" "Describe it." >"$T/ask_base.json"
check eq "$(jq -c '.choices[0].token_ids' "$T/out.json")" "$(jq -c .generated_ids "$T/ask_base.json")"
check eq "$(jq -c '.prompt_token_ids' "$T/out.json")" "$(jq -c .prompt_ids "$T/ask_base.json")"
kill -TERM "$PID"
wait "$PID"

# ---- the key rule: non-loopback binds need a key; every request is checked -------------------------
TMPDIR="$T/tmp" "$QV" serve --model "$M" --host 127.0.0.2 --port 0 >"$T/nokey.out" 2>"$T/nokey.err"
check eq "$?" 1
check grep -q "refusing to listen on 127.0.0.2 without an API key" "$T/nokey.err"
TMPDIR="$T/tmp" "$QV" serve --model "$M" --host 0.0.0.0 --port 0 2>/dev/null
check eq "$?" 1
start_server "$T/s2.log" --host 127.0.0.2 --api-key 's3cret-key' || exit 1
check grep -q "API key required" "$T/s2.log"
check eq "$(curl -s --max-time 10 -o "$T/out.json" -w '%{http_code}' "$URL/health")" 401
check eq "$(jq -r .error.code "$T/out.json")" invalid_api_key
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' "$URL/health")" 401
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret-ke' "$URL/health")" 401
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret-keyy' "$URL/v1/models")" 401
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Authorization: Basic s3cret-key' "$URL/metrics")" 401
check eq "$(post "$T/text.json")" 401
check eq "$(post "$T/text.json" -H 'Authorization: Bearer wrong')" 401
check eq "$(post "$T/text.json" -H 'Authorization: Bearer s3cret-key')" 200
check eq "$(jq -c '.choices[0].token_ids' "$T/out.json")" "$(jq -c '.choices[0].token_ids' "$T/text.out")"
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret-key' "$URL/health")" 200
check eq "$(media_req image_url "file://$ROOT/inside.mp4" -H 'Authorization: Bearer s3cret-key')" 400  # no --media-root
check eq "$(jq -r .error.code "$T/out.json")" file_url_not_allowed
kill -TERM "$PID"
wait "$PID"
check eq "$?" 0
# QV_API_KEY from the environment does the same
QV_API_KEY=env-key start_server "$T/s3.log" --host 127.0.0.2 || exit 1
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$URL/health")" 401
check eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer env-key' "$URL/health")" 200
kill -TERM "$PID"
wait "$PID"

# ---- usage errors ---------------------------------------------------------------------------------
"$QV" serve --model "$M" --port 70000 2>/dev/null
check eq "$?" 2
"$QV" serve --model "$M" --max-body 12 2>/dev/null
check eq "$?" 2
"$QV" serve --model "$M" --port 0 --media-root "$T/nonexistent" 2>"$T/mr.err"
check eq "$?" 1
check grep -q "media-root" "$T/mr.err"
"$QV" serve --help | grep -q -- "--media-root"
check eq "$?" 0

check eq "$(cat "$T"/s*.log | grep -c 'Sanitizer\|runtime error')" 0   # the ASan build of CI reads this

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
