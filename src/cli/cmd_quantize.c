/* cmd_quantize.c — qv quantize: make a model's 8- or 4-bit language-model weights once and store them in
 * the cache folder (pipeline/qstore.h), so that --q8 / --q4 runs map them instead of quantizing at load. */
#include "cache.h"
#include "cli.h"
#include "engine_cache.h"
#include "lm.h"
#include "model.h"
#include "qstore.h"
#include "threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    puts("usage: qv quantize --model DIR (--q8 | --q4) [--cache-dir DIR] [--threads N]\n"
         "\n"
         "Quantizes the language model's weights of a checkpoint (q, k, v, o, gate, up, down, lm_head)\n"
         "to 8 bits (--q8, ~1.1 bytes per weight) or 4 bits (--q4, Q4_0-style, ~0.56 bytes per weight)\n"
         "and stores them in the cache folder, under weights/<model fingerprint>.q8|q4. Later runs with\n"
         "--q8 or --q4 (ask, subtitles, summarize, batch, chat, serve) map that file instead of reading\n"
         "and rounding the bf16 weights at every load. Runs with a cache folder do the same the first\n"
         "time on their own; this command does it ahead of time. Nothing is done when a valid file is\n"
         "there already. The folder is not trimmed with the cache (`qv cache clear` leaves it).\n"
         "\n"
         "options:\n"
         "  --model DIR      the checkpoint (default: $QV_MODEL)\n"
         "  --q8 | --q4      the format\n"
         "  --cache-dir DIR  the cache folder (default: $XDG_CACHE_HOME/qv or ~/.cache/qv)\n"
         "  --threads N      worker threads (default: all CPUs)\n"
         "\n"
         "examples:\n"
         "  qv quantize --model ~/models/Qwen2-VL-7B --q4\n"
         "  qv ask clip.mp4 \"What happens?\" --model ~/models/Qwen2-VL-7B --q4");
}

int qv_cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *model = cli_default_model(), *dir_opt = NULL;
    qv_quant quant = QV_QUANT_NONE;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { help(); return 0; }
        else if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--cache-dir") && i + 1 < argc) dir_opt = argv[++i];
        else if (!strcmp(a, "--q8")) quant = QV_QUANT_Q8;
        else if (!strcmp(a, "--q4")) quant = QV_QUANT_Q4;
        else if (!strcmp(a, "--threads")) { if (!cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 0, 256, &threads)) return 2; }
        else return cli_unknown_option(cmd, a);
    }
    if (!model) return cli_usage(cmd, "no model: give --model DIR or set QV_MODEL");
    if (quant == QV_QUANT_NONE) return cli_usage(cmd, "say which format: --q8 or --q4");
    char *dir = dir_opt ? strdup(dir_opt) : qv_cache_default_dir();
    if (!dir) return cli_fail("no cache folder: give --cache-dir DIR ($XDG_CACHE_HOME and $HOME are unset)");
    qv_err err = {0};
    qv_ckpt *ck = NULL;
    qv_lm *lm = NULL;
    qv_pool *pool = NULL;
    qv_ec *ec = NULL;
    qv_qmap map = {0};
    int rc = 1;
    qv_status st;
    double t0 = qv_now();
    if ((st = qv_model_open(&ck, model, &err)) || (st = qv_lm_create(&lm, ck, &err))) goto done;
    if (!(pool = qv_pool_create((int)threads)) || !(ec = qv_ec_create(ck, dir, 0))) {
        st = qv_errf(&err, QV_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!qv_ec_disk_dir(ec)) { st = qv_errf(&err, QV_ERR_IO, "cannot use the cache folder %s", dir); goto done; }
    const char *fp = qv_ec_fingerprint(ec), *how;
    if (!fp) { st = qv_errf(&err, QV_ERR_IO, "cannot fingerprint %s", model); goto done; }
    if ((st = qv_qstore_apply(lm, quant, ec, pool, &map, &how, &err))) goto done;
    char *path = qv_qstore_path(qv_ec_disk_dir(ec), fp, quant);
    size_t len = qv_lm_quant_bytes(lm, quant);
    if (!strcmp(how, "made")) {   /* quantized, but the write failed (the warning said why) */
        st = qv_errf(&err, QV_ERR_IO, "the %s weights of %s could not be stored in %s", quant == QV_QUANT_Q4 ? "q4" : "q8",
                     model, path ? path : dir);
        free(path);
        goto done;
    }
    printf("%s: %s (%.2f GB, %s in %.1f s)\n", quant == QV_QUANT_Q4 ? "q4" : "q8", path ? path : "?", len / 1e9,
           !strcmp(how, "mapped") ? "already stored, checked" : "quantized and stored", qv_now() - t0);
    free(path);
    rc = 0;
done:
    if (st) rc = cli_fail("quantize: %s", err.msg);
    qv_lm_free(lm);
    qv_qstore_unmap(&map);
    qv_ec_free(ec);
    qv_pool_free(pool);
    qv_ckpt_free(ck);
    free(dir);
    return rc;
}
