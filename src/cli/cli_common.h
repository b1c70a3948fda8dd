/* cli_common.h — the options every model-running subcommand shares (ask, subtitles, summarize, batch):
 * model, threads, numeric path, media sampling, generation and sampling, verbosity; one parser, one help
 * block, and the glue from them to the engine (pipeline/engine.h).
 *
 *   cli_opts o; cli_opts_init(&o);
 *   for (int i = 1; i < argc; i++) {
 *       int r = cli_opts_parse(&o, "subtitles", argc, argv, &i);   // consumes "--fps 1" or "--fps=1"
 *       if (r < 0) return 2;                                       // usage error already printed
 *       if (r > 0) continue;
 *       ... the command's own options and positionals ...
 *   }
 *   qv_engine *e; int rc = cli_engine_open(&o, "subtitles", &e); if (rc) return rc;
 *   qv_gen_opts go; cli_gen_opts(&o, e, &go, 64);               // 64 = this command's max_tokens default
 *   qv_progress *pg = cli_progress_open(&o); go.on_progress = qv_progress_cb; go.user = pg;
 *   qv_engine_run_raw(e, prompt, &o.media, &go, &res, &err);
 *
 * Help text: print cli_opts_help after the command's own options. The "tool" subcommands (subtitles,
 * summarize, batch) are meant to use this too, so options stay the same across commands. */
#ifndef QV_CLI_COMMON_H
#define QV_CLI_COMMON_H

#include <stdint.h>

#include "engine.h"
#include "prompt.h"
#include "progress.h"

typedef struct {
    const char *model;       /* --model DIR (default $QV_MODEL) */
    int n_threads;           /* --threads N (0 = all CPUs) */
    int prec;                /* --fast / --ref; -1 = default (fast) */
    int quant;               /* --q8: QV_QUANT_Q8 (8-bit language-model weights); 0 = bf16 */
    int chunk;               /* --chunk N prefill tokens per pass (0 = engine default) */
    int chat;                /* --chat / --base prompt form; -1 = from the checkpoint */
    int n_ctx_max;           /* --ctx-max N (0 = memory decides) */
    qv_media_opts media;     /* --fps --max-frames --min-pixels --max-pixels --total-pixels --start --end --autorotate */
    int max_tokens;          /* --max-tokens N; -1 = the command's default */
    int greedy;              /* --greedy (1); -1 = unset (sampling options switch greedy off) */
    double temperature;      /* --temperature T; < 0 unset */
    int top_k;               /* --top-k K; < 0 unset */
    double top_p;            /* --top-p P; < 0 unset */
    double repetition_penalty; /* --repetition-penalty R; < 0 unset */
    int seed_set;
    uint64_t seed;           /* --seed N */
    int quiet, verbose;      /* --quiet / --verbose */
    int dry_run;             /* --dry-run: print the cost line (cli_cost.h) and exit */
    const char *cache_dir;   /* --cache-dir DIR (default $XDG_CACHE_HOME/qv, else ~/.cache/qv) */
    int no_cache;            /* --no-cache */
    uint64_t cache_max;      /* --cache-max SIZE (bytes; 0 = 20 GiB) */
} cli_opts;

void cli_opts_init(cli_opts *o);

/* Looks at argv[*i]: a shared option is consumed (with its value, *i advanced) -> 1; not a shared option
 * -> 0; a bad value -> usage error printed, -1. */
int cli_opts_parse(cli_opts *o, const char *cmd, int argc, char **argv, int *i);

/* One run's result as one JSON object (text, ids, grids, cache, timings; "question" when non-NULL); malloc'd,
 * NULL on OOM. (cmd_ask.c) */
char *cli_result_json(const qv_result *r, double t_load, const char *question);

/* "20G", "500M", "1.5T", "4096" (bytes; K M G T are powers of 1024) -> bytes; 0 on a bad value. */
uint64_t cli_parse_size(const char *s);

/* The help block of the shared options (ends with a newline). */
extern const char cli_opts_help[];

/* Installs the log level (--quiet/--verbose) and loads the model; on error prints one line and returns the
 * exit code (1; 2 when no model was given), else 0. */
int cli_engine_open(const cli_opts *o, const char *cmd, qv_engine **out);

/* Generation options from the engine's defaults + the command line; default_max_tokens applies when no
 * --max-tokens was given. */
void cli_gen_opts(const cli_opts *o, const qv_engine *e, qv_gen_opts *go, int default_max_tokens);

/* Progress on stderr (one updating line on a terminal, plain lines otherwise, nothing with --quiet). */
qv_progress *cli_progress_open(const cli_opts *o);

/* 1 when the path names a still image by its extension (.png .jpg .jpeg .webp .bmp .tif .tiff), else 0. */
int cli_is_image_path(const char *path);

/* For a "value" option: the value of argv[*i] given as "--opt=value" or "--opt value" (then *i advances).
 * Returns NULL (and prints a usage error) when the value is missing. name is "--opt". */
const char *cli_opt_value(const char *cmd, const char *name, int argc, char **argv, int *i);
/* 1 when argv[i] is name or starts with "name=" */
int cli_opt_is(const char *arg, const char *name);
/* --video FILE / --image FILE at argv[*i]: appended to media[*n] (at most max) -> 1; another option -> 0;
 * a missing value or too many inputs -> usage error printed, -1. */
int cli_media_opt(const char *cmd, int argc, char **argv, int *i, qv_prompt_media *media, int *n, int max);

#endif
