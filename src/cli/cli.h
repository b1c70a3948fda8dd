/* cli.h — the subcommands of the qv binary (one file each in src/cli/) and the small helpers they share.
 * Only main.c and src/cli/ may include every layer; each command parses its own options, prints its
 * own --help, and returns the process exit code (0 ok, 1 runtime error, 2 usage error). */
#ifndef QV_CLI_H
#define QV_CLI_H

#include <stdio.h>
#include "core.h"

int qv_cmd_info(int argc, char **argv);
int qv_cmd_gen_weights(int argc, char **argv);
int qv_cmd_tokenize(int argc, char **argv);
int qv_cmd_detokenize(int argc, char **argv);
int qv_cmd_preprocess(int argc, char **argv);
int qv_cmd_ask(int argc, char **argv);
int qv_cmd_subtitles(int argc, char **argv);
int qv_cmd_summarize(int argc, char **argv);
int qv_cmd_batch(int argc, char **argv);
int qv_cmd_chat(int argc, char **argv);
int qv_cmd_cache(int argc, char **argv);
int qv_cmd_bench(int argc, char **argv);
int qv_cmd_bench_accuracy(int argc, char **argv);   /* qv bench accuracy (cmd_bench_accuracy.c) */
int qv_cmd_demo(int argc, char **argv);
int qv_cmd_serve(int argc, char **argv);
int qv_cmd_quantize(int argc, char **argv);

/* "qv: <msg>" on stderr, one line; returns 1 (for `return cli_fail(...)`). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* usage error: "qv CMD: <msg> (see qv CMD --help)"; returns 2 */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse helpers: 1 on success, else print usage error. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
/* True when argv[i] is -h or --help. */
int cli_is_help(const char *a);
/* All of stdin into a malloc'd buffer (NUL bytes kept, up to 2 GiB); NULL on read error or OOM. */
char *cli_read_stdin(size_t *len);
/* Arguments of tokenize/detokenize: --model DIR | --tokenizer FILE (default $QV_MODEL), -h, and one flag
 * of the command's own (*flag_set). Returns -1 to go on (*path set), else the exit code (0 after help). */
int cli_tokenizer_args(const char *cmd, int argc, char **argv, const char *flag, int *flag_set, const char **path,
                       void (*usage)(FILE *));
/* Ctrl-C: main's signal handler calls cli_interrupt; cli_abort_cb (any user pointer) is the abort callback
 * every command passes to the library (qv_gen_opts.abort_cb, batch, gen-weights). The library reads no
 * global flag. */
void cli_interrupt(void);
int cli_interrupted(void);
int cli_abort_cb(void *user);
/* --model default: QV_MODEL from the environment, else NULL */
const char *cli_default_model(void);

/* ---- guardrails (cli_guard.c) ---- */
/* Runs subcommand cmd (main.c's table); 2 with a message when there is none. */
int qv_cli_dispatch(const char *cmd, int argc, char **argv);
/* 1 when s reads as a media file name (a video or image extension and no spaces). */
int cli_looks_like_media_path(const char *s);
/* The question of ask: refuses (usage error, returns 2) a missing question, the path of an existing file
 * or something that looks like a media path, with a hint; 0 when it is a question. n_inputs: inputs given. */
int cli_check_question(const char *cmd, const char *q, int n_inputs);
/* Times like ffmpeg's -ss: SS[.mmm], MM:SS[.mmm], HH:MM:SS[.mmm] -> seconds; 1 ok, 0 not a time. */
int cli_time_value(const char *s, double *out);
/* cli_time_value within [lo, hi], else a usage error naming opt (returns 0). */
int cli_parse_time(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
/* The candidate nearest to word (edit distance, or the one candidate it is a prefix of), NULL if none is
 * close. */
const char *cli_nearest(const char *word, const char *const *cands, int n);
/* The option of `qv cmd --help` nearest to name ("--x"), or NULL (a static buffer). */
const char *cli_nearest_option(const char *cmd, const char *name);
/* "unknown option 'X' (did you mean --Y?)" from the options of `qv cmd --help`; returns 2. */
int cli_unknown_option(const char *cmd, const char *arg);
/* A write that failed (stdout closed, disk full): from then on cli_abort_cb answers "stop", so the run
 * ends at its next poll, as after Ctrl-C; the caller reports the write error instead of a cancellation. */
void cli_output_fail_stop(void);
int cli_output_failed(void);
/* An output stream whose write errors (EPIPE, disk full) stop the run at once (cli_output_fail_stop). */
typedef struct {
    FILE *f;
    int err;                 /* errno of the first failed write, 0 while all is well */
} cli_out;
/* Writes and flushes; on error records it, cancels the run and returns -1 (and does nothing after). */
int cli_out_write(cli_out *o, const void *p, size_t n);
/* "qv: cannot write WHAT: REASON; stopped" (or the closed-pipe form); returns 1. */
int cli_out_fail(const cli_out *o, const char *what);

#endif
