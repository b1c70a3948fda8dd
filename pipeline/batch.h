/* batch.h — batch jobs: the JSONL job file, and a resumable runner that survives being killed.
 *
 *   qv_joblist jl; qv_err err = {0};
 *   qv_jobs_parse(text, len, &jl, &err);                       // one job per line; bad lines become failed jobs
 *   qv_batch_params bp = {.out_dir = "out", .shard_n = 1, .run = my_run, .user = ctx};
 *   qv_batch_stats st;
 *   qv_batch_run(&bp, &jl, &st, &err);                         // QV_ERR_CANCELLED after Ctrl-C
 *   qv_jobs_free(&jl);
 *
 * Job file: UTF-8 text, one JSON object per line:
 *   {"id": "clip1", "video": "a.mp4", "task": "ask|subtitles|summarize", "question": "...", "format":
 *    "srt|vtt|json|text", "max_tokens": 64, ...any other option of the CLI (fps, max_frames, window, start,
 *    end, prompt, temperature, seed ...; '_' and '-' alike)}
 * Blank lines and lines starting with '#' are skipped; line numbers count every line from 1. A line that
 * is not a JSON object, or lacks "video", or has an unknown task, or repeats an id, becomes a job that
 * fails with "line N: reason" (its id is the given one, else "line-N"). "id" defaults to "line-N"; a typed
 * id of that form ("line-" and digits) is refused, so automatic and typed ids never collide;
 * "task" defaults to "ask" when "question" is given.
 *
 * Crash safety (SIGKILL at any instant): a job's result is written first (temp file + fsync + rename, so
 * it is either whole or absent), then its status line is appended to the status file with one write()
 * and fsync. On a rerun, every results*.jsonl in the output folder is read (lines that do not parse — a
 * torn last line — are ignored); a job counts as done when the latest "ok" status line for its id (by
 * its "at" time) has the job's current fingerprint (or none: lines of older versions) and its output
 * file exists; a job whose fingerprint changed runs again and is logged as changed; force runs all;
 * every other job (failed, or killed before its status line) runs again and
 * overwrites its output with the same bytes (greedy decoding). A torn last line is first ended with a
 * newline so the next status line stays whole. So each job ends with exactly one "ok" line. Temp files
 * of this shard's jobs left by a killed run (.qv-tmp.ID.EXT.PID-N, see qv_tmp_create) are removed at
 * the start; no other file is.
 * Shards: --shard I/N runs the jobs whose line number mod N == I, and appends only to
 * results.I-of-N.jsonl (without shards: results.jsonl): no two processes append to one file (a run holds
 * an exclusive flock on its status file; a second run on the same file is refused). Runs sharing the
 * folder at the same time must use the same N (a lock on OUTDIR/.qv-batch.lock; another N is refused),
 * so they agree on which run owns which job. */
#ifndef QV_BATCH_H
#define QV_BATCH_H

#include <stddef.h>
#include "core.h"

typedef struct {
    int line;          /* 1-based line in the job file */
    char *id;          /* as given, else "line-N" */
    char *file_id;     /* id made safe for a file name ([A-Za-z0-9._-], others '_', max 100 bytes) */
    char *task;        /* "ask" | "subtitles" | "summarize" (NULL when the line is invalid) */
    char *video;       /* input path (NULL when the line is invalid) */
    char *question;    /* may be NULL */
    char *format;      /* may be NULL (task default) */
    char **keys;       /* [n_opts] other options, '_' turned into '-' (e.g. "max-tokens") */
    char **vals;       /* [n_opts] their values as text (numbers as written by %.17g, true/false) */
    int n_opts;
    char *error;       /* non-NULL: the line is invalid; the job fails with this reason */
} qv_job;

typedef struct {
    qv_job *jobs;
    int n;
} qv_joblist;

/* Parses the whole job file. Only out-of-memory and a file with no job at all are errors; bad lines
 * become jobs with .error set. */
qv_status qv_jobs_parse(const char *text, size_t len, qv_joblist *out, qv_err *err);
void qv_jobs_free(qv_joblist *jl);   /* NULL-safe */

/* Runs one job: fills *doc (malloc'd result document) and *ext ("srt", "vtt", "json", "txt"; static
 * string). Returns QV_OK, an error (the job fails with err's message) or QV_ERR_CANCELLED (the batch
 * stops; the job gets no status line). */
typedef qv_status (*qv_batch_job_fn)(void *user, const qv_job *job, char **doc, const char **ext, qv_err *err);

/* A job's fingerprint: a malloc'd text that changes when anything that shapes its result changes (its
 * canonical options, the model's identity, the input file's identity); NULL when it cannot be made. */
typedef char *(*qv_batch_fp_fn)(void *user, const qv_job *job);

typedef struct {
    const char *out_dir;   /* created if missing (with its parents) */
    int shard_i, shard_n;  /* shard_n <= 1: the whole file */
    qv_batch_job_fn run;
    void *user;
    int (*abort_cb)(void *user); /* polled before each job and after a failed one (may be NULL); nonzero =
                              stop with QV_ERR_CANCELLED (the job in progress gets no status line) */
    /* progress (each may be NULL; user as above): job k of n (this shard's count) starts / ended with
     * ok = 1 (what = its output file name) or 0 (what = the error) after seconds */
    void (*on_job_start)(void *user, int k, int n, const qv_job *job);
    void (*on_job_done)(void *user, int k, int n, const qv_job *job, int ok, double seconds, const char *what);
    /* a job finished before whose fingerprint changed: it runs again (may be NULL) */
    void (*on_job_changed)(void *user, int k, int n, const qv_job *job);
    qv_batch_fp_fn fingerprint; /* may be NULL: a job is done once it has an "ok" line */
    int force;             /* 1: run every selected job again, done or not */
} qv_batch_params;

typedef struct {
    int n_selected;        /* jobs in this shard */
    int n_skipped;         /* already done by an earlier run */
    int n_changed;         /* done earlier, but its fingerprint changed: run again */
    int n_ok, n_failed;    /* this run */
    double seconds;
} qv_batch_stats;

/* "results.jsonl" or "results.I-of-N.jsonl" (malloc'd; NULL on OOM). */
char *qv_batch_status_name(int shard_i, int shard_n);
/* Appends one status line ({"id","status","error","output","seconds","line","task","fp","at"}) with a
 * single write() and fsync, first ending a torn last line. output: path relative to the output folder;
 * fp: the job's fingerprint (may be NULL); "at": the wall-clock time, seconds since 1970. */
qv_status qv_batch_append_status(const char *status_path, const qv_job *job, int ok, const char *error,
                                 const char *output, double seconds, const char *fp, qv_err *err);
/* Runs the selected jobs that are not done yet (see the top). Returns QV_OK when every job ran (some may
 * have failed: see stats), QV_ERR_CANCELLED when stopped by abort_cb (or a job returning it), another error when the output folder
 * or status file cannot be written (the batch cannot record anything). */
qv_status qv_batch_run(const qv_batch_params *p, const qv_joblist *jl, qv_batch_stats *stats, qv_err *err);

#endif
