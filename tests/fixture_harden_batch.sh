#!/usr/bin/env bash
# fixture_harden_batch.sh — batch identity and option ownership (issue 12, findings 2 and 7; issue 13,
# batch resume notices a changed job), with the tiny model on a still image:
#  - a job key holding '=' ("prompt=Describe", "model=DIR") is refused as an unknown option (it used to
#    leave a pointer into a dead stack buffer, and "model=" slipped past the batch-wide rule);
#  - a typed id of the automatic form ("line-2") is refused, and the job on line 2 still runs;
#  - a rerun redoes exactly the jobs whose options, input file or model changed, says so, and skips the
#    others; --force redoes everything.
set -u
QV=${QV_BIN:-build/qv}
T=${QV_TMP:-/tmp/qv-fixture-harden-batch}
M=${QV_FIXTURES:-../shared/fixtures}/models/tiny-qwen2vl
pass=0
fail=0
check() {
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; fi
}
status_of() { # OUT ID -> "ok" / "failed" of the last status line of ID
    grep "\"id\":\"$2\"" "$1/results.jsonl" | tail -1 | sed 's/.*"status":"\([a-z]*\)".*/\1/'
}
rm -rf "$T" && mkdir -p "$T"
cp "$M/../../media/image_c.png" "$T/c.png"
batch() { "$QV" batch --model "$M" --threads 1 "$@" 2>"$T/err.txt"; }

# finding 2: keys with '=' are not options
cat >"$T/eq.jsonl" <<'J'
{"id":"p","video":"c.png","question":"What?","max_tokens":2,"prompt=Describe":"1"}
{"id":"m","video":"c.png","question":"What?","max_tokens":2,"model=/nonexistent":"1"}
{"id":"fine","video":"c.png","question":"What?","max_tokens":2}
J
batch "$T/eq.jsonl" -o "$T/eq"
check [ $? -eq 1 ]
check [ "$(status_of "$T/eq" p)" = failed ]
check [ "$(status_of "$T/eq" m)" = failed ]
check grep -q 'unknown option \\"prompt=Describe\\"' "$T/eq/results.jsonl"
check [ "$(status_of "$T/eq" fine)" = ok ]

# finding 10: a job id with terminal escape sequences reaches stderr escaped
printf '{"id":"\\u001b]0;pwned\\u0007\\u001b[31mred\\u009b","video":"nothere.png","question":"What?"}\n' >"$T/esc.jsonl"
batch "$T/esc.jsonl" -o "$T/esc"
check [ $? -eq 1 ]
check grep -q 'x1b\]0;pwned' "$T/err.txt"
check [ "$(LC_ALL=C grep -c -P '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]' "$T/err.txt")" = 0 ]

# finding 7: automatic ids never collide with typed ones
cat >"$T/ids.jsonl" <<'J'
{"id":"line-2","video":"c.png","question":"What?","max_tokens":2}
{"video":"c.png","question":"Where?","max_tokens":2}
J
batch "$T/ids.jsonl" -o "$T/ids"
check [ $? -eq 1 ]
check grep -q '"line":1,.*reserved\|reserved.*"line":1,' "$T/ids/results.jsonl"
check grep -q '"id":"line-2","status":"ok".*"line":2' "$T/ids/results.jsonl"
check [ -s "$T/ids/line-2.txt" ]
batch "$T/ids.jsonl" -o "$T/ids"   # a rerun still has the refused line to report: not 0
check [ $? -eq 1 ]

# changed jobs are redone on a rerun, the others skipped
cat >"$T/fp.jsonl" <<'J'
{"id":"a","video":"c.png","question":"What?","max_tokens":2}
{"id":"b","video":"c.png","question":"What?","max-tokens":"2","task":"ask"}
{"id":"c","video":"d.png","question":"What?","max_tokens":2}
J
cp "$T/c.png" "$T/d.png"
batch "$T/fp.jsonl" -o "$T/fp"
check [ $? -eq 0 ]
batch "$T/fp.jsonl" -o "$T/fp"
check [ $? -eq 0 ]
check grep -q ' 0 ok, 0 failed, 3 already done' "$T/err.txt"
sed -i 's/"id":"a","video":"c.png","question":"What?","max_tokens":2/"id":"a","video":"c.png","question":"What?","max_tokens":3/' "$T/fp.jsonl"
batch "$T/fp.jsonl" -o "$T/fp"
check grep -q 'job 1/3 a changed since its last run' "$T/err.txt"
check grep -q ' 1 ok, 0 failed, 2 already done, 1 changed' "$T/err.txt"
# the same options written another way ("max_tokens": 3 vs "max-tokens": "3") are the same job
sed -i 's/"max_tokens":3/"max-tokens":"3"/' "$T/fp.jsonl"
batch "$T/fp.jsonl" -o "$T/fp"
check grep -q ' 0 ok, 0 failed, 3 already done' "$T/err.txt"
# the input file changed (same name, new content)
cp "$M/../../media/image_c.png" "$T/d.png.new" && printf 'x' >>"$T/d.png.new" && mv "$T/d.png.new" "$T/d.png"
batch "$T/fp.jsonl" -o "$T/fp"
check grep -q 'job 3/3 c changed since its last run' "$T/err.txt"
check grep -q ' 1 ok, 0 failed, 2 already done, 1 changed' "$T/err.txt"
# the model changed: a copy of the checkpoint is another model
mkdir -p "$T/model2" && cp "$M"/* "$T/model2/"
"$QV" batch --model "$T/model2" --threads 1 "$T/fp.jsonl" -o "$T/fp" 2>"$T/err.txt"
check grep -q ' 3 ok, 0 failed, 0 already done, 3 changed' "$T/err.txt"
# --force redoes everything
"$QV" batch --model "$T/model2" --threads 1 "$T/fp.jsonl" -o "$T/fp" --force 2>"$T/err.txt"
check grep -q ' 3 ok, 0 failed, 0 already done' "$T/err.txt"
"$QV" batch --model "$T/model2" --threads 1 "$T/fp.jsonl" -o "$T/fp" 2>"$T/err.txt"
check grep -q ' 0 ok, 0 failed, 3 already done' "$T/err.txt"
# status lines carry the fingerprint
check grep -q '"fp":"[0-9a-f]\{32\}"' "$T/fp/results.jsonl"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
