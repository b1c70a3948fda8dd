#!/usr/bin/env bash
# fixture_harden_files.sh — the command line and special or foreign files (issue 12, findings 5 and 6):
#  - a FIFO given as the job file, --raw-file, a model's config.json or tokenizer.json gets a one-line
#    error at once (it used to hang: `timeout` turns a hang into a failure);
#  - `qv demo --dir` into a folder holding a checkpoint (with or without --force) is refused and changes
#    nothing; a new folder, an empty one and the demo's own folder are fine.
set -u
QV=${QV_BIN:-build/qv}
T=${QV_TMP:-/tmp/qv-fixture-harden-files}
M=${QV_FIXTURES:-../shared/fixtures}/models/tiny-qwen2vl
pass=0
fail=0
check() {
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; fi
}
rm -rf "$T" && mkdir -p "$T"
mkfifo "$T/fifo"
refused() { # the command exits non-zero within 20 s, with "not a regular file" on stderr
    timeout 20 "$@" >"$T/out.txt" 2>"$T/err.txt"
    local rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "not a regular file" "$T/err.txt"
}
check refused "$QV" batch --model "$M" "$T/fifo" -o "$T/b"
check refused "$QV" ask --model "$M" --raw-file "$T/fifo"
for f in config.json tokenizer.json; do
    rm -rf "$T/m" && mkdir "$T/m" && cp "$M"/* "$T/m/" && rm "$T/m/$f" && mkfifo "$T/m/$f"
    check refused "$QV" ask --model "$T/m" --raw-file /dev/null
    [ "$f" = config.json ] && check refused "$QV" info --model "$T/m"
done
check refused "$QV" tokenize --tokenizer "$T/fifo"
check refused "$QV" ask --model "$M" --image "$T/fifo" "What?"
check refused "$QV" ask --model "$M" --video "$T/fifo" "What?"

# demo --dir: never into a folder of someone else's files
rm -rf "$T/real" && mkdir "$T/real" && cp "$M"/* "$T/real/"
(cd "$T/real" && sha256sum * >"$T/real.sum")
for force in "" --force; do
    timeout 120 "$QV" demo --dir "$T/real" $force --max-tokens 2 >"$T/out.txt" 2>"$T/err.txt"
    rc=$?
    check [ "$rc" -eq 1 ]
    check grep -q "did not make" "$T/err.txt"
    check bash -c "cd '$T/real' && sha256sum --quiet -c '$T/real.sum'"
    check [ ! -e "$T/real/.qv-demo" ]
done
mkdir "$T/empty"
timeout 300 "$QV" demo --dir "$T/empty" --max-tokens 2 --window 5 --threads 2 >"$T/out.txt" 2>"$T/err.txt"
check [ $? -eq 0 ]
check [ -f "$T/empty/.qv-demo" ]
timeout 300 "$QV" demo --dir "$T/empty" --force --max-tokens 2 --window 5 --threads 2 >"$T/out.txt" 2>"$T/err.txt"
check [ $? -eq 0 ]
check [ -z "$(ls -A "$T/empty" | grep -e '\.tmp' -e '^\.qv-tmp')" ]

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
