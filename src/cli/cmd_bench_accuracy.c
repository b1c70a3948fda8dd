/* cmd_bench_accuracy.c — qv bench accuracy: how far the fast numeric paths are from the float32
 * reference (--ref) on real text. One prefill of the text's tokens per path, run in lockstep chunk by
 * chunk (so memory holds chunk x vocab logits per path, never the whole sequence's), with the logits of
 * EVERY position (qv_lm_prefill_opts.all_logits): per path, the share of positions whose argmax equals
 * the reference's (top-1 agreement) and ||path - ref|| / ||ref|| over all logits (relative L2).
 * Paths: fast (the default: 12-bit integer products for prefill, f32 keys and half values in the KV cache) and, with --q8, the 8-bit weights
 * (a second weight table on the same checkpoint, so the reference keeps its bf16 weights). */
#include "cli.h"
#include "checkpoint.h"
#include "core.h"
#include "kernels.h"
#include "lm.h"
#include "model.h"
#include "quant.h"
#include "threads.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    puts("usage: qv bench accuracy --model DIR --text FILE [--tokens N] [--q8] [--q4] [--chunk N] [--threads N] [--json]\n"
         "\n"
         "Tokenizes FILE with the model's tokenizer, runs the first N tokens (default: all) through the\n"
         "language model once with the float32 reference path (--ref) and once with the default fast path\n"
         "(and with 8-bit weights when --q8, 4-bit when --q4), keeps the logits of every position, and prints per path the\n"
         "top-1 agreement with the reference (argmax equal, share of positions) and the relative L2 error\n"
         "of all logits (||path - ref|| / ||ref||). Prefill in chunks of --chunk tokens (default 256, as\n"
         "qv ask). A real checkpoint, or one made by qv gen-weights --outliers, shows what outlier channels\n"
         "cost (README: accuracy). tests/data/accuracy_text.txt is a 1218-token mixed text.\n"
         "\n"
         "example:\n"
         "  qv bench accuracy --model ../shared/fixtures/models/tiny-qwen2vl --text tests/data/accuracy_text.txt --q8");
}

typedef struct {
    const char *name;
    qv_lm_ctx *ctx;
    float *logits;          /* [chunk][V] */
    int64_t agree;
    double err2;
} acc_path;

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int qv_cmd_bench_accuracy(int argc, char **argv) {
    const char *cmd = "bench accuracy", *model = cli_default_model(), *text = NULL;
    long n_tok = 0, chunk = 256, n_threads = 0;
    int q8 = 0, q4 = 0, json = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) { help(); return 0; }
        else if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--text") && v) text = argv[++i];
        else if (!strcmp(a, "--tokens")) { if (!cli_parse_int(cmd, a, v, 1, 1 << 20, &n_tok)) return 2; i++; }
        else if (!strcmp(a, "--chunk")) { if (!cli_parse_int(cmd, a, v, 1, 1 << 16, &chunk)) return 2; i++; }
        else if (!strcmp(a, "--threads")) { if (!cli_parse_int(cmd, a, v, 0, 256, &n_threads)) return 2; i++; }
        else if (!strcmp(a, "--q8")) q8 = 1;
        else if (!strcmp(a, "--q4")) q4 = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else return cli_unknown_option(cmd, a);
    }
    if (!model || !text) return cli_usage(cmd, "--model DIR and --text FILE are required");
    qv_err err = {0};
    qv_status st = QV_OK;
    qv_ckpt *ck = NULL;
    qv_lm *lm = NULL, *lmq[2] = {NULL, NULL};   /* 8-bit, 4-bit copies */
    qv_tokenizer *tok = NULL;
    qv_pool *pool = NULL;
    char *txt = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL;
    int64_t *pos = NULL;
    acc_path P[4] = {{.name = "ref"}, {.name = "fast"}};
    qv_lm *pl[4] = {NULL};   /* each path's model */
    int np = 2;
    int rc = 1;
    double sum_ref2 = 0;
    if ((st = qv_read_file(text, &txt, &len, 64u << 20, &err))) goto done;
    if ((st = qv_model_open(&ck, model, &err))) goto done;
    if ((st = qv_tok_load(&tok, model, &err))) goto done;
    if ((st = qv_tok_encode(tok, txt, len, &ids, &n_ids, &err))) goto done;
    if (n_tok == 0) n_tok = (long)n_ids;
    if ((size_t)n_tok > n_ids || n_tok < 1) {
        st = qv_errf(&err, QV_ERR_INVALID, "%s has %zu tokens, fewer than --tokens %ld", text, n_ids, n_tok);
        goto done;
    }
    pool = qv_pool_create((int)n_threads);
    if (!pool) { st = qv_errf(&err, QV_ERR_NOMEM, "cannot start the thread pool"); goto done; }
    if ((st = qv_lm_create(&lm, ck, &err))) goto done;
    pl[0] = pl[1] = lm;
    for (int q = 0; q < 2; q++) {
        if (!(q ? q4 : q8)) continue;
        if ((st = qv_lm_create(&lmq[q], ck, &err)) || (st = qv_lm_set_quant(lmq[q], q ? QV_QUANT_Q4 : QV_QUANT_Q8, pool, &err)))
            goto done;
        P[np].name = q ? "q4" : "q8";
        pl[np++] = lmq[q];
    }
    const int n = (int)n_tok, V = qv_lm_hparams(lm)->vocab;
    if (chunk > n) chunk = n;
    pos = malloc((size_t)3 * n * sizeof *pos);
    if (!pos) { st = qv_errf(&err, QV_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < n; i++) pos[i] = pos[n + i] = pos[2 * (size_t)n + i] = i;   /* text: t = h = w = index */
    for (int p = 0; p < np; p++) {
        qv_lm_ctx_params cp = qv_lm_ctx_default_params();
        cp.n_ctx = n;
        cp.chunk = (int)chunk;
        cp.pool = pool;
        cp.prec = p == 0 ? QV_PREC_REF : QV_PREC_FAST;
        P[p].logits = malloc((size_t)chunk * V * sizeof(float));
        if (!P[p].logits) { st = qv_errf(&err, QV_ERR_NOMEM, "out of memory for %ld x %d logits", chunk, V); goto done; }
        if ((st = qv_lm_ctx_create(&P[p].ctx, pl[p], &cp, &err))) goto done;
    }
    double t0 = qv_now();
    for (int s = 0; s < n; s += (int)chunk) {
        int e = n - s < chunk ? n : s + (int)chunk;
        for (int p = 0; p < np; p++) {
            qv_lm_prefill_opts o = qv_lm_prefill_default_opts();
            o.start = s;
            o.all_logits = P[p].logits;
            if ((st = qv_lm_prefill_seq(P[p].ctx, ids, e, NULL, 0, pos, n, &o, NULL, &err))) goto done;
        }
        for (int i = 0; i < e - s; i++) {
            const float *r = P[0].logits + (size_t)i * V;
            int top = argmax(r, V);
            for (int j = 0; j < V; j++) sum_ref2 += (double)r[j] * r[j];
            for (int p = 1; p < np; p++) {
                const float *f = P[p].logits + (size_t)i * V;
                P[p].agree += argmax(f, V) == top;
                double e2 = 0;
                for (int j = 0; j < V; j++) e2 += ((double)f[j] - r[j]) * ((double)f[j] - r[j]);
                P[p].err2 += e2;
            }
        }
    }
    double secs = qv_now() - t0;
    if (json) {   /* through cJSON: paths are user text (quotes, backslashes) */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddNumberToObject(o, "tokens", n);
        cJSON_AddNumberToObject(o, "chunk", (double)chunk);
        cJSON_AddStringToObject(o, "kernels", qv_kernels_name());
        cJSON *arr = cJSON_AddArrayToObject(o, "paths");
        for (int p = 1; p < np; p++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "path", P[p].name);
            cJSON_AddNumberToObject(e, "top1", (double)P[p].agree / n);
            cJSON_AddNumberToObject(e, "rel_l2", sum_ref2 > 0 ? sqrt(P[p].err2 / sum_ref2) : 0.0);
            cJSON_AddItemToArray(arr, e);
        }
        char *js = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!js) { st = qv_errf(&err, QV_ERR_NOMEM, "out of memory"); goto done; }
        puts(js);
        free(js);
    } else {
        printf("accuracy: %s, %d tokens of %s, chunk %ld, kernels %s%s%s (%.1f s)\n", model, n, text, chunk,
               qv_kernels_name(), q8 || q4 ? ", quantized weights " : "", q8 || q4 ? qv_q8_kernels_name() : "", secs);
        printf("%-6s %-16s %s\n", "path", "top-1 vs --ref", "rel L2 of logits");
        for (int p = 1; p < np; p++)
            printf("%-6s %6.2f %% (%d/%d) %.2e\n", P[p].name, 100.0 * P[p].agree / n, (int)P[p].agree, n,
                   sum_ref2 > 0 ? sqrt(P[p].err2 / sum_ref2) : 0.0);
    }
    rc = 0;
done:
    if (st) rc = cli_fail("bench accuracy: %s", err.msg);
    for (int p = 0; p < 4; p++) {
        qv_lm_ctx_free(P[p].ctx);
        free(P[p].logits);
    }
    free(pos);
    free(ids);
    free(txt);
    qv_lm_free(lmq[0]);
    qv_lm_free(lmq[1]);
    qv_lm_free(lm);
    qv_tok_free(tok);
    qv_ckpt_free(ck);
    qv_pool_free(pool);
    return rc;
}
