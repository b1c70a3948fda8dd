/* cmd_subtitles.c — qv subtitles: caption a video window by window and write SRT, WebVTT, JSON or text
 * (pipeline/tasks.c does the windows, pipeline/output.c the formats). The file is written atomically. */
#include "cli.h"
#include "cli_tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: qv subtitles [options] VIDEO [-o OUT.srt|OUT.vtt|OUT.json|OUT.txt]\n\n"
           "Cuts the video into windows (--window seconds), asks the model to describe each window from its\n"
           "own frames, and writes the captions with the windows' start and end times. The format follows\n"
           "the output's extension or --format (srt, vtt, json, text); without -o the captions go to stdout\n"
           "(SRT unless --format says otherwise). The file is replaced atomically when complete.\n\n"
           "output:\n"
           "  -o, --output FILE        where to write (.srt .vtt .json .txt)\n"
           "  --format NAME            srt | vtt | json | text\n"
           "%s\n%s\n"
           "examples:\n"
           "  qv subtitles --model ~/Qwen2-VL-7B talk.mp4 -o talk.srt\n"
           "  qv subtitles talk.mp4 -o talk.vtt --window 5 --fps 1\n"
           "  qv subtitles talk.mp4 -o talk.json --prompt \"What is written on the slide?\"\n"
           "  qv subtitles talk.mp4 --start 600 --end 900 --format vtt > part.vtt\n",
           tool_opts_help, cli_opts_help);
}

int qv_cmd_subtitles(int argc, char **argv) {
    const char *cmd = "subtitles";
    cli_opts o;
    tool_opts t;
    cli_opts_init(&o);
    tool_opts_init(&t);
    const char *video = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        int r = cli_opts_parse(&o, cmd, argc, argv, &i);
        if (r == 0) r = tool_opts_parse(&t, cmd, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (a[0] == '-' && a[1] != 0) return cli_usage(cmd, "unknown option '%s'", a);
        if (video) return cli_usage(cmd, "one video at a time (got '%s' and '%s')", video, a);
        video = a;
    }
    if (!video) return cli_usage(cmd, "no video given");
    if (t.detail) return cli_usage(cmd, "--detail belongs to 'qv summarize'");
    int fmt = tool_pick_format(&t, cmd, QV_FMT_SRT);
    if (fmt < 0) return 2;

    if (tool_check_output(&t)) return 1;
    qv_engine *e;
    int rc = cli_engine_open(&o, cmd, &e);
    if (rc) return rc;
    qv_gen_opts go;
    cli_gen_opts(&o, e, &go, 0); /* 0: the task's per-window default */
    qv_progress *pg = cli_progress_open(&o);
    go.on_progress = qv_progress_cb;
    go.user = pg;
    o.media.pool = qv_engine_pool(e);

    qv_task_result res = {0};
    qv_err err = {0};
    qv_status st = qv_task_subtitles(e, video, &o.media, &go, &t.task, pg, &res, &err);
    if (st == QV_OK) {
        qv_out_meta meta = {.video = video, .model = o.model, .task = "subtitles",
                            .prompt = t.task.prompt ? t.task.prompt : QV_DEFAULT_CAPTION_PROMPT};
        char *doc = qv_task_render((qv_out_format)fmt, &res, &meta);
        qv_progress_clear(pg);
        if (!doc) rc = cli_fail("out of memory");
        else rc = tool_write(&t, doc);
        if (!rc && t.output)
            qv_progress_log(pg, "wrote %d captions to %s (%.1f s, %ld tokens generated)", res.n_segs, t.output,
                            res.seconds, res.n_gen_tokens);
        free(doc);
    } else {
        qv_progress_clear(pg);
        rc = st == QV_ERR_CANCELLED ? (cli_fail("stopped by Ctrl-C; nothing written"), 130) : cli_fail("%s", err.msg);
    }
    qv_task_result_free(&res);
    qv_progress_free(pg);
    qv_engine_free(e);
    return rc;
}
