/* cmd_summarize.c — qv summarize: one summary of a whole video (or of [--start, --end]); --detail adds a
 * timestamped outline made of per-window captions (pipeline/tasks.c). */
#include "cli.h"
#include "cli_tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: qv summarize [options] VIDEO [-o OUT.txt|OUT.json]\n\n"
           "Asks the model for one summary of the whole video and prints it (or writes it with -o). With\n"
           "--detail the video is also cut into windows (--window seconds; by default about a dozen, at least\n"
           "10 s each) and each gets a caption from its own frames: a timestamped outline after the summary.\n\n"
           "output:\n"
           "  --detail                 add the timestamped outline\n"
           "  -o, --output FILE        where to write (.txt .json; .srt/.vtt hold only the outline)\n"
           "  --format NAME            text (default) | json | srt | vtt\n"
           "%s\n%s\n"
           "examples:\n"
           "  qv summarize --model ~/Qwen2-VL-7B lecture.mp4\n"
           "  qv summarize lecture.mp4 --detail --window 60 -o lecture.txt\n"
           "  qv summarize lecture.mp4 --detail --format json --max-tokens 300 > lecture.json\n",
           tool_opts_help, cli_opts_help);
}

int qv_cmd_summarize(int argc, char **argv) {
    const char *cmd = "summarize";
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
    int fmt = tool_pick_format(&t, cmd, QV_FMT_TEXT);
    if (fmt < 0) return 2;
    if ((fmt == QV_FMT_SRT || fmt == QV_FMT_VTT) && !t.detail)
        return cli_usage(cmd, "SRT and WebVTT hold the timestamped outline: add --detail");

    if (!t.window_given) t.task.window_s = 0; /* the outline: about a dozen windows */
    if (tool_check_output(&t)) return 1;
    qv_engine *e;
    int rc = cli_engine_open(&o, cmd, &e);
    if (rc) return rc;
    qv_gen_opts go;
    cli_gen_opts(&o, e, &go, 0);
    qv_progress *pg = cli_progress_open(&o);
    go.on_progress = qv_progress_cb;
    go.user = pg;
    o.media.pool = qv_engine_pool(e);

    qv_task_result res = {0};
    qv_err err = {0};
    qv_status st = qv_task_summarize(e, video, &o.media, &go, &t.task, t.detail, pg, &res, &err);
    qv_progress_clear(pg);
    if (st == QV_OK) {
        qv_out_meta meta = {.video = video, .model = o.model, .task = "summarize",
                            .prompt = t.task.summary_prompt ? t.task.summary_prompt : QV_DEFAULT_SUMMARY_PROMPT};
        char *doc = qv_task_render((qv_out_format)fmt, &res, &meta);
        if (!doc) rc = cli_fail("out of memory");
        else rc = tool_write(&t, doc);
        if (!rc && t.output) qv_progress_log(pg, "wrote %s (%.1f s)", t.output, res.seconds);
        free(doc);
    } else {
        rc = st == QV_ERR_CANCELLED ? (cli_fail("stopped by Ctrl-C; nothing written"), 130) : cli_fail("%s", err.msg);
    }
    qv_task_result_free(&res);
    qv_progress_free(pg);
    qv_engine_free(e);
    return rc;
}
