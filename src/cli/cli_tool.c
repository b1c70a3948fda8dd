/* cli_tool.c — options and output glue of the tool subcommands (see cli_tool.h). */
#include "cli_tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cues.h"
#include "cli_cost.h"

const char tool_opts_help[] =
    "task:\n"
    "  --window S               window length in seconds for per-window captions (default 10; summarize\n"
    "                           --detail: about a dozen windows, at least 10 s)\n"
    "  --prompt TEXT            the question asked about each window\n"
    "                           (default \"" QV_DEFAULT_CAPTION_PROMPT "\")\n"
    "  --summary-prompt TEXT    the question for the whole-video summary\n"
    "                           (default \"" QV_DEFAULT_SUMMARY_PROMPT "\")\n"
    "  --framing TEXT           base-form text around the question; {question} marks where it goes\n"
    "                           (default \"Question: {question} Answer:\")\n"
    "  --full-answer            keep every line a window's answer has (default: the first line)\n"
    "  (--max-tokens defaults: 48 per window caption, 200 for a summary, 256 for an answer)\n";

void tool_opts_init(tool_opts *t) {
    memset(t, 0, sizeof *t);
    t->task = qv_task_default_opts();
    t->format = -1;
}

int tool_opts_parse(tool_opts *t, const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v;
    if (strcmp(a, "--detail") == 0) return t->detail = 1, 1;
    if (strcmp(a, "--full-answer") == 0) return t->task.first_line_only = 0, 1;
    if (strcmp(a, "-o") == 0 || cli_opt_is(a, "--output")) {
        if (!(v = cli_opt_value(cmd, strcmp(a, "-o") == 0 ? "-o" : "--output", argc, argv, i))) return -1;
        if (!*v) return cli_usage(cmd, "-o needs a file name"), -1;
        if (strcmp(v, "-") == 0) return 1; /* stdout */
        if (t->n_outputs == (int)(sizeof t->outputs / sizeof *t->outputs))
            return cli_usage(cmd, "at most %d outputs", t->n_outputs), -1;
        t->outputs[t->n_outputs++] = v;
        t->output = t->outputs[0];
        return 1;
    }
    if (cli_opt_is(a, "--format")) {
        if (!(v = cli_opt_value(cmd, "--format", argc, argv, i))) return -1;
        int f = qv_format_from_name(v);
        if (f < 0) return cli_usage(cmd, "--format is srt, vtt, json or text, not '%s'", v), -1;
        t->format = f;
        return 1;
    }
    if (cli_opt_is(a, "--window")) {
        double d;
        if (!(v = cli_opt_value(cmd, "--window", argc, argv, i))) return -1;
        if (!cli_parse_time(cmd, "--window", v, 0.1, 1e6, &d)) return -1;
        t->task.window_s = d;
        t->window_given = 1;
        return 1;
    }
    static const char *const texts[] = {"--prompt", "--summary-prompt", "--framing"};
    for (int k = 0; k < 3; k++) {
        if (!cli_opt_is(a, texts[k])) continue;
        if (!(v = cli_opt_value(cmd, texts[k], argc, argv, i))) return -1;
        if (!*v) return cli_usage(cmd, "%s needs a text", texts[k]), -1;
        if (k == 0) t->task.prompt = v;
        else if (k == 1) t->task.summary_prompt = v;
        else t->task.framing = v;
        return 1;
    }
    return 0;
}

static int pick_one(const tool_opts *t, const char *output, const char *cmd, int def);

int tool_pick_format(const tool_opts *t, const char *cmd, int def) {
    for (int k = 1; k < t->n_outputs; k++) {
        if (pick_one(t, t->outputs[k], cmd, def) < 0) return -1;
        for (int j = 0; j < k; j++)
            if (!strcmp(t->outputs[j], t->outputs[k])) return cli_usage(cmd, "-o %s is given twice", t->outputs[k]), -1;
    }
    return pick_one(t, t->output, cmd, def);
}

static int pick_one(const tool_opts *t, const char *output, const char *cmd, int def) {
    int ext = output ? qv_format_from_path(output) : -1;
    if (t->format >= 0) {
        if (ext >= 0 && ext != t->format)
            return cli_usage(cmd, "--format %s does not match the file name %s", qv_format_ext(t->format), output), -1;
        return t->format;
    }
    if (ext >= 0) return ext;
    if (output) return cli_usage(cmd, "cannot tell the format from '%s': name it .srt, .vtt, .json or .txt, or give --format", output), -1;
    return def;
}

static int check_one(const char *output);

int tool_check_output(const tool_opts *t) {
    for (int k = 0; k < t->n_outputs; k++)
        if (check_one(t->outputs[k])) return 1;
    return t->n_outputs ? 0 : check_one(t->output);
}

static int check_one(const char *output) {
    if (!output) return 0;
    char *dir = strdup(output);
    if (!dir) return cli_fail("out of memory");
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir ? 1 : 0] = 0;
        d = dir;
    }
    int ok = access(d, W_OK | X_OK) == 0;
    int rc = ok ? 0 : cli_fail("cannot write %s: the folder %s is missing or not writable", output, d);
    free(dir);
    return rc;
}

int tool_apply_kv(cli_opts *o, tool_opts *t, const char *key, const char *value, char *why, size_t cap) {
    /* A key is an option name: lower-case letters, digits and '-'. Anything else (notably '=': the
     * parsers would take "--prompt=x" as option and value, keep a pointer into name[] below after it
     * is gone, and "model=x" would slip past the batch-wide check) is refused, so every value the
     * parsers keep points into the job's own, owned value string. */
    size_t kn = strlen(key);
    int key_ok = kn > 0 && kn < 100 && key[0] >= 'a' && key[0] <= 'z';
    for (size_t k = 0; key_ok && k < kn; k++)
        key_ok = (key[k] >= 'a' && key[k] <= 'z') || (key[k] >= '0' && key[k] <= '9') || key[k] == '-';
    if (!key_ok) {
        snprintf(why, cap, "unknown option \"%.60s\" (option names are letters, digits, '-' and '_')", key);
        return -1;
    }
    char name[128];
    snprintf(name, sizeof name, "--%s", key);
    static const char *const batch_wide[] = {"--model", "--threads", "--fast", "--ref", "--chunk", "--chat",
                                             "--base", "--ctx-max", "--quiet", "--verbose", "--output"};
    for (size_t k = 0; k < sizeof batch_wide / sizeof *batch_wide; k++)
        if (strcmp(name, batch_wide[k]) == 0) {
            snprintf(why, cap, "option \"%s\" applies to the whole batch: give it on the command line", key);
            return -1;
        }
    static const char *const flags[] = {"--greedy", "--detail", "--full-answer"};
    for (size_t k = 0; k < sizeof flags / sizeof *flags; k++) {
        if (strcmp(name, flags[k]) != 0) continue;
        if (strcmp(value, "false") == 0) return 1;
        if (strcmp(value, "true") != 0) {
            snprintf(why, cap, "option \"%s\" takes true or false, not \"%s\"", key, value);
            return -1;
        }
        char *argv[] = {name, NULL};
        int i = 0;
        int r = tool_opts_parse(t, "batch", 1, argv, &i);
        if (r == 0) r = cli_opts_parse(o, "batch", 1, argv, &i);
        return r;
    }
    char *argv[] = {name, (char *)value, NULL};
    int i = 0;
    int r = tool_opts_parse(t, "batch", 2, argv, &i);
    if (r == 0) r = cli_opts_parse(o, "batch", 2, argv, &i);
    if (r < 0) snprintf(why, cap, "bad value \"%s\" for option \"%s\"", value, key);
    else if (r == 0) {
        char dashed[128];
        snprintf(dashed, sizeof dashed, "%s", name);
        for (char *q = dashed; *q; q++)
            if (*q == '_') *q = '-';
        const char *near = cli_nearest_option("batch", dashed);
        char sugg[96] = "";
        if (near && strlen(near) > 2) { /* as a job key: no dashes, '_' for '-' */
            snprintf(sugg, sizeof sugg, " (did you mean \"%s\"?)", near + 2);
            for (char *q = sugg; *q; q++)
                if (*q == '-') *q = '_';
        }
        snprintf(why, cap, "unknown option \"%s\"%s", key, sugg);
    }
    return r;
}

int tool_parse_video_cmd(const char *cmd, int argc, char **argv, cli_opts *o, tool_opts *t, const char **video,
                         void (*help)(void)) {
    cli_opts_init(o);
    tool_opts_init(t);
    *video = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        int r = cli_opts_parse(o, cmd, argc, argv, &i);
        if (r == 0) r = tool_opts_parse(t, cmd, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (strcmp(a, "--resume") == 0) {
            t->resume = 1;
            continue;
        }
        if (a[0] == '-' && a[1] != 0) return cli_unknown_option(cmd, a);
        if (*video) return tool_positional_mistake(cmd, *video, a);
        *video = a;
    }
    if (!*video) return cli_usage(cmd, "no video given: qv %s [options] VIDEO", cmd);
    if (!qv_file_exists(*video)) {
        if (!cli_looks_like_media_path(*video))
            return cli_usage(cmd, "'%s' is not a file: give the video; the question is --%s TEXT", *video,
                             strcmp(cmd, "summarize") == 0 ? "summary-prompt" : "prompt");
        return cli_fail("%s: no such file", *video);
    }
    if (t->resume && !t->n_outputs) return cli_usage(cmd, "--resume continues an output file: give -o FILE");
    return -1;
}

int tool_positional_mistake(const char *cmd, const char *video, const char *extra) {
    if (qv_file_exists(extra) || cli_looks_like_media_path(extra))
        return cli_usage(cmd, "one video at a time (got '%s' and '%s'): for several videos use qv batch, or one "
                              "run each", video, extra);
    int sum = strcmp(cmd, "summarize") == 0;
    return cli_usage(cmd, "'%s' is not a second video: %s takes one VIDEO; to ask something else give %s \"%s\"", extra, cmd,
                     sum ? "--summary-prompt" : "--prompt", extra);
}

/* where the finished windows go while the task runs (see tool_run_video_task) */
typedef struct {
    const tool_opts *t;
    int fmts[8];             /* format of each output file */
    int fmt_stdout;          /* format on stdout when there is no output file */
    int stream;              /* subtitles to stdout: print each cue as it is made */
    qv_out_meta meta;
    qv_progress *pg;
    cli_out out;             /* stdout */
    char *printed;           /* what has gone to stdout so far */
    size_t n_printed;
    int save_failed;         /* an output file could not be written */
    qv_err save_err;
} tool_sink;

/* the document of a result in format fmt */
static char *render(tool_sink *k, int fmt, const qv_task_result *r) { return qv_task_render((qv_out_format)fmt, r, &k->meta); }

/* stdout gets the part of doc beyond what it already has (cues render as a growing prefix) */
static void print_new(tool_sink *k, char *doc) {
    size_t n = strlen(doc);
    if (k->printed && (n < k->n_printed || memcmp(doc, k->printed, k->n_printed) != 0)) {
        free(doc); /* not an extension of what was printed (cannot happen for SRT/WebVTT): keep it for the end */
        return;
    }
    qv_progress_clear(k->pg);
    cli_out_write(&k->out, doc + k->n_printed, n - k->n_printed);
    free(k->printed);
    k->printed = doc;
    k->n_printed = n;
}

static void save_all(tool_sink *k, const qv_task_result *r) {
    for (int i = 0; i < k->t->n_outputs && !k->save_failed; i++) {
        char *doc = render(k, k->fmts[i], r);
        qv_status st = doc ? qv_write_file_atomic(k->t->outputs[i], doc, strlen(doc), &k->save_err)
                           : qv_errf(&k->save_err, QV_ERR_NOMEM, "out of memory");
        free(doc);
        if (st) {
            k->save_failed = 1;
            cli_output_fail_stop(); /* a full disk: stop now rather than compute what cannot be kept */
        }
    }
}

static void on_segment(void *user, const qv_task_result *so_far) {
    tool_sink *k = user;
    save_all(k, so_far);
    if (k->stream && !(k->fmt_stdout == QV_FMT_TEXT && so_far->n_segs == 1)) {
        char *doc = render(k, k->fmt_stdout, so_far);
        if (doc) print_new(k, doc);
    }
}

/* --resume: the finished cues of the first output that exists (JSON first: its texts are exact) */
static int load_resume(const char *cmd, tool_sink *k, qv_segment **segs, int *n) {
    *segs = NULL;
    *n = 0;
    int pick = -1;
    for (int pass = 0; pass < 2 && pick < 0; pass++)
        for (int i = 0; i < k->t->n_outputs && pick < 0; i++)
            if ((pass || k->fmts[i] == QV_FMT_JSON) && qv_file_exists(k->t->outputs[i])) pick = i;
    if (pick < 0) {
        qv_progress_log(k->pg, "nothing to resume from (no %s yet): starting at the beginning", k->t->outputs[0]);
        return 0;
    }
    qv_err err = {0};
    if (qv_cues_read(k->t->outputs[pick], (qv_out_format)k->fmts[pick], segs, n, &err))
        return cli_fail("cannot resume from %s: %s", k->t->outputs[pick], err.msg);
    qv_progress_log(k->pg, "resuming after %d finished window%s of %s", *n, *n == 1 ? "" : "s", k->t->outputs[pick]);
    (void)cmd;
    return 0;
}

int tool_run_video_task(const char *cmd, cli_opts *o, const tool_opts *t, const char *video, int fmt, int summarize) {
    if (tool_check_output(t)) return 1;
    tool_sink k = {.t = t, .fmt_stdout = fmt, .out = {stdout, 0}};
    for (int i = 0; i < t->n_outputs; i++) {
        int f = qv_format_from_path(t->outputs[i]);
        k.fmts[i] = f >= 0 ? f : fmt;
        if (summarize && !t->detail && (k.fmts[i] == QV_FMT_SRT || k.fmts[i] == QV_FMT_VTT))
            return cli_usage(cmd, "SRT and WebVTT hold the timestamped outline: add --detail (%s)", t->outputs[i]);
    }
    k.stream = !summarize && !t->n_outputs && fmt != QV_FMT_JSON;
    qv_prompt_media in = {video, 1};
    const char *q = summarize ? t->task.summary_prompt : t->task.prompt;
    cli_cost_plan plan = {.inputs = &in, .n_inputs = 1, .windows = !summarize || t->detail, .window_s = t->task.window_s,
                          .summary = summarize, .n_text = 30 + (q ? (int64_t)strlen(q) / 3 : 15),
                          .caption_tokens = o->max_tokens > 0 ? o->max_tokens : t->task.caption_tokens,
                          .summary_tokens = o->max_tokens > 0 ? o->max_tokens : 200};
    if (o->dry_run) return cli_cost_dry_run(o, cmd, &plan);
    qv_engine *e;
    int rc = cli_engine_open(o, cmd, &e);
    if (rc) return rc;
    qv_gen_opts go;
    cli_gen_opts(o, e, &go, 0); /* 0: the task's own default per window / summary */
    qv_progress *pg = cli_progress_open(o);
    k.pg = pg;
    go.on_progress = qv_progress_cb;
    go.user = pg;
    o->media.pool = qv_engine_pool(e);
    const char *prompt = summarize ? (t->task.summary_prompt ? t->task.summary_prompt : QV_DEFAULT_SUMMARY_PROMPT)
                                   : (t->task.prompt ? t->task.prompt : QV_DEFAULT_CAPTION_PROMPT);
    k.meta = (qv_out_meta){.video = video, .model = o->model, .task = cmd, .prompt = prompt};

    qv_task_opts to = t->task;
    to.on_segment = on_segment;
    to.seg_user = &k;
    qv_segment *prior = NULL;
    int n_prior = 0;
    if (t->resume && (summarize ? t->detail : 1)) rc = load_resume(cmd, &k, &prior, &n_prior);
    to.resume = prior;
    to.n_resume = n_prior;
    to.on_step = qv_progress_step_cb;
    to.user = pg;
    plan.skip_windows = n_prior;
    if (!rc) cli_cost_report(o, cmd, qv_engine_config(e), qv_engine_pool(e), &plan, 0);
    qv_progress_set_plan(pg, plan.plan_s, plan.plan_units); /* the whole run's ETA, over every window */

    qv_task_result res = {0};
    qv_err err = {0};
    qv_status st = rc ? QV_ERR_INVALID
                 : summarize ? qv_task_summarize(e, video, &o->media, &go, &to, t->detail, &res, &err)
                             : qv_task_subtitles(e, video, &o->media, &go, &to, &res, &err);
    qv_progress_clear(pg);
    if (rc) {
        /* load_resume said why */
    } else if (k.out.err) {
        rc = cli_out_fail(&k.out, "the captions to stdout");
    } else if (k.save_failed) {
        rc = cli_fail("%s; stopped", k.save_err.msg);
    } else if (st == QV_OK) {
        save_all(&k, &res); /* the whole document, summary included */
        if (!t->n_outputs) {
            char *doc = render(&k, fmt, &res);
            if (!doc) rc = cli_fail("out of memory");
            else if (k.printed && strncmp(doc, k.printed, k.n_printed) == 0) print_new(&k, doc);
            else {
                cli_out_write(&k.out, doc, strlen(doc));
                free(doc);
            }
            if (!rc && k.out.err) rc = cli_out_fail(&k.out, summarize ? "the summary to stdout" : "the captions to stdout");
        }
        if (!rc && k.save_failed) rc = cli_fail("%s", k.save_err.msg);
        if (!rc && t->n_outputs) {
            char names[512] = "";
            for (int i = 0; i < t->n_outputs; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", t->outputs[i]);
            if (summarize) qv_progress_log(pg, "wrote %s (%.1f s)", names, res.seconds);
            else
                qv_progress_log(pg, "wrote %d captions to %s (%.1f s, %ld tokens generated)", res.n_segs, names,
                                res.seconds, res.n_gen_tokens);
        }
    } else {
        char kept[600] = "";
        if (res.n_segs > 0 && t->n_outputs)
            snprintf(kept, sizeof kept, "; %d finished window%s kept in %s (the same command with --resume continues)",
                     res.n_segs, res.n_segs == 1 ? "" : "s", t->output);
        else if (res.n_segs > 0 && k.stream)
            snprintf(kept, sizeof kept, "; the %d finished captions were printed", res.n_segs);
        else if (res.n_segs > 0) { /* to stdout, not streamed (JSON, the outline of summarize): print what is done */
            char *doc = render(&k, fmt, &res);
            if (doc) cli_out_write(&k.out, doc, strlen(doc));
            free(doc);
            snprintf(kept, sizeof kept, "; the %d finished window%s printed", res.n_segs,
                     res.n_segs == 1 ? " was" : "s were");
        }
        else if (st == QV_ERR_CANCELLED)
            snprintf(kept, sizeof kept, "; nothing was finished");
        rc = st == QV_ERR_CANCELLED ? (cli_fail("stopped%s", kept), 130) : cli_fail("%s%s", err.msg, kept);
    }
    free(k.printed);
    qv_cues_free(prior, n_prior);
    qv_task_result_free(&res);
    qv_progress_free(pg);
    qv_engine_free(e);
    return rc;
}
