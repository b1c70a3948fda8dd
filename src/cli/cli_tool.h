/* cli_tool.h — options shared by the tool subcommands (subtitles, summarize, batch, demo) on top of
 * cli_common.h: windows, prompts, output format and file; and the glue that writes results. */
#ifndef QV_CLI_TOOL_H
#define QV_CLI_TOOL_H

#include "cli_common.h"
#include "tasks.h"

typedef struct {
    qv_task_opts task;       /* --window, --prompt, --summary-prompt, --framing, --full-answer */
    const char *output;      /* -o / --output PATH (NULL = stdout); the first one when several */
    const char *outputs[8];  /* every -o (subtitles/summarize write them all: -o a.srt -o a.vtt -o a.json) */
    int n_outputs;
    int resume;              /* --resume (subtitles, summarize --detail): continue after the finished windows */
    int format;              /* --format NAME; -1 = from the output's extension, else the command's default */
    int detail;              /* --detail (summarize) */
    int window_given;        /* --window was given (summarize picks its own otherwise) */
} tool_opts;

void tool_opts_init(tool_opts *t);
/* Like cli_opts_parse for the tool options: 1 consumed, 0 not one of them, -1 usage error printed. */
int tool_opts_parse(tool_opts *t, const char *cmd, int argc, char **argv, int *i);
extern const char tool_opts_help[];

/* The format to write: --format, else the output's extension, else def. Prints a usage error and returns
 * -1 when --format and the extension disagree or the extension is unknown (checked for every output). */
int tool_pick_format(const tool_opts *t, const char *cmd, int def);

/* Before a long run: 0 when t->output's folder is writable (or no output), else prints why and returns 1. */
int tool_check_output(const tool_opts *t);

/* Applies one "--key value" pair (batch job options) to the shared and tool options. value "true" of a
 * flag sets it, "false" leaves it. Returns 1 ok, 0 unknown key, -1 bad value (why filled). */
int tool_apply_kv(cli_opts *o, tool_opts *t, const char *key, const char *value, char *why, size_t cap);

/* "qv CMD [options] VIDEO" for subtitles and summarize: parses the shared and tool options and the one
 * video. Returns -1 to go on (*video set), else the exit code (0 after printing help, 2 usage error). */
int tool_parse_video_cmd(const char *cmd, int argc, char **argv, cli_opts *o, tool_opts *t, const char **video,
                         void (*help)(void));
/* A second positional argument of subtitles/summarize: says what to do instead (usage error, returns 2). */
int tool_positional_mistake(const char *cmd, const char *video, const char *extra);
/* Loads the model, runs the subtitles task (summarize = 0) or the summary (summarize = 1) on video with
 * progress, renders format fmt (stdout; each output file in its own extension's format) and writes it;
 * returns the exit code (130 after Ctrl-C). Finished work is never lost: after each window every output
 * file is rewritten atomically with the cues so far and subtitles stream each cue to stdout (SRT, WebVTT,
 * text; JSON at the end); t->resume continues after the cues of an existing output (JSON preferred). */
int tool_run_video_task(const char *cmd, cli_opts *o, const tool_opts *t, const char *video, int fmt, int summarize);

#endif
