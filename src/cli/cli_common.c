/* cli_common.c — shared options of the model-running subcommands (see cli_common.h). */
#include "cli_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "cache.h"

const char cli_opts_help[] =
    "model and compute:\n"
    "  --model DIR              Qwen2-VL checkpoint folder (default: $QV_MODEL)\n"
    "  --threads N              worker threads (default: all CPUs)\n"
    "  --fast | --ref           numeric path: 12-bit integer products and a half-precision KV cache\n"
    "                           (default, fast; top-1 99.6 % against --ref, README: accuracy) or float32\n"
    "                           (reference: the slower, exact path)\n"
    "  --q8                     8-bit language-model weights, made at load: ~1.7x faster decode, 9 GB for the\n"
    "                           7B; top-1 ~97 % against --ref on random-weight models (README: accuracy)\n"
    "  --q4                     4-bit language-model weights (Q4_0-style): ~3x faster decode, ~5.5 GB for the\n"
    "                           7B; answers drift further from the reference (README: accuracy)\n"
    "  --chunk N                prompt tokens per prefill pass (default 256; --ref results do not depend on\n"
    "                           it, the fast paths only to their rounding)\n"
    "  --ctx-max N              refuse prompts + --max-tokens above N tokens\n"
    "  --chat | --base          prompt form (default: chat when the checkpoint's template has roles)\n"
    "media:\n"
    "  --fps F                  frames sampled per second of video (default 2)\n"
    "  --max-frames N           at most N frames per video (default 768)\n"
    "  --min-pixels P           smallest frame area in pixels\n"
    "  --max-pixels P           largest frame area in pixels\n"
    "  --total-pixels P         pixel budget over all frames of a video (default 19267584)\n"
    "  --start T, --end T       use only [T, E] of each video; times are seconds (90, 1.5), MM:SS or\n"
    "                           HH:MM:SS(.mmm), as ffmpeg's -ss\n"
    "  --autorotate             turn photos (EXIF orientation) and videos (rotation metadata) upright; the\n"
    "                           reference does not: by default pixels are used as stored\n"
    "generation:\n"
    "  --max-tokens N           tokens to generate at most\n"
    "  --greedy                 always the most likely token (default for base models)\n"
    "  --temperature T          sample with temperature T (switches sampling on; 0 = greedy)\n"
    "  --top-k K, --top-p P     sampling filters\n"
    "  --repetition-penalty R   HF-style penalty over the ids seen (1 = off)\n"
    "  --seed N                 random seed for sampling (same seed, same answer)\n"
    "cache:\n"
    "  --cache-dir DIR          keep vision embeddings and prompt prefixes here for later runs (default\n"
    "                           $XDG_CACHE_HOME/qv, else ~/.cache/qv); see qv cache --help\n"
    "  --no-cache               neither read nor write the cache folder\n"
    "  --cache-max SIZE         size cap of the folder, least recently used entries go first (default 20G)\n"
    "output:\n"
    "  --dry-run                print the cost line (frames, resolution, visual tokens, estimated time on\n"
    "                           this CPU; also as JSON on stdout) and exit: no weights loaded, no frame decoded\n"
    "  --quiet                  no progress or notes on stderr (nor the cost line printed before a run)\n"
    "  --verbose                more notes on stderr\n";

void cli_opts_init(cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = cli_default_model();
    o->prec = -1;
    o->chat = -1;
    o->media = qv_media_default_opts();
    o->max_tokens = -1;
    o->greedy = -1;
    o->temperature = -1;
    o->top_k = -1;
    o->top_p = -1;
    o->repetition_penalty = -1;
}

int cli_opt_is(const char *arg, const char *name) {
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == 0 || arg[n] == '=');
}

const char *cli_opt_value(const char *cmd, const char *name, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (a[n] == '=') return a + n + 1;
    if (*i + 1 >= argc) {
        cli_usage(cmd, "%s needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

int cli_opts_parse(cli_opts *o, const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (strcmp(a, "-q") == 0) return o->quiet = 1, 1;
    if (strcmp(a, "-v") == 0) return o->verbose = 1, 1;
    if (strncmp(a, "--", 2) != 0) return 0;
    long l;
    double d;
    const char *v;
#define NEEDVAL(name) if (cli_opt_is(a, name) && !(v = cli_opt_value(cmd, name, argc, argv, i))) return -1
    /* flags */
    if (strcmp(a, "--fast") == 0) return o->prec = QV_PREC_FAST, 1;
    if (strcmp(a, "--ref") == 0) return o->prec = QV_PREC_REF, 1;
    if (strcmp(a, "--q8") == 0) return o->quant = QV_QUANT_Q8, 1;
    if (strcmp(a, "--q4") == 0) return o->quant = QV_QUANT_Q4, 1;
    if (strcmp(a, "--chat") == 0) return o->chat = 1, 1;
    if (strcmp(a, "--base") == 0) return o->chat = 0, 1;
    if (strcmp(a, "--greedy") == 0) return o->greedy = 1, 1;
    if (strcmp(a, "--quiet") == 0) return o->quiet = 1, 1;
    if (strcmp(a, "--autorotate") == 0) return o->media.autorotate = 1, 1;
    if (strcmp(a, "--verbose") == 0) return o->verbose = 1, 1;
    if (strcmp(a, "--dry-run") == 0) return o->dry_run = 1, 1;
    if (strcmp(a, "--no-cache") == 0) return o->no_cache = 1, 1;
    /* valued options */
    static const char *const valued[] = {"--model", "--threads", "--chunk", "--ctx-max", "--fps", "--max-frames",
                                         "--min-pixels", "--max-pixels", "--total-pixels", "--start", "--end",
                                         "--max-tokens", "--temperature", "--top-k", "--top-p",
                                         "--repetition-penalty", "--seed", "--cache-dir", "--cache-max"};
    int known = 0;
    for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= cli_opt_is(a, valued[k]);
    if (!known) return 0;
    v = NULL;
    for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) NEEDVAL(valued[k]);
    if (cli_opt_is(a, "--model")) {
        if (!*v) return cli_usage(cmd, "--model needs a folder"), -1;
        o->model = v;
    } else if (cli_opt_is(a, "--threads")) {
        if (!cli_parse_int(cmd, "--threads", v, 0, 1024, &l)) return -1;
        o->n_threads = (int)l;
    } else if (cli_opt_is(a, "--chunk")) {
        if (!cli_parse_int(cmd, "--chunk", v, 1, 1 << 20, &l)) return -1;
        o->chunk = (int)l;
    } else if (cli_opt_is(a, "--ctx-max")) {
        if (!cli_parse_int(cmd, "--ctx-max", v, 1, 1 << 30, &l)) return -1;
        o->n_ctx_max = (int)l;
    } else if (cli_opt_is(a, "--fps")) {
        if (!cli_parse_double(cmd, "--fps", v, 1e-6, 1000, &d)) return -1;
        o->media.fps = d;
    } else if (cli_opt_is(a, "--max-frames")) {
        if (!cli_parse_int(cmd, "--max-frames", v, 2, 100000, &l)) return -1;
        o->media.max_frames = (int)l;
        if (o->media.min_frames > l) o->media.min_frames = (int)l;
    } else if (cli_opt_is(a, "--min-pixels")) {
        if (!cli_parse_int(cmd, "--min-pixels", v, 784, 1L << 40, &l)) return -1;
        o->media.min_pixels = l;
    } else if (cli_opt_is(a, "--max-pixels")) {
        if (!cli_parse_int(cmd, "--max-pixels", v, 784, 1L << 40, &l)) return -1;
        o->media.max_pixels = l;
    } else if (cli_opt_is(a, "--total-pixels")) {
        if (!cli_parse_int(cmd, "--total-pixels", v, 784, 1L << 50, &l)) return -1;
        o->media.total_pixels = l;
    } else if (cli_opt_is(a, "--start")) {
        if (!cli_parse_time(cmd, "--start", v, 0, 1e9, &d)) return -1;
        o->media.start_s = d;
    } else if (cli_opt_is(a, "--end")) {
        if (!cli_parse_time(cmd, "--end", v, 0, 1e9, &d)) return -1;
        o->media.end_s = d;
    } else if (cli_opt_is(a, "--max-tokens")) {
        if (!cli_parse_int(cmd, "--max-tokens", v, 0, 1 << 24, &l)) return -1;
        o->max_tokens = (int)l;
    } else if (cli_opt_is(a, "--temperature")) {
        if (!cli_parse_double(cmd, "--temperature", v, 0, 100, &d)) return -1;
        o->temperature = d;
    } else if (cli_opt_is(a, "--top-k")) {
        if (!cli_parse_int(cmd, "--top-k", v, 0, 1 << 24, &l)) return -1;
        o->top_k = (int)l;
    } else if (cli_opt_is(a, "--top-p")) {
        if (!cli_parse_double(cmd, "--top-p", v, 1e-6, 1, &d)) return -1;
        o->top_p = d;
    } else if (cli_opt_is(a, "--repetition-penalty")) {
        if (!cli_parse_double(cmd, "--repetition-penalty", v, 1e-3, 100, &d)) return -1;
        o->repetition_penalty = d;
    } else if (cli_opt_is(a, "--cache-dir")) {
        if (!*v) return cli_usage(cmd, "--cache-dir needs a folder"), -1;
        o->cache_dir = v;
    } else if (cli_opt_is(a, "--cache-max")) {
        if (!(o->cache_max = cli_parse_size(v)))
            return cli_usage(cmd, "--cache-max takes a size such as 20G, 500M or 1T, not '%s'", v), -1;
    } else if (cli_opt_is(a, "--seed")) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-') return cli_usage(cmd, "--seed takes a whole number, not '%s'", v), -1;
        o->seed = s;
        o->seed_set = 1;
    }
#undef NEEDVAL
    return 1;
}

static void log_stderr(int level, const char *msg, void *user) {
    (void)user;
    char safe[4096];
    fprintf(stderr, "%s%s\n", level == 0 ? "qv: error: " : "", qv_term_safe(msg, safe, sizeof safe));
}

int cli_engine_open(const cli_opts *o, const char *cmd, qv_engine **out) {
    *out = NULL;
    qv_log_set(log_stderr, NULL, o->quiet ? 0 : o->verbose ? 2 : 1);
    if (!o->model) return cli_usage(cmd, "no model: give --model DIR or set QV_MODEL");
    if (o->media.start_s >= 0 && o->media.end_s >= 0 && o->media.end_s <= o->media.start_s)
        return cli_usage(cmd, "--end (%g) must come after --start (%g)", o->media.end_s, o->media.start_s);
    qv_engine_params ep = qv_engine_default_params();
    ep.model_dir = o->model;
    ep.n_threads = o->n_threads;
    if (o->prec >= 0) ep.prec = (qv_precision)o->prec;
    if (o->chunk > 0) ep.chunk = o->chunk;
    ep.quant = (qv_quant)o->quant;
    ep.chat = o->chat;
    ep.n_ctx_max = o->n_ctx_max;
    char *cache_dir = NULL;
    if (!o->no_cache) {
        cache_dir = o->cache_dir ? strdup(o->cache_dir) : qv_cache_default_dir();
        if (!cache_dir) qv_log(1, "qv: warning: no cache folder ($XDG_CACHE_HOME and $HOME unset); running uncached");
    }
    ep.cache_dir = cache_dir;
    ep.cache_max = o->cache_max;
    qv_err err = {0};
    qv_status cst = qv_engine_create(out, &ep, &err);
    free(cache_dir);
    if (cst != QV_OK) return cli_fail("%s", err.msg);
    qv_log(2, "loaded %s in %.2f s (%s prompts, %s path)", o->model, qv_engine_load_seconds(*out),
           qv_engine_is_chat(*out) ? "chat" : "base", ep.prec == QV_PREC_REF ? "reference" : "fast");
    if (ep.quant != QV_QUANT_NONE)
        qv_log(2, "%d-bit language-model weights (%s, kernels %s)", ep.quant == QV_QUANT_Q4 ? 4 : 8,
               ep.quant == QV_QUANT_Q4 ? "q4" : "q8", qv_q8_kernels_name());
    return 0;
}

void cli_gen_opts(const cli_opts *o, const qv_engine *e, qv_gen_opts *go, int default_max_tokens) {
    *go = qv_engine_default_gen_opts(e);
    go->abort_cb = cli_abort_cb; /* Ctrl-C */
    go->max_tokens = o->max_tokens >= 0 ? o->max_tokens : default_max_tokens;
    qv_sampler_params *s = &go->sampling;
    int sampling = o->temperature >= 0 || o->top_k >= 0 || o->top_p >= 0;
    if (sampling) s->greedy = 0;
    if (o->temperature >= 0) s->temperature = (float)o->temperature;
    if (o->top_k >= 0) s->top_k = o->top_k;
    if (o->top_p >= 0) s->top_p = (float)o->top_p;
    if (o->repetition_penalty >= 0) s->repetition_penalty = (float)o->repetition_penalty;
    if (o->seed_set) s->seed = o->seed;
    if (o->greedy == 1 || o->temperature == 0) s->greedy = 1; /* temperature 0: greedy, as elsewhere */
}

qv_progress *cli_progress_open(const cli_opts *o) {
    return qv_progress_create(stderr, o->quiet ? QV_PROGRESS_QUIET : QV_PROGRESS_AUTO);
}

int cli_is_image_path(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (strcasecmp(dot, ext[i]) == 0) return 1;
    return 0;
}

uint64_t cli_parse_size(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || v > 1e18) return 0;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1048576.0; end++; break;
    case 'g': case 'G': mul = 1073741824.0; end++; break;
    case 't': case 'T': mul = 1099511627776.0; end++; break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v * mul > 1.8e19 || v * mul < 1) return 0;
    return (uint64_t)(v * mul);
}

int cli_media_opt(const char *cmd, int argc, char **argv, int *i, qv_prompt_media *media, int *n, int max) {
    int vid = cli_opt_is(argv[*i], "--video");
    if (!vid && !cli_opt_is(argv[*i], "--image")) return 0;
    const char *v = cli_opt_value(cmd, vid ? "--video" : "--image", argc, argv, i);
    if (!v) return -1;
    if (*n >= max) return cli_usage(cmd, "more than %d inputs", max), -1;
    media[(*n)++] = (qv_prompt_media){v, vid};
    return 1;
}
