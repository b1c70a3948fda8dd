/* cmd_subtitles.c — qv subtitles: caption a video window by window and write SRT, WebVTT, JSON or text
 * (pipeline/tasks.c does the windows, pipeline/output.c the formats). Files are rewritten atomically after
 * each window (cli_tool.c), stdout gets each cue as it is made, --resume goes on after the finished ones. */
#include "cli.h"
#include "cli_tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: qv subtitles [options] VIDEO [-o OUT.srt|OUT.vtt|OUT.json|OUT.txt ...]\n\n"
           "Cuts the video into windows (--window seconds), asks the model to describe each window from its\n"
           "own frames, and writes the captions with the windows' start and end times. The format follows\n"
           "the output's extension or --format (srt, vtt, json, text); without -o the captions go to stdout\n"
           "(SRT unless --format says otherwise), each cue as soon as its window is done (JSON at the end).\n"
           "Finished work is never lost: after each window every output file is rewritten atomically with the\n"
           "cues so far, so Ctrl-C or a kill keeps them, and the same command with --resume continues.\n\n"
           "output:\n"
           "  -o, --output FILE        where to write (.srt .vtt .json .txt); repeat it for several formats:\n"
           "                           -o a.srt -o a.vtt -o a.json writes all three\n"
           "  --format NAME            srt | vtt | json | text\n"
           "  --resume                 keep the finished windows of the output file (JSON preferred) and go on\n"
           "                           after the last one (same video, --window, --start, --end)\n"
           "%s\n%s\n"
           "examples:\n"
           "  qv subtitles --model ~/Qwen2-VL-7B talk.mp4 -o talk.srt\n"
           "  qv subtitles talk.mp4 -o talk.vtt --window 5 --fps 1\n"
           "  qv subtitles talk.mp4 -o talk.json --prompt \"What is written on the slide?\"\n"
           "  qv subtitles talk.mp4 --start 600 --end 900 --format vtt > part.vtt\n",
           tool_opts_help, cli_opts_help);
}

int qv_cmd_subtitles(int argc, char **argv) {
    const char *cmd = "subtitles", *video;
    cli_opts o;
    tool_opts t;
    int rc = tool_parse_video_cmd(cmd, argc, argv, &o, &t, &video, help);
    if (rc >= 0) return rc;
    if (t.detail) return cli_usage(cmd, "--detail belongs to 'qv summarize'");
    int fmt = tool_pick_format(&t, cmd, QV_FMT_SRT);
    if (fmt < 0) return 2;
    return tool_run_video_task(cmd, &o, &t, video, fmt, 0);
}
