/* fixture_prefill_cuts.c — the prompt prefill's own chunking (lm/ qv_lm_prefill_seq, issue 10) on the
 * golden tiny_video case (vision rows from the golden vision_embeds):
 *   - reference path, chunks of 7: a forced cut at the end of the vision block (and one inside it) gives
 *     logits_last within the chunk tests' 1e-5 relative L2 of the run without cuts;
 *   - the chunks really end at the cut points (the progress callback reports every chunk end, exactly the
 *     expected list) on both paths;
 *   - fast path: a run with a cut at p and a run that prefills [0, p) first and then starts at p with the
 *     prefix in the cache (a cached prefix) give bit-identical logits, for p at the end of the vision block
 *     and p inside it (the second call then takes only the later vision rows);
 *   - the abort callback stops between chunks with QV_ERR_CANCELLED, the finished chunks kept. */
#include "test.h"
#include "lm_golden.h"
#include "lm.h"

typedef struct {
    int64_t ends[1024];
    int n_ends;
    int abort_after;         /* chunks before the abort callback says stop (0 = never) */
} prog;

static void on_prog(void *user, int64_t done, int64_t total) {
    prog *p = user;
    (void)total;
    if (p->n_ends < 1024) p->ends[p->n_ends++] = done;
}

static int on_abort(void *user) {
    prog *p = user;
    return p->abort_after > 0 && p->n_ends >= p->abort_after;
}

static qv_lm_ctx *new_ctx(const qv_lm *m, int n, int chunk, qv_precision prec) {
    qv_lm_ctx_params cp = qv_lm_ctx_default_params();
    cp.n_ctx = n;
    cp.chunk = chunk;
    cp.prec = prec;
    qv_lm_ctx *c = NULL;
    qv_err err;
    CHECK_MSG(qv_lm_ctx_create(&c, m, &cp, &err) == QV_OK, "ctx: %s", err.msg);
    return c;
}

/* the chunk ends a prefill of [start, n) in chunks of C with one cut must report */
static int expected_ends(int64_t start, int64_t n, int C, int64_t cut, int64_t *out) {
    int k = 0;
    for (int64_t s = start; s < n;) {
        int64_t e = n - s < C ? n : s + C;
        if (cut > s && cut < e) e = cut;
        out[k++] = e;
        s = e;
    }
    return k;
}

/* one prefill of the whole case with an optional cut; 0 on failure */
static int prefill_cut(const qv_lm *m, const gcase *c, int chunk, qv_precision prec, int64_t cut, float *logits,
                       prog *pg) {
    qv_lm_ctx *ctx = new_ctx(m, c->n, chunk, prec);
    if (!ctx) return 0;
    qv_lm_prefill_opts o = qv_lm_prefill_default_opts();
    o.cuts = &cut;
    o.n_cuts = cut > 0 ? 1 : 0;
    o.on_progress = on_prog;
    o.user = pg;
    qv_err err;
    qv_status st = qv_lm_prefill_seq(ctx, c->ids, c->n, c->vis, c->n_vis, c->pos, c->n, &o, logits, &err);
    CHECK_MSG(st == QV_OK, "prefill (cut %lld): %s", (long long)cut, err.msg);
    qv_lm_ctx_free(ctx);
    return st == QV_OK;
}

int main(void) {
    (void)on_dump; /* lm_golden.h's dump collector: not needed here */
    qv_err err;
    char *dir = test_fixture("models/tiny-qwen2vl");
    qv_ckpt *ck = NULL;
    qv_lm *m = NULL;
    CHECK_MSG(qv_ckpt_open(&ck, dir, &err) == QV_OK, "open %s: %s", dir, err.msg);
    free(dir);
    if (!ck) return test_done();
    CHECK_MSG(qv_lm_create(&m, ck, &err) == QV_OK, "lm create: %s", err.msg);
    if (!m) return test_done();
    const qv_text_hparams *hp = qv_lm_hparams(m);
    const int V = hp->vocab, D = hp->hidden;
    gcase c;
    if (!load_case(&c, "tiny_video", D)) {
        CHECK_MSG(0, "tiny_video: cannot load the golden case");
        return test_done();
    }
    int first_pad = -1, last_pad = -1;
    for (int i = 0; i < c.n; i++)
        if (c.ids[i] == hp->image_token_id || c.ids[i] == hp->video_token_id) {
            if (first_pad < 0) first_pad = i;
            last_pad = i;
        }
    CHECK(first_pad > 0 && last_pad > first_pad + 6 && last_pad + 1 < c.n);
    const int64_t cuts[2] = {last_pad + 1, first_pad + 5}; /* end of the vision block; inside it */
    float *base = malloc((size_t)V * sizeof *base), *cut = malloc((size_t)V * sizeof *cut);
    float *two = malloc((size_t)V * sizeof *two);
    int64_t want[1024];

    /* reference path, chunks of 7: cuts change nothing beyond rounding, and are honoured */
    prog p0 = {0};
    if (prefill_cut(m, &c, 7, QV_PREC_REF, 0, base, &p0)) {
        int nw = expected_ends(0, c.n, 7, 0, want);
        CHECK(p0.n_ends == nw && !memcmp(p0.ends, want, (size_t)nw * sizeof *want));
        for (int k = 0; k < 2; k++) {
            prog p = {0};
            if (!prefill_cut(m, &c, 7, QV_PREC_REF, cuts[k], cut, &p)) continue;
            double e = test_rel_l2(cut, base, V);
            printf("REF chunk 7, cut at %lld: logits_last rel L2 %.3g vs no cut, %d chunks\n", (long long)cuts[k], e,
                   p.n_ends);
            CHECK_MSG(e < 1e-5, "REF cut %lld: logits_last rel L2 %g", (long long)cuts[k], e);
            CHECK(argmax(cut, V) == argmax(base, V));
            nw = expected_ends(0, c.n, 7, cuts[k], want);
            CHECK_MSG(p.n_ends == nw && !memcmp(p.ends, want, (size_t)nw * sizeof *want), "REF cut %lld: chunk ends",
                      (long long)cuts[k]);
        }
    }

    /* fast path, chunks of 64: a cut at p == prefix [0, p) in one call, then start = p (a cached prefix) */
    for (int k = 0; k < 2; k++) {
        prog p = {0};
        if (!prefill_cut(m, &c, 64, QV_PREC_FAST, cuts[k], cut, &p)) continue;
        int nw = expected_ends(0, c.n, 64, cuts[k], want);
        CHECK_MSG(p.n_ends == nw && !memcmp(p.ends, want, (size_t)nw * sizeof *want), "FAST cut %lld: chunk ends",
                  (long long)cuts[k]);
        qv_lm_ctx *ctx = new_ctx(m, c.n, 64, QV_PREC_FAST);
        if (!ctx) continue;
        int64_t p_at = cuts[k], rows_before = 0;
        for (int64_t i = 0; i < p_at; i++) rows_before += c.ids[i] == hp->image_token_id || c.ids[i] == hp->video_token_id;
        qv_lm_prefill_opts o = qv_lm_prefill_default_opts();
        prog q = {0};
        o.on_progress = on_prog;
        o.user = &q;
        qv_status st = qv_lm_prefill_seq(ctx, c.ids, p_at, c.vis, rows_before, c.pos, c.n, &o, NULL, &err);
        CHECK_MSG(st == QV_OK && qv_lm_n_past(ctx) == p_at, "FAST prefix [0, %lld): %s", (long long)p_at, err.msg);
        /* the rest must take exactly the later rows: all rows is refused, the cache unchanged */
        o.start = p_at;
        CHECK(qv_lm_prefill_seq(ctx, c.ids, c.n, c.vis, c.n_vis, c.pos, c.n, &o, two, &err) == QV_ERR_INVALID);
        CHECK(qv_lm_n_past(ctx) == p_at);
        st = qv_lm_prefill_seq(ctx, c.ids, c.n, c.n_vis > rows_before ? c.vis + (size_t)rows_before * D : NULL,
                               c.n_vis - rows_before, c.pos, c.n, &o, two, &err);
        CHECK_MSG(st == QV_OK && qv_lm_n_past(ctx) == c.n, "FAST from %lld: %s", (long long)p_at, err.msg);
        CHECK_MSG(st == QV_OK && !memcmp(two, cut, (size_t)V * sizeof *two),
                  "FAST: prefix then start %lld is not bit-identical to one run cut there", (long long)p_at);
        /* the two calls' chunk ends are the one run's */
        CHECK_MSG(q.n_ends == nw && !memcmp(q.ends, want, (size_t)nw * sizeof *want), "FAST split at %lld: chunk ends",
                  (long long)p_at);
        qv_lm_ctx_free(ctx);
    }

    /* abort after two chunks: cancelled, two chunks in the cache */
    {
        qv_lm_ctx *ctx = new_ctx(m, c.n, 7, QV_PREC_REF);
        prog p = {.abort_after = 2};
        qv_lm_prefill_opts o = qv_lm_prefill_default_opts();
        o.on_progress = on_prog;
        o.abort_cb = on_abort;
        o.user = &p;
        qv_status st = qv_lm_prefill_seq(ctx, c.ids, c.n, c.vis, c.n_vis, c.pos, c.n, &o, base, &err);
        CHECK_MSG(st == QV_ERR_CANCELLED && p.n_ends == 2 && qv_lm_n_past(ctx) == 14, "abort: status %d, %d chunks, %d in cache",
                  st, p.n_ends, ctx ? qv_lm_n_past(ctx) : -1);
        qv_lm_ctx_free(ctx);
    }
    free(base);
    free(cut);
    free(two);
    free_case(&c);
    qv_lm_free(m);
    qv_ckpt_free(ck);
    return test_done();
}
