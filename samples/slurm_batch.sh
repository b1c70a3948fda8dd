#!/usr/bin/env bash
# slurm_batch.sh — a Slurm job array that runs `qv batch --shard` over a shared folder: task I of N runs
# the jobs whose line number mod N is I and appends to OUT/results.I-of-N.jsonl, so the N tasks never
# write the same file. A task that is killed or requeued reruns only its unfinished jobs.
#
#   sbatch --array=0-7 samples/slurm_batch.sh                       # 8 shards
#   JOBS=/shared/jobs.jsonl OUT=/shared/out QV_MODEL=/shared/Qwen2-VL-7B sbatch --array=0-7 samples/slurm_batch.sh
#
# Tried locally (tests/fixture_cluster_samples.sh) with GNU parallel standing in for Slurm:
#   parallel SLURM_ARRAY_TASK_ID={} SLURM_ARRAY_TASK_COUNT=4 samples/slurm_batch.sh ::: 0 1 2 3
#SBATCH --job-name=qv-batch
#SBATCH --array=0-3
#SBATCH --cpus-per-task=8
#SBATCH --mem=24G
#SBATCH --time=2-00:00:00
#SBATCH --requeue
#SBATCH --output=qv-batch-%A_%a.log
set -euo pipefail
JOBS=${JOBS:-/shared/jobs.jsonl}          # one JSON job per line (see qv batch --help)
OUT=${OUT:-/shared/out}                   # shared by every task
QV=${QV:-qv}
: "${QV_MODEL:?set QV_MODEL to the Qwen2-VL model folder (on the shared file system)}"
export QV_MODEL
i=$(( ${SLURM_ARRAY_TASK_ID:?run with sbatch --array} - ${SLURM_ARRAY_TASK_MIN:-0} ))
n=${SLURM_ARRAY_TASK_COUNT:?run with sbatch --array}
exec "$QV" batch "$JOBS" -o "$OUT" --shard "$i/$n" --threads "${SLURM_CPUS_PER_TASK:-0}" --quiet
