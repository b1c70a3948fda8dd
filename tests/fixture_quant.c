/* fixture_quant.c — the language model with 8-bit weights (qv_lm_set_quant, src/quant.h) against the
 * float64 reference dumps of the tiny cases (fixtures/golden/tiny_{text,image,video}), vision rows from
 * the golden vision_embeds. Bounds:
 *   lm.norm and logits_last within 5e-2 relative L2. Why: int8 rounding of a block of 32 has rms error
 *   maxabs/(127 sqrt 12) ~ 0.2% of the block's maxabs, ~0.5-1% of the rms value for these random weights,
 *   the same again for the activations (per-block scales), so each product is off by ~1% relative;
 *   two layers plus the head compound to ~1-2e-2 (measured values are printed); 5e-2 leaves 2-3x margin
 *   while a wrong block, scale or row (errors of order 1) still fails.
 *   Greedy ids, teacher-forced (the reference id is fed at each step): equal to the reference at every
 *   step whose reference top1-top2 gap > 0.5 (the largest logit error measured is printed: ~0.1, so a
 *   0.5 gap cannot flip; the tiny cases' first steps have small gaps, so "up to the first step" would
 *   check nothing in tiny_text/tiny_image).
 *   Both activation paths (REF: f32 KV cache, FAST: bf16), chunk 7 vs the whole prompt (rows are
 *   quantized one by one, so the chunking changes nothing but attention grouping: 1e-5), and switching
 *   back to bf16 (QV_QUANT_NONE) gives the bf16 numbers bit for bit. */
#include "test.h"
#include "lm_golden.h"
#include "lm.h"
#include "quant.h"

#include <cjson/cJSON.h>


/* prefill (+ checks when check), greedy decode feeding the reference ids; returns leading greedy ids
 * equal to the reference, logits_last into last */
static int run_case(const qv_lm *m, gcase *c, qv_precision prec, int chunk, int check, float *last, int need) {
    const qv_text_hparams *hp = qv_lm_hparams(m);
    int D = hp->hidden, V = hp->vocab, L = hp->n_layers, n = c->n;
    qv_err err;
    qv_lm_ctx_params cp = qv_lm_ctx_default_params();
    cp.n_ctx = n + c->n_greedy;
    cp.chunk = chunk;
    cp.prec = prec;
    qv_lm_ctx *ctx = NULL;
    if (qv_lm_ctx_create(&ctx, m, &cp, &err) != QV_OK) { fprintf(stderr, "%s: %s\n", c->label, err.msg); return -1; }
    dumps du = {.D = D, .n = n};
    for (int l = 0; l < L && l < 8; l++) du.layer[l] = malloc((size_t)n * D * sizeof(float));
    du.norm = malloc((size_t)n * D * sizeof(float));
    float *logits = malloc((size_t)V * sizeof *logits);
    qv_status st = qv_lm_prefill(ctx, c->ids, n, c->vis, c->n_vis, c->pos, n, logits, check ? on_dump : NULL, &du, &err);
    CHECK_MSG(st == QV_OK, "%s prefill: %s", c->label, err.msg);
    const char *pn = prec == QV_PREC_REF ? "q8/REF" : "q8/FAST";
    if (st == QV_OK && check) {
        int64_t ne = 0;
        float *g = test_gold_f32(c->st, "lm.norm", &ne);
        CHECK(g && ne == (int64_t)n * D && du.rows_norm == n);
        if (g && ne == (int64_t)n * D && du.rows_norm == n) {
            double e = test_rel_l2(du.norm, g, ne);
            printf("%s %s lm.norm rel L2 %.3g\n", c->label, pn, e);
            CHECK_MSG(e < 5e-2, "%s %s lm.norm rel L2 %g", c->label, pn, e);
        }
        free(g);
        g = test_gold_f32(c->st, "logits_last", &ne);
        CHECK(g && ne == V);
        if (g && ne == V) {
            double e = test_rel_l2(logits, g, V);
            double mx = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, fabs((double)logits[v] - g[v]));
            printf("%s %s logits_last rel L2 %.3g, max |diff| %.3g\n", c->label, pn, e, mx);
            CHECK_MSG(e < 5e-2, "%s %s logits_last rel L2 %g", c->label, pn, e);
        }
        free(g);
    }
    if (last) memcpy(last, logits, (size_t)V * sizeof *logits);
    /* teacher-forced: the reference id goes in at every step, so each step is checked on its own */
    int agree = 0, lead = 1, wrong_big = 0, big = 0;
    for (int k = 0; st == QV_OK && k < c->n_greedy; k++) {
        int ok = argmax(logits, V) == c->greedy[k];
        lead &= ok;
        agree += lead;
        if (c->gap[k] > 0.5) big++, wrong_big += !ok;
        if (k + 1 == c->n_greedy) break;
        st = qv_lm_decode(ctx, c->greedy[k], n + k + c->delta, logits, &err);
        CHECK_MSG(st == QV_OK, "%s decode: %s", c->label, err.msg);
    }
    if (need >= 0) {
        printf("%s %s greedy: %d leading ids equal; %d of %d steps with reference gap > 0.5 differ\n", c->label, pn,
               agree, wrong_big, big);
        CHECK_MSG(wrong_big == 0, "%s %s greedy ids: %d of %d steps with gap > 0.5 differ", c->label, pn, wrong_big, big);
    }
    for (int l = 0; l < 8; l++) free(du.layer[l]);
    free(du.norm);
    free(logits);
    qv_lm_ctx_free(ctx);
    return agree;
}

int main(void) {
    qv_err err;
    char *dir = test_fixture("models/tiny-qwen2vl");
    qv_ckpt *ck = NULL;
    if (qv_ckpt_open(&ck, dir, &err) != QV_OK) {
        fprintf(stderr, "open %s: %s\n", dir, err.msg);
        CHECK(0);
        return test_done();
    }
    free(dir);
    qv_lm *m = NULL;
    CHECK_MSG(qv_lm_create(&m, ck, &err) == QV_OK, "lm create: %s", err.msg);
    if (!m) return test_done();
    const qv_text_hparams *hp = qv_lm_hparams(m);
    const int V = hp->vocab;
    qv_pool *pool = qv_pool_create(2);
    printf("q8 kernels: %s\n", qv_q8_kernels_name());
    const char *labels[3] = {"tiny_text", "tiny_image", "tiny_video"};
    float *bf = malloc((size_t)V * sizeof *bf), *a = malloc((size_t)V * sizeof *a), *b = malloc((size_t)V * sizeof *b);
    for (int ci = 0; ci < 3; ci++) {
        gcase c;
        if (!load_case(&c, labels[ci], hp->hidden)) {
            CHECK_MSG(0, "%s: cannot load the golden case", labels[ci]);
            continue;
        }
        run_case(m, &c, QV_PREC_FAST, 256, 0, bf, -1);   /* bf16 weights, for the switch-back check */
        CHECK_MSG(qv_lm_set_quant(m, QV_QUANT_Q8, pool, &err) == QV_OK, "set_quant: %s", err.msg);
        int need = 0;
        run_case(m, &c, QV_PREC_REF, 256, 1, a, need);
        run_case(m, &c, QV_PREC_FAST, 256, 1, NULL, need);
        /* chunks of >= QV_Q8_I16_M rows all take the 16-bit prefill GEMM: a split into such chunks changes only
         * f32 rounding; smaller chunks take the int8 tiles (decode's), whose activation rounding the looser
         * bound allows (the fast path's tiles differ from its 16-bit GEMM the same way) */
        int half = (c.n + 1) / 2;
        if (half >= QV_Q8_I16_M) {
            run_case(m, &c, QV_PREC_REF, half, 0, b, -1);
            double e = test_rel_l2(b, a, V);
            printf("%s q8/REF chunk %d (2 passes) vs whole: logits_last rel L2 %.3g\n", c.label, half, e);
            CHECK_MSG(e < 1e-5, "%s q8 chunk %d rel L2 %g", c.label, half, e);
        }
        run_case(m, &c, QV_PREC_REF, 7, 0, b, -1);
        double e = test_rel_l2(b, a, V);
        printf("%s q8/REF chunk 7 vs whole: logits_last rel L2 %.3g\n", c.label, e);
        CHECK_MSG(e < 4e-2, "%s q8 chunk 7 rel L2 %g", c.label, e);
        CHECK(qv_lm_set_quant(m, QV_QUANT_NONE, NULL, &err) == QV_OK);
        run_case(m, &c, QV_PREC_FAST, 256, 0, b, -1);
        CHECK_MSG(!memcmp(b, bf, (size_t)V * sizeof *b), "%s: back to bf16 gives the bf16 logits exactly", c.label);
        free_case(&c);
    }
    CHECK(qv_lm_set_quant(m, (qv_quant)7, pool, &err) == QV_ERR_INVALID);
    free(bf); free(a); free(b);
    qv_pool_free(pool);
    qv_lm_free(m);
    qv_ckpt_free(ck);
    return test_done();
}
