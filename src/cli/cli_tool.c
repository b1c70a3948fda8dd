/* cli_tool.c — options and output glue of the tool subcommands (see cli_tool.h). */
#include "cli_tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

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
        t->output = strcmp(v, "-") == 0 ? NULL : v;
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
        if (!cli_parse_double(cmd, "--window", v, 0.1, 1e6, &d)) return -1;
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

int tool_pick_format(const tool_opts *t, const char *cmd, int def) {
    int ext = t->output ? qv_format_from_path(t->output) : -1;
    if (t->format >= 0) {
        if (ext >= 0 && ext != t->format)
            return cli_usage(cmd, "--format %s does not match the file name %s", qv_format_ext(t->format), t->output), -1;
        return t->format;
    }
    if (ext >= 0) return ext;
    if (t->output) return cli_usage(cmd, "cannot tell the format from '%s': name it .srt, .vtt, .json or .txt, or give --format", t->output), -1;
    return def;
}

int tool_check_output(const tool_opts *t) {
    if (!t->output) return 0;
    char *dir = strdup(t->output);
    if (!dir) return cli_fail("out of memory");
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir ? 1 : 0] = 0;
        d = dir;
    }
    int ok = access(d, W_OK | X_OK) == 0;
    int rc = ok ? 0 : cli_fail("cannot write %s: the folder %s is missing or not writable", t->output, d);
    free(dir);
    return rc;
}

int tool_write(const tool_opts *t, const char *doc) {
    if (!t->output) {
        fputs(doc, stdout);
        fflush(stdout);
        return ferror(stdout) ? cli_fail("writing to stdout failed") : 0;
    }
    qv_err err = {0};
    if (qv_write_file_atomic(t->output, doc, strlen(doc), &err) != QV_OK) return cli_fail("%s", err.msg);
    return 0;
}

int tool_apply_kv(cli_opts *o, tool_opts *t, const char *key, const char *value, char *why, size_t cap) {
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
    else if (r == 0) snprintf(why, cap, "unknown option \"%s\"", key);
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
        if (a[0] == '-' && a[1] != 0) return cli_usage(cmd, "unknown option '%s'", a);
        if (*video) return cli_usage(cmd, "one video at a time (got '%s' and '%s')", *video, a);
        *video = a;
    }
    if (!*video) return cli_usage(cmd, "no video given");
    return -1;
}

int tool_run_video_task(const char *cmd, cli_opts *o, const tool_opts *t, const char *video, int fmt, int summarize) {
    if (tool_check_output(t)) return 1;
    qv_engine *e;
    int rc = cli_engine_open(o, cmd, &e);
    if (rc) return rc;
    qv_gen_opts go;
    cli_gen_opts(o, e, &go, 0); /* 0: the task's own default per window / summary */
    qv_progress *pg = cli_progress_open(o);
    go.on_progress = qv_progress_cb;
    go.user = pg;
    o->media.pool = qv_engine_pool(e);

    qv_task_opts to = t->task;
    to.on_step = qv_progress_step_cb;
    to.user = pg;
    qv_task_result res = {0};
    qv_err err = {0};
    qv_status st = summarize ? qv_task_summarize(e, video, &o->media, &go, &to, t->detail, &res, &err)
                             : qv_task_subtitles(e, video, &o->media, &go, &to, &res, &err);
    qv_progress_clear(pg);
    if (st == QV_OK) {
        const char *prompt = summarize ? (t->task.summary_prompt ? t->task.summary_prompt : QV_DEFAULT_SUMMARY_PROMPT)
                                       : (t->task.prompt ? t->task.prompt : QV_DEFAULT_CAPTION_PROMPT);
        qv_out_meta meta = {.video = video, .model = o->model, .task = cmd, .prompt = prompt};
        char *doc = qv_task_render((qv_out_format)fmt, &res, &meta);
        if (!doc) rc = cli_fail("out of memory");
        else rc = tool_write(t, doc);
        if (!rc && t->output) {
            if (summarize) qv_progress_log(pg, "wrote %s (%.1f s)", t->output, res.seconds);
            else
                qv_progress_log(pg, "wrote %d captions to %s (%.1f s, %ld tokens generated)", res.n_segs, t->output,
                                res.seconds, res.n_gen_tokens);
        }
        free(doc);
    } else {
        rc = st == QV_ERR_CANCELLED ? (cli_fail("stopped by Ctrl-C; nothing written"), 130) : cli_fail("%s", err.msg);
    }
    qv_task_result_free(&res);
    qv_progress_free(pg);
    qv_engine_free(e);
    return rc;
}
