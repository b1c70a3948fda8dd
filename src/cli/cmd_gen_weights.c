/* cmd_gen_weights.c — qv gen-weights: write a complete checkpoint by the deterministic weight formula. */
#include "cli.h"
#include "genweights.h"
#include "model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(void) {
    puts("usage: qv gen-weights --config CONFIG.json --out DIR [--shard-size BYTES] [--tokenizer-from DIR] [--threads N] [--outliers]\n"
         "\n"
         "Writes every tensor that CONFIG.json implies, in bf16, by the weight formula of qv's spec\n"
         "(deterministic: the same config always gives the same bytes), sharded like the released\n"
         "checkpoints with model.safetensors.index.json, plus config.json and, when they sit beside\n"
         "CONFIG.json, generation_config.json and preprocessor_config.json.\n"
         "\n"
         "options:\n"
         "  --config FILE          config.json to realize (flat or nested text_config form)\n"
         "  --out DIR              output folder (created if missing)\n"
         "  --shard-size BYTES     max tensor bytes per shard file (default 4000000000; suffixes K M G)\n"
         "  --tokenizer-from DIR   copy tokenizer.json, tokenizer_config.json, vocab.json, merges.txt from DIR\n"
         "  --threads N            generator threads (default: all cores)\n"
         "  --outliers             real-model-shaped weights: 5 fixed hidden channels with \"massive\n"
         "                         activations\" (LM RMSNorm weights x60, embedding columns x20, layer 0's\n"
         "                         down_proj rows x30 on those channels; README, gen-weights), to check\n"
         "                         that the fast paths keep the reference's answers (qv bench accuracy)\n"
         "  --quiet                no progress line\n"
         "\n"
         "examples:\n"
         "  qv gen-weights --config ../shared/fixtures/models/qwen2vl-7b/config.json --out /tmp/qv7b \\\n"
         "                 --tokenizer-from ../shared/fixtures/models/tiny-qwen2vl\n"
         "  qv gen-weights --config my-small-config.json --out /tmp/small --shard-size 100M");
}

typedef struct { int tty; double last; } prog;

static void on_progress(void *user, uint64_t done, uint64_t total) {
    prog *p = user;
    double now = (double)done / (double)(total ? total : 1);
    if (now - p->last < 0.01 && done != total) return;
    p->last = now;
    if (p->tty) fprintf(stderr, "\rgen-weights: %6.1f%%  %.2f / %.2f GB", 100.0 * now, done / 1e9, total / 1e9);
}

static int parse_bytes(const char *s, uint64_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) return 0;
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1e3, end++;
    else if (*end == 'M' || *end == 'm') mul = 1e6, end++;
    else if (*end == 'G' || *end == 'g') mul = 1e9, end++;
    if (*end) return 0;
    *out = (uint64_t)(v * mul);
    return *out > 0;
}

int qv_cmd_gen_weights(int argc, char **argv) {
    qv_genweights_params p = qv_genweights_default_params();
    p.tensor_specs = qv_model_tensor_specs;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) { help(); return 0; }
        else if (!strcmp(a, "--config") && v) p.config_path = argv[++i];
        else if (!strcmp(a, "--out") && v) p.out_dir = argv[++i];
        else if (!strcmp(a, "--tokenizer-from") && v) p.tokenizer_from = argv[++i];
        else if (!strcmp(a, "--shard-size") && v) {
            if (!parse_bytes(argv[++i], &p.shard_bytes)) return cli_usage("gen-weights", "--shard-size takes a byte count like 4000000000 or 2G");
        } else if (!strcmp(a, "--threads") && v) {
            long t;
            if (!cli_parse_int("gen-weights", "--threads", argv[++i], 1, 256, &t)) return 2;
            p.n_threads = (int)t;
        } else if (!strcmp(a, "--outliers")) p.outliers = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) quiet = 1;
        else return cli_usage("gen-weights", "unknown or incomplete option '%s'", a);
    }
    if (!p.config_path || !p.out_dir) return cli_usage("gen-weights", "--config and --out are required");
    prog pr = {isatty(2) && !quiet, -1};
    p.on_progress = on_progress;
    p.abort_cb = cli_abort_cb;
    p.user = &pr;
    qv_err err = {0};
    double t0 = qv_now();
    qv_status rc = qv_genweights_write(&p, &err);
    if (pr.tty) fputc('\n', stderr);
    if (rc) return cli_fail("gen-weights: %s", err.msg);
    if (!quiet) fprintf(stderr, "gen-weights: wrote %s in %.1f s\n", p.out_dir, qv_now() - t0);
    return 0;
}
