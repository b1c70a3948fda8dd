#!/usr/bin/env bash
# samples/slurm_batch.sh and samples/k8s-batch-job.yaml, each tried with a local stand-in: GNU parallel runs
# the N shards at once (as the array tasks / indexed pods would) on the tiny model over one shared folder;
# every job is done exactly once, each shard writes its own results file, and a rerun does nothing (issue 13).
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL (line ${BASH_LINENO[0]}): $*" >&2; fi; }
T="$QV_TMP"; rm -rf "${T:?}"/*; mkdir -p "$T"
if ! command -v parallel > /dev/null; then echo "GNU parallel is missing (scripts/install-deps.sh installs it)"; exit 1; fi
export QV_MODEL="$QV_FIXTURES/models/tiny-qwen2vl"
N=3; J=7
mkshared() { # dir
  mkdir -p "$1"; cp "$QV_FIXTURES/media/sample_a.mp4" "$1/a.mp4"
  : > "$1/jobs.jsonl"
  for j in $(seq $J); do
    echo "{\"id\": \"job$j\", \"video\": \"a.mp4\", \"task\": \"ask\", \"question\": \"What happens $j?\", \"max_tokens\": 2}" >> "$1/jobs.jsonl"
  done
}
check() { # dir
  local n_ok; n_ok=$(cat "$1"/out/results.*-of-$N.jsonl 2>/dev/null | grep -c '"status": *"ok"')
  ok test "$n_ok" -eq $J                                 # every job once, none twice
  ok test "$(ls "$1"/out/results.*-of-$N.jsonl | wc -l)" -eq $N
  for j in $(seq $J); do ok test -s "$1/out/job$j.txt"; done
}
qvdir=$(dirname "$QV_BIN")

# Slurm: the array task's environment, N tasks at once
S="$T/slurm"; mkshared "$S"
JOBS="$S/jobs.jsonl" OUT="$S/out" QV="$QV_BIN" \
  parallel -j $N "SLURM_ARRAY_TASK_ID={} SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=$N SLURM_CPUS_PER_TASK=1 bash samples/slurm_batch.sh" ::: $(seq 0 $((N-1)))
ok test $? -eq 0
check "$S"
before=$(cat "$S"/out/results.*.jsonl | wc -l)
JOBS="$S/jobs.jsonl" OUT="$S/out" QV="$QV_BIN" SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=$N bash samples/slurm_batch.sh
ok test $? -eq 0
ok test "$(cat "$S"/out/results.*.jsonl | wc -l)" -eq "$before"   # a requeued task redoes nothing

# Kubernetes: the container's command line from the manifest, JOB_COMPLETION_INDEX = 0..N-1
K="$T/k8s"; mkshared "$K"
args=$(sed -n "s/^ *args: \['\(.*\)'\]$/\1/p" samples/k8s-batch-job.yaml)
ok test -n "$args"
ok grep -q "completionMode: Indexed" samples/k8s-batch-job.yaml
PATH="$qvdir:$PATH" SHARED="$K" QV_SHARDS=$N \
  parallel -j $N "JOB_COMPLETION_INDEX={} sh -c '$args'" ::: $(seq 0 $((N-1)))
ok test $? -eq 0
check "$K"
echo "$pass passed, $fail failed"
test $fail -eq 0
