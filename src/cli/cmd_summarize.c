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
           "  -o, --output FILE        where to write (.txt .json; .srt/.vtt hold only the outline); repeatable\n"
           "  --format NAME            text (default) | json | srt | vtt\n"
           "  --resume                 with --detail: keep the outline windows already in the output file and\n"
           "                           go on after them (an interrupted run keeps the outline made so far)\n"
           "%s\n%s\n"
           "examples:\n"
           "  qv summarize --model ~/Qwen2-VL-7B lecture.mp4\n"
           "  qv summarize lecture.mp4 --detail --window 60 -o lecture.txt\n"
           "  qv summarize lecture.mp4 --detail --format json --max-tokens 300 > lecture.json\n",
           tool_opts_help, cli_opts_help);
}

int qv_cmd_summarize(int argc, char **argv) {
    const char *cmd = "summarize", *video;
    cli_opts o;
    tool_opts t;
    int rc = tool_parse_video_cmd(cmd, argc, argv, &o, &t, &video, help);
    if (rc >= 0) return rc;
    int fmt = tool_pick_format(&t, cmd, QV_FMT_TEXT);
    if (fmt < 0) return 2;
    if ((fmt == QV_FMT_SRT || fmt == QV_FMT_VTT) && !t.detail)
        return cli_usage(cmd, "SRT and WebVTT hold the timestamped outline: add --detail");
    if (!t.window_given) t.task.window_s = 0; /* the outline: about a dozen windows */
    return tool_run_video_task(cmd, &o, &t, video, fmt, 1);
}
