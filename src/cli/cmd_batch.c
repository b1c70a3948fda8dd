/* cmd_batch.c — qv batch: many jobs from a JSONL file with the model loaded once; resumable after a kill,
 * shardable over machines (pipeline/batch.c), each job one of the tasks of pipeline/tasks.c. */
#include "cli.h"
#include "cli_tool.h"
#include "batch.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void help(void) {
    printf("usage: qv batch [options] JOBS.jsonl -o OUTDIR [--shard I/N]\n\n"
           "Runs every job of JOBS.jsonl (one JSON object per line) with the model loaded once:\n"
           "  {\"id\": \"clip1\", \"video\": \"a.mp4\", \"task\": \"ask\", \"question\": \"What happens?\"}\n"
           "  {\"id\": \"talk\", \"video\": \"talk.mp4\", \"task\": \"subtitles\", \"format\": \"vtt\", \"window\": 5}\n"
           "  {\"id\": \"game\", \"video\": \"game.mp4\", \"task\": \"summarize\", \"detail\": true, \"max_tokens\": 300}\n"
           "task is ask | subtitles | summarize; format is srt | vtt | json | text (default: text for ask and\n"
           "summarize, srt for subtitles); any other key is an option of the command line without its dashes\n"
           "(fps, max_frames, start, end, window, prompt, temperature, seed ...). A relative video path is\n"
           "looked up beside JOBS.jsonl first, then in the current directory.\n\n"
           "Each job's result is written atomically to OUTDIR/ID.EXT, then a status line\n"
           "  {\"id\", \"status\": \"ok\"|\"failed\", \"error\", \"output\", \"seconds\", \"line\", \"task\"}\n"
           "is appended (and synced) to OUTDIR/results.jsonl. Run the same command again after a crash, a\n"
           "kill or Ctrl-C: finished jobs are skipped, failed and unfinished ones run again. A job that fails\n"
           "(a corrupt video, a bad line) is reported and the batch goes on. Exit code: 0 all ok, 1 some job\n"
           "failed, 130 stopped by Ctrl-C.\n\n"
           "batch:\n"
           "  -o, --output DIR         the output folder (created if missing)\n"
           "  --force                  run every job again, even those finished before (a job whose options,\n"
           "                           model or input file changed since its last run is redone anyway)\n"
           "  --shard I/N              run only the jobs whose line number (from 1) mod N is I, and append to\n"
           "                           OUTDIR/results.I-of-N.jsonl: N processes or machines share one folder\n"
           "%s\n%s\n"
           "examples:\n"
           "  qv batch --model ~/Qwen2-VL-7B jobs.jsonl -o out/\n"
           "  qv batch jobs.jsonl -o out/ --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT\n"
           "  parallel qv batch jobs.jsonl -o out/ --threads 4 --shard {}/4 ::: 0 1 2 3\n",
           tool_opts_help, cli_opts_help);
}

typedef struct {
    qv_engine *e;
    const cli_opts *base;      /* the command line's options */
    const tool_opts *tbase;
    const char *jobs_dir;      /* folder of the job file, for relative video paths */
    qv_progress *pg;
    char *model_id;            /* the model's identity for job fingerprints (see model_identity) */
} batch_ctx;

/* the batch's progress: the label "job k/n id" while a job runs, one log line when it ends */
static void on_job_start(void *user, int k, int n, const qv_job *job) {
    char label[200];
    snprintf(label, sizeof label, "job %d/%d %s", k, n, job->id);
    qv_progress_set_label(((batch_ctx *)user)->pg, label);
    qv_progress_set_outer(((batch_ctx *)user)->pg, k - 1, n); /* the whole batch's ETA from the jobs done */
}

static void on_job_done(void *user, int k, int n, const qv_job *job, int ok, double seconds, const char *what) {
    qv_progress *pg = ((batch_ctx *)user)->pg;
    qv_progress_set_label(pg, NULL);
    if (ok) qv_progress_log(pg, "job %d/%d %s ok (%.1f s) -> %s", k, n, job->id, seconds, what);
    else qv_progress_log(pg, "job %d/%d %s failed: %s", k, n, job->id, what);
}

static void on_job_changed(void *user, int k, int n, const qv_job *job) {
    qv_progress_log(((batch_ctx *)user)->pg, "job %d/%d %s changed since its last run (options, model or input): running it again",
                    k, n, job->id);
}

/* ---- job fingerprints: a rerun redoes a job whose options, model or input changed ---- */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
}

/* a text with its length first, so that no two sequences of texts print alike */
static void sb_text(sbuf *b, const char *key, const char *v) {
    if (v) sb_printf(b, "%s=%zu:%s;", key, strlen(v), v);
    else sb_printf(b, "%s=-;", key);
}

/* the identity of one file: its real path, device, inode, size and modification time */
static void sb_file(sbuf *b, const char *key, const char *path) {
    struct stat st;
    char *real = realpath(path, NULL);
    if (stat(path, &st) != 0) sb_printf(b, "%s=missing;", key);
    else
        sb_printf(b, "%s=%s|%llu|%llu|%lld|%lld.%09ld;", key, real ? real : path, (unsigned long long)st.st_dev,
                  (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    free(real);
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The model's identity: its configuration, tokenizer and weight files (sb_file each, in name order) and
 * the load options that change answers. */
static char *model_identity(const cli_opts *o) {
    sbuf b = {0};
    sb_printf(&b, "prec=%d;quant=%d;chat=%d;", o->prec, o->quant, o->chat);
    DIR *d = opendir(o->model);
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (!((l > 5 && !strcmp(de->d_name + l - 5, ".json")) || (l > 12 && !strcmp(de->d_name + l - 12, ".safetensors"))))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) { b.oom = 1; break; }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) { b.oom = 1; break; }
        n++;
    }
    if (d) closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 0; i < n; i++) {
        char *p = qv_path_join(o->model, names[i]);
        if (p) sb_file(&b, names[i], p);
        else b.oom = 1;
        free(p);
        free(names[i]);
    }
    free(names);
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

/* FNV-1a, 64 bits, twice with different offsets: 32 hex digits */
static char *hash_hex(const char *s, size_t n) {
    uint64_t h[2] = {1469598103934665603ull, 0x6a09e667f3bcc908ull};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n; i++) h[k] = (h[k] ^ (unsigned char)s[i]) * 1099511628211ull;
    char *r = malloc(33);
    if (r) snprintf(r, 33, "%016llx%016llx", (unsigned long long)h[0], (unsigned long long)h[1]);
    return r;
}

/* The options of one job: the command line's, then the job's keys over them; its format and the path of
 * its video. */
static qv_status job_setup(batch_ctx *c, const qv_job *job, cli_opts *op, tool_opts *tp, int *fmt_out, char **path_out,
                           qv_err *err) {
    cli_opts o = *c->base;
    tool_opts t = *c->tbase;
    *path_out = NULL;
    t.output = NULL;
    t.format = -1;
    t.detail = 0;
    char why[512];
    for (int i = 0; i < job->n_opts; i++) {
        int r = tool_apply_kv(&o, &t, job->keys[i], job->vals[i], why, sizeof why);
        if (r <= 0) return qv_errf(err, QV_ERR_INVALID, "line %d: %s", job->line, why);
    }
    int is_sub = !strcmp(job->task, "subtitles"), is_sum = !strcmp(job->task, "summarize");
    if (is_sum && !t.window_given) t.task.window_s = 0; /* as qv summarize: about a dozen windows */
    int fmt = is_sub ? QV_FMT_SRT : QV_FMT_TEXT;
    if (job->format) {
        fmt = qv_format_from_name(job->format);
        if (fmt < 0) return qv_errf(err, QV_ERR_INVALID, "line %d: format is srt, vtt, json or text, not \"%s\"", job->line, job->format);
    }
    if (!is_sub && !is_sum && (fmt == QV_FMT_SRT || fmt == QV_FMT_VTT))
        return qv_errf(err, QV_ERR_INVALID, "line %d: an answer has no timeline: format json or text", job->line);
    if (is_sum && !t.detail && (fmt == QV_FMT_SRT || fmt == QV_FMT_VTT))
        return qv_errf(err, QV_ERR_INVALID, "line %d: SRT/WebVTT summaries need \"detail\": true", job->line);
    if (o.media.start_s >= 0 && o.media.end_s >= 0 && o.media.end_s <= o.media.start_s)
        return qv_errf(err, QV_ERR_INVALID, "line %d: end must come after start", job->line);
    if (!is_sub && !is_sum && job->question && (cli_looks_like_media_path(job->question) || qv_file_exists(job->question)))
        return qv_errf(err, QV_ERR_INVALID, "line %d: the question \"%s\" is a file name, not a question (the input "
                       "goes in \"video\")", job->line, job->question);

    char *path = NULL; /* relative: beside the job file first, else from the current directory */
    if (job->video[0] != '/' && c->jobs_dir) {
        path = qv_path_join(c->jobs_dir, job->video);
        if (path && !qv_file_exists(path) && qv_file_exists(job->video)) {
            free(path);
            path = strdup(job->video);
        }
    } else path = strdup(job->video);
    if (!path) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    *op = o;
    *tp = t;
    *fmt_out = fmt;
    *path_out = path;
    return QV_OK;
}

static qv_status run_job(void *user, const qv_job *job, char **doc, const char **ext, qv_err *err) {
    batch_ctx *c = user;
    cli_opts o;
    tool_opts t;
    int fmt;
    char *path;
    qv_status sst = job_setup(c, job, &o, &t, &fmt, &path, err);
    if (sst) return sst;
    int is_sub = !strcmp(job->task, "subtitles"), is_sum = !strcmp(job->task, "summarize");
    qv_gen_opts go;
    cli_gen_opts(&o, c->e, &go, 0);
    go.on_progress = qv_progress_cb;
    go.user = c->pg;
    qv_task_result r = {0};
    qv_status st;
    t.task.on_step = qv_progress_step_cb;
    t.task.user = c->pg;
    if (is_sub) st = qv_task_subtitles(c->e, path, &o.media, &go, &t.task, &r, err);
    else if (is_sum) st = qv_task_summarize(c->e, path, &o.media, &go, &t.task, t.detail, &r, err);
    else st = qv_task_ask(c->e, path, cli_is_image_path(path), job->question, &o.media, &go, &t.task, &r, err);
    if (st == QV_OK) {
        const char *prompt = is_sub ? (t.task.prompt ? t.task.prompt : QV_DEFAULT_CAPTION_PROMPT)
                             : is_sum ? (t.task.summary_prompt ? t.task.summary_prompt : QV_DEFAULT_SUMMARY_PROMPT)
                                      : job->question;
        qv_out_meta meta = {.video = job->video, .model = o.model, .task = job->task, .prompt = prompt};
        *doc = qv_task_render((qv_out_format)fmt, &r, &meta);
        *ext = qv_format_ext((qv_out_format)fmt);
        if (!*doc) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    qv_task_result_free(&r);
    free(path);
    return st;
}

/* The job's fingerprint: its effective options (the command line's with the job's over them, each in a
 * canonical form: "max_tokens": 5 and "max-tokens": "5" agree), the model's identity, the input's. */
static char *job_fingerprint(void *user, const qv_job *job) {
    batch_ctx *c = user;
    cli_opts o;
    tool_opts t;
    int fmt;
    char *path;
    qv_err err = {0};
    if (job_setup(c, job, &o, &t, &fmt, &path, &err)) return NULL; /* the job fails anyway */
    sbuf b = {0};
    const qv_media_opts *m = &o.media;
    sb_printf(&b, "v1;");
    sb_text(&b, "task", job->task);
    sb_text(&b, "question", job->question);
    sb_printf(&b, "format=%d;fps=%.17g;frames=%d,%d;pixels=%lld,%lld,%lld;range=%.17g,%.17g;image=%d;", fmt, m->fps,
              m->min_frames, m->max_frames, (long long)m->min_pixels, (long long)m->max_pixels, (long long)m->total_pixels,
              m->start_s, m->end_s, m->force_image);
    sb_printf(&b, "max_tokens=%d;greedy=%d;temperature=%.17g;top_k=%d;top_p=%.17g;rep=%.17g;seed=%d,%llu;", o.max_tokens,
              o.greedy, o.temperature, o.top_k, o.top_p, o.repetition_penalty, o.seed_set, (unsigned long long)o.seed);
    sb_printf(&b, "window=%.17g,%d;caption_tokens=%d;first_line=%d;detail=%d;", t.task.window_s, t.window_given,
              t.task.caption_tokens, t.task.first_line_only, t.detail);
    sb_text(&b, "prompt", t.task.prompt);
    sb_text(&b, "summary_prompt", t.task.summary_prompt);
    sb_text(&b, "framing", t.task.framing);
    sb_text(&b, "model", c->model_id);
    sb_file(&b, "input", path);
    free(path);
    char *fp = b.oom ? NULL : hash_hex(b.s, b.n);
    free(b.s);
    return fp;
}

int qv_cmd_batch(int argc, char **argv) {
    const char *cmd = "batch";
    cli_opts o;
    tool_opts t;
    cli_opts_init(&o);
    tool_opts_init(&t);
    const char *jobs = NULL;
    long shard_i = 0, shard_n = 1;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        if (strcmp(a, "--force") == 0) {
            force = 1;
            continue;
        }
        if (cli_opt_is(a, "--shard")) {
            const char *v = cli_opt_value(cmd, "--shard", argc, argv, &i);
            if (!v) return 2;
            char *end;
            errno = 0;
            shard_i = strtol(v, &end, 10);
            if (end == v || *end != '/' || errno) return cli_usage(cmd, "--shard takes I/N, e.g. 0/4, not '%s'", v);
            const char *nv = end + 1;
            shard_n = strtol(nv, &end, 10);
            if (end == nv || *end || errno || shard_n < 1 || shard_n > 1000000 || shard_i < 0 || shard_i >= shard_n)
                return cli_usage(cmd, "--shard takes I/N with 0 <= I < N, not '%s'", v);
            continue;
        }
        int r = cli_opts_parse(&o, cmd, argc, argv, &i);
        if (r == 0) r = tool_opts_parse(&t, cmd, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (a[0] == '-' && a[1] != 0) return cli_unknown_option(cmd, a);
        if (jobs) return cli_usage(cmd, "one job file at a time (got '%s' and '%s')", jobs, a);
        jobs = a;
    }
    if (!jobs) return cli_usage(cmd, "no job file given");
    if (!t.output) return cli_usage(cmd, "no output folder: give -o OUTDIR");
    if (t.format >= 0) return cli_usage(cmd, "--format is given per job (\"format\" in the job file)");
    if (t.n_outputs > 1) return cli_usage(cmd, "one output folder (-o OUTDIR) only");
    if (o.dry_run || t.resume)
        return cli_usage(cmd, "%s", o.dry_run ? "--dry-run is for ask, subtitles and summarize: try one job's command with it"
                                              : "a batch always resumes: run the same command again");

    char *text = NULL;
    size_t len = 0;
    qv_err err = {0};
    if (qv_read_file(jobs, &text, &len, (size_t)1 << 30, &err)) return cli_fail("%s", err.msg);
    qv_joblist jl;
    qv_status st = qv_jobs_parse(text, len, &jl, &err);
    free(text);
    if (st) return cli_fail("%s: %s", jobs, err.msg);
    char *jobs_dir = strdup(jobs);
    if (!jobs_dir) return qv_jobs_free(&jl), cli_fail("out of memory");
    char *slash = strrchr(jobs_dir, '/');
    if (slash) slash[slash == jobs_dir ? 1 : 0] = 0;
    else {
        free(jobs_dir);
        jobs_dir = NULL;
    }

    qv_engine *e;
    int rc = cli_engine_open(&o, cmd, &e);
    if (rc) {
        qv_jobs_free(&jl);
        free(jobs_dir);
        return rc;
    }
    qv_progress *pg = cli_progress_open(&o);
    batch_ctx ctx = {.e = e, .base = &o, .tbase = &t, .jobs_dir = jobs_dir, .pg = pg, .model_id = model_identity(&o)};
    qv_batch_params bp = {.out_dir = t.output, .shard_i = (int)shard_i, .shard_n = (int)shard_n, .run = run_job,
                          .user = &ctx, .abort_cb = cli_abort_cb, .on_job_start = on_job_start,
                          .on_job_done = on_job_done, .on_job_changed = on_job_changed, .fingerprint = job_fingerprint,
                          .force = force};
    qv_batch_stats bs;
    st = qv_batch_run(&bp, &jl, &bs, &err);
    qv_progress_clear(pg);
    char *sname = qv_batch_status_name((int)shard_i, (int)shard_n);
    if (st == QV_ERR_CANCELLED) {
        cli_fail("%s; %d done in this run, %d before; run the same command again to finish", err.msg, bs.n_ok + bs.n_failed,
                 bs.n_skipped);
        rc = 130;
    } else if (st) {
        rc = cli_fail("%s", err.msg);
    } else {
        if (!o.quiet)
            fprintf(stderr, "qv: batch: %d jobs%s: %d ok, %d failed, %d already done, %d changed and redone (%.1f s); status in %s/%s\n",
                    bs.n_selected, shard_n > 1 ? " in this shard" : "", bs.n_ok, bs.n_failed, bs.n_skipped, bs.n_changed,
                    bs.seconds, t.output, sname ? sname : "results.jsonl");
        rc = bs.n_failed ? 1 : 0;
    }
    free(sname);
    qv_progress_free(pg);
    qv_engine_free(e);
    qv_jobs_free(&jl);
    free(jobs_dir);
    free(ctx.model_id);
    return rc;
}
