#!/usr/bin/env bash
# fixture_harden_prompt.sh — prompts (issue 12, findings 8 and 9), tiny model:
#  - a framing and a question that each hold no marker but join into {{image:PATH}} are refused (the
#    file was read into the prompt); a system-free chat and base prompt alike;
#  - a prompt whose positions exceed max_position_embeddings is refused with the numbers, before any
#    prefill; --ctx-max raises the bound.
set -u
QV=${QV_BIN:-build/qv}
T=${QV_TMP:-/tmp/qv-fixture-harden-prompt}
M=${QV_FIXTURES:-../shared/fixtures}/models/tiny-qwen2vl
pass=0
fail=0
check() {
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; fi
}
rm -rf "$T" && mkdir -p "$T"
IMG="$M/../../media/image_c.png"
ask() { timeout 120 "$QV" ask --threads 1 --max-tokens 2 "$@" >"$T/out.txt" 2>"$T/err.txt"; }

# finding 8: markup formed only by joining user texts
for form in --base --chat; do
    ask --model "$M" $form --framing 'Look {{ima{question}' 'ge:'"$IMG"'}} now'
    check [ $? -ne 0 ]
    check grep -q "marker once joined" "$T/err.txt"
    ask --model "$M" $form --framing '{question}{{video:' '/dev/null}}'
    check [ $? -ne 0 ]
done
ask --model "$M" --base --framing 'Q: {question} A:' 'What is {{this}}?'   # braces alone are text
check [ $? -eq 0 ]

# finding 9: positions bounded by max_position_embeddings (a copy of the model with 64)
mkdir "$T/m" && cp "$M"/* "$T/m/"
sed -i 's/"max_position_embeddings": *[0-9]*/"max_position_embeddings": 64/' "$T/m/config.json"
grep -q '"max_position_embeddings": 64' "$T/m/config.json" || echo "FAIL: could not edit the config" >&2
long=$(printf 'word %.0s' $(seq 1 200))
ask --model "$T/m" "$long"
check [ $? -ne 0 ]
check grep -q "max_position_embeddings 64" "$T/err.txt"
check grep -q -- "--ctx-max" "$T/err.txt"
ask --model "$T/m" --ctx-max 1000 "$long"
check [ $? -eq 0 ]
ask --model "$T/m" "short?"
check [ $? -eq 0 ]

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
