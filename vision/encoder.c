/* encoder.c — the Qwen2-VL vision encoder (see encoder.h): weight table over the checkpoint mapping,
 * per-run scratch, and the forward pass of one temporal pair.
 *
 * Follows spec/qwen2vl-reference.md section 5 and transformers' Qwen2VisionTransformerPretrainedModel:
 *   x = px . patch_w^T                                  patch embedding (conv with kernel = stride, no bias)
 *   per block: x += proj(attn(rope(qkv(LN1(x)))))       non-causal, within the pair, scale head_dim^-0.5
 *              x += fc2(quick_gelu(fc1(LN2(x))))
 *   merger:    out = mlp2(gelu_erf(mlp0(concat4(ln_q(x)))))
 * Matrix products against weights go through qv_linear (bf16 weights in place); attention scores and
 * the weighted sum of values through qv_sgemm, a tile of query rows at a time so scratch is
 * O(tile * N) rather than O(N^2). Element-wise work (LayerNorm, rotary, softmax, activations) is split
 * over the pool by rows.
 *
 * Deviations from the float64 reference are those of float32 arithmetic (the reference itself does the
 * rotary product and the softmax in float32). */
#include "encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QTILE 256                /* query rows per attention tile */

typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;      /* [E], widened copies (owned) */
    const uint16_t *qkv_w, *qkv_b;                   /* [3E][E], [3E]  bf16 in the mapping */
    const uint16_t *proj_w, *proj_b;                 /* [E][E], [E] */
    const uint16_t *fc1_w, *fc1_b;                   /* [M][E], [M] */
    const uint16_t *fc2_w, *fc2_b;                   /* [E][M], [E] */
} vblock;

struct qv_vision {
    qv_vision_hparams hp;
    int patch_dim;                                   /* P = in_chans * temporal * patch^2 (1176) */
    int merge;                                       /* spatial merge size m (2) */
    int out_dim;                                     /* D, text hidden size */
    const uint16_t *patch_w;                         /* [E][P] */
    vblock *blocks;                                  /* [depth] */
    const float *lnq_w, *lnq_b;                      /* [E] owned */
    const uint16_t *m0_w, *m0_b;                     /* [m*m*E][m*m*E], [m*m*E] */
    const uint16_t *m2_w, *m2_b;                     /* [D][m*m*E], [D] */
    float *norms;                                    /* one allocation for all LayerNorm params */
    double inv_freq[64];                             /* [head_dim/4] rotary frequencies */
};

struct qv_vision_ctx {
    const qv_vision *v;
    int max_n;                                       /* patches per pair this context was sized for */
    int wide;                                        /* columns of big: max(3E, M) */
    float *x;                                        /* [N][E] residual stream */
    float *h;                                        /* [N][E] normed input / linear outputs */
    float *ao;                                       /* [N][E] attention output (heads side by side) */
    float *big;                                      /* [N][wide] qkv, MLP hidden, merger hidden ([N/mm][mm*E]) */
    float *scores;                                   /* [QTILE][N] attention tiles, a slice per thread */
    float *rowsum;                                   /* [QTILE] 1 / softmax denominators */
    float *rcos, *rsin;                              /* [N][head_dim/4] by position value (row or col) */
    double prof[3];                                  /* seconds: linear layers, attention, element-wise */
};

/* ------------------------------------------------------------------------------------------------ */
/* Weight table                                                                                      */

/* The encoder's weight table (checkpoint.h): released names, shapes over vis_dims, where each binds;
 * LayerNorm parameters are widened into v->norms. */
enum { VD_E, VD_3E, VD_M, VD_D, VD_ME, VD_C, VD_T, VD_P, VD_NDIMS };
_Static_assert((int)VD_NDIMS <= (int)QV_WEIGHT_DIMS, "vision dims");
#define VG(nm, nd, d0, d1, fld, fl) {"visual." nm, 0, nd, {d0, d1}, offsetof(struct qv_vision, fld), fl, 0, QV_OUT_NONE}
#define VB(nm, nd, d0, d1, fld, fl) {"visual.blocks.%d." nm, 1, nd, {d0, d1}, offsetof(vblock, fld), fl, 0, QV_OUT_NONE}
static const qv_weight_def vis_weights[] = {
    {"visual.patch_embed.proj.weight", 0, 5, {VD_E, VD_C, VD_T, VD_P, VD_P}, offsetof(struct qv_vision, patch_w), 0, 0, QV_OUT_NONE},
    VB("norm1.weight", 1, VD_E, 0, ln1_w, QV_W_F32),
    VB("norm1.bias", 1, VD_E, 0, ln1_b, QV_W_F32),
    VB("norm2.weight", 1, VD_E, 0, ln2_w, QV_W_F32),
    VB("norm2.bias", 1, VD_E, 0, ln2_b, QV_W_F32),
    VB("attn.qkv.weight", 2, VD_3E, VD_E, qkv_w, 0),
    VB("attn.qkv.bias", 1, VD_3E, 0, qkv_b, 0),
    VB("attn.proj.weight", 2, VD_E, VD_E, proj_w, 0),
    VB("attn.proj.bias", 1, VD_E, 0, proj_b, 0),
    VB("mlp.fc1.weight", 2, VD_M, VD_E, fc1_w, 0),
    VB("mlp.fc1.bias", 1, VD_M, 0, fc1_b, 0),
    VB("mlp.fc2.weight", 2, VD_E, VD_M, fc2_w, 0),
    VB("mlp.fc2.bias", 1, VD_E, 0, fc2_b, 0),
    VG("merger.ln_q.weight", 1, VD_E, 0, lnq_w, QV_W_F32),
    VG("merger.ln_q.bias", 1, VD_E, 0, lnq_b, QV_W_F32),
    VG("merger.mlp.0.weight", 2, VD_ME, VD_ME, m0_w, 0),
    VG("merger.mlp.0.bias", 1, VD_ME, 0, m0_b, 0),
    VG("merger.mlp.2.weight", 2, VD_D, VD_ME, m2_w, 0),
    VG("merger.mlp.2.bias", 1, VD_D, 0, m2_b, 0),
};
#undef VG
#undef VB
enum { VIS_NW = sizeof vis_weights / sizeof *vis_weights };

static void vis_dims(const qv_vision_hparams *hp, int64_t *d) {
    const int64_t E = hp->embed_dim, m = hp->spatial_merge_size;
    d[VD_E] = E;
    d[VD_3E] = 3 * E;
    d[VD_M] = hp->mlp_dim;
    d[VD_D] = hp->out_hidden;
    d[VD_ME] = m * m * E;
    d[VD_C] = hp->in_chans;
    d[VD_T] = hp->temporal_patch_size;
    d[VD_P] = hp->patch_size;
}

const qv_weight_def *qv_vision_weights(const qv_vision_hparams *hp, int64_t dims[QV_WEIGHT_DIMS], int *n_rows) {
    vis_dims(hp, dims);
    *n_rows = VIS_NW;
    return vis_weights;
}

qv_status qv_vision_create(qv_vision **out, const qv_ckpt *ck, qv_err *err) {
    *out = NULL;
    qv_err local;
    if (!err) err = &local;   /* the helpers' status travels in err->code */
    const qv_vision_hparams *hp = &ck->cfg.vision;
    const int E = hp->embed_dim, M = hp->mlp_dim, H = hp->n_heads, hd = hp->head_dim, m = hp->spatial_merge_size;
    if (E <= 0 || M <= 0 || H <= 0 || hd <= 0 || (int64_t)H * hd != E || hd % 4 != 0 || hd / 4 > 64 ||
        m <= 0 || hp->depth <= 0 || hp->out_hidden <= 0 || hp->in_chans <= 0 || hp->patch_size <= 0 ||
        hp->temporal_patch_size <= 0 || E > (1 << 20) || M > (1 << 22) || hp->depth > 4096 || m > 16)
        return qv_errf(err, QV_ERR_UNSUPPORTED,
                       "vision: unsupported config (embed %d, heads %d x %d, mlp %d, merge %d, depth %d)", E, H, hd,
                       M, m, hp->depth);
    int64_t P = (int64_t)hp->in_chans * hp->temporal_patch_size * hp->patch_size * hp->patch_size;
    if (P > (1 << 20)) return qv_errf(err, QV_ERR_UNSUPPORTED, "vision: patch size too large");
    qv_vision *v = calloc(1, sizeof *v);
    if (!v) return qv_errf(err, QV_ERR_NOMEM, "vision: out of memory");
    v->hp = *hp;
    v->patch_dim = (int)P;
    v->merge = m;
    v->out_dim = hp->out_hidden;
    v->blocks = calloc((size_t)hp->depth, sizeof *v->blocks);
    v->norms = malloc(((size_t)hp->depth * 4 + 2) * E * sizeof(float));   /* the QV_W_F32 rows below */
    if (!v->blocks || !v->norms) { qv_vision_free(v); return qv_errf(err, QV_ERR_NOMEM, "vision: out of memory"); }
    int64_t dims[QV_WEIGHT_DIMS];
    vis_dims(hp, dims);
    qv_status rc = qv_weights_bind(ck, vis_weights, VIS_NW, dims, hp->depth, v, v->blocks, sizeof *v->blocks, v->norms,
                                   NULL, err);
    if (rc) { qv_vision_free(v); return rc; }
    /* VisionRotaryEmbedding(dim = hd/2): inv_freq[j] = 10000^(-2j / (hd/2)), j < hd/4 */
    for (int j = 0; j < hd / 4; j++) v->inv_freq[j] = 1.0 / pow(10000.0, (2.0 * j) / (hd / 2));
    *out = v;
    return QV_OK;
}

void qv_vision_free(qv_vision *v) {
    if (!v) return;
    free(v->blocks);
    free(v->norms);
    free(v);
}

const qv_vision_hparams *qv_vision_hparams_of(const qv_vision *v) { return &v->hp; }
int qv_vision_patch_dim(const qv_vision *v) { return v->patch_dim; }

/* ------------------------------------------------------------------------------------------------ */
/* Context                                                                                           */

static int ctx_wide(const qv_vision *v) {
    int64_t w = 3 * (int64_t)v->hp.embed_dim;
    if (v->hp.mlp_dim > w) w = v->hp.mlp_dim;
    return (int)w;   /* merger hidden [N/(m*m)][m*m*E] = N*E floats always fits */
}

/* float counts of each buffer; 0 on overflow */
static uint64_t ctx_floats(const qv_vision *v, int n, uint64_t parts[7]) {
    uint64_t E = (uint64_t)v->hp.embed_dim, q4 = (uint64_t)v->hp.head_dim / 4, t = QTILE;
    uint64_t ne, nw, tn, nq, total = 0;
    if (!qv_mul_ok((uint64_t)n, E, &ne) || !qv_mul_ok((uint64_t)n, (uint64_t)ctx_wide(v), &nw) ||
        !qv_mul_ok(t, (uint64_t)n, &tn) || !qv_mul_ok((uint64_t)n, q4, &nq))
        return 0;
    uint64_t p[7] = {ne, ne, ne, nw, tn, t, nq};
    for (int i = 0; i < 7; i++) {
        if (parts) parts[i] = p[i];
        if (!qv_add_ok(total, p[i], &total)) return 0;
    }
    if (!qv_add_ok(total, nq, &total)) return 0;   /* rsin, same size as rcos */
    return total;
}

uint64_t qv_vision_ctx_bytes(const qv_vision *v, int max_patches_per_pair) {
    if (max_patches_per_pair <= 0) return 0;
    uint64_t f = ctx_floats(v, max_patches_per_pair, NULL), b;
    return f && qv_mul_ok(f, sizeof(float), &b) ? b : 0;
}

qv_status qv_vision_ctx_create(qv_vision_ctx **out, const qv_vision *v, int max_patches_per_pair, qv_err *err) {
    *out = NULL;
    const int n = max_patches_per_pair, mm = v->merge * v->merge;
    if (n < mm) return qv_errf(err, QV_ERR_INVALID, "vision: context for %d patches per pair (need >= %d)", n, mm);
    uint64_t parts[7];
    uint64_t total = ctx_floats(v, n, parts);
    if (!total || total > SIZE_MAX / sizeof(float))
        return qv_errf(err, QV_ERR_NOMEM, "vision: scratch for %d patches per pair does not fit in memory", n);
    qv_vision_ctx *c = calloc(1, sizeof *c);
    float *mem = c ? malloc((size_t)total * sizeof(float)) : NULL;
    if (!mem) {
        free(c);
        return qv_errf(err, QV_ERR_NOMEM, "vision: cannot allocate %.1f MB of scratch for %d patches per pair",
                       (double)total * 4 / 1e6, n);
    }
    c->v = v;
    c->max_n = n;
    c->wide = ctx_wide(v);
    float **dst[8] = {&c->x, &c->h, &c->ao, &c->big, &c->scores, &c->rowsum, &c->rcos, &c->rsin};
    for (int i = 0; i < 8; i++) {
        *dst[i] = mem;
        mem += parts[i < 7 ? i : 6];
    }
    *out = c;
    return QV_OK;
}

void qv_vision_ctx_free(qv_vision_ctx *c) {
    if (!c) return;
    free(c->x);   /* the start of the single allocation */
    free(c);
}

int qv_vision_ctx_max_patches(const qv_vision_ctx *c) { return c->max_n; }

void qv_vision_ctx_profile(const qv_vision_ctx *c, double seconds[3]) { memcpy(seconds, c->prof, sizeof c->prof); }

/* ------------------------------------------------------------------------------------------------ */
/* Element-wise kernels                                                                              */

/* The element-wise kernels themselves are in src/kernels_elt.c (kernels.h). */

typedef enum { OP_LN, OP_ADD, OP_QUICK_GELU, OP_GELU_ERF, OP_ROPE } op_kind;

typedef struct {
    op_kind op;
    const qv_vision_ctx *c;
    float *y;              /* output / in-place operand */
    const float *x;        /* input (LN, ADD) */
    const float *w, *b;    /* LN params */
    int64_t rows;
    int cols, ld;          /* row length and stride */
    int gw;                /* ROPE: grid width (patches) */
    float *lnout;          /* ADD: when set, LayerNorm(w, b) of the updated rows goes here */
} row_task;

static void rope_rows(const row_task *a, int64_t r0, int64_t r1) {
    const qv_vision *v = a->c->v;
    const int hd = v->hp.head_dim, H = v->hp.n_heads, q4 = hd / 4, m = v->merge, E = v->hp.embed_dim;
    const int bw = a->gw / m;                      /* merge blocks per grid row */
    for (int64_t i = r0; i < r1; i++) {
        /* merge-window order -> (row, col) in the gh x gw grid */
        int64_t blk = i / (m * m), in = i % (m * m);
        int row = (int)(blk / bw) * m + (int)(in / m), col = (int)(blk % bw) * m + (int)(in % m);
        const float *cr = a->c->rcos + (int64_t)row * q4, *sr = a->c->rsin + (int64_t)row * q4;
        const float *cc = a->c->rcos + (int64_t)col * q4, *sc = a->c->rsin + (int64_t)col * q4;
        float cs[128], sn[128];                    /* [half]: angles row*f (first q4), col*f (next q4) */
        for (int j = 0; j < q4; j++) { cs[j] = cr[j]; sn[j] = sr[j]; cs[q4 + j] = cc[j]; sn[q4 + j] = sc[j]; }
        for (int qk = 0; qk < 2; qk++)             /* q then k, both in the qkv row */
            qv_rope_half(a->y + i * a->ld + (int64_t)qk * E, H, hd, cs, sn);
    }
}

static void row_task_fn(void *ctx, int ith, int nth) {
    const row_task *a = ctx;
    int64_t r0, r1;
    qv_split(a->rows, ith, nth, 1, &r0, &r1);
    if (r0 >= r1) return;
    switch (a->op) {
    case OP_LN:
        qv_layernorm(a->y + r0 * a->cols, a->x + r0 * a->cols, a->w, a->b, r1 - r0, a->cols, 1e-6);
        break;
    case OP_ADD:
        for (int64_t i = r0; i < r1; i++) {
            qv_add_row(a->y + i * a->ld, a->x + i * a->cols, a->cols);
            if (a->lnout) qv_layernorm(a->lnout + i * a->cols, a->y + i * a->cols, a->w, a->b, 1, a->cols, 1e-6);
        }
        break;
    case OP_QUICK_GELU:  /* x * sigmoid(1.702 x) */
        for (int64_t i = r0; i < r1; i++) qv_quick_gelu(a->y + i * a->ld, a->cols);
        break;
    case OP_GELU_ERF:    /* 0.5 x (1 + erf(x / sqrt 2)) */
        for (int64_t i = r0; i < r1; i++) qv_gelu_erf(a->y + i * a->ld, a->cols);
        break;
    case OP_ROPE:
        rope_rows(a, r0, r1);
        break;
    }
}

static void run_rows(qv_pool *pool, row_task *t) {
    double t0 = qv_now();
    qv_pool_run(pool, row_task_fn, t);
    ((qv_vision_ctx *)t->c)->prof[2] += qv_now() - t0;
}

static void linear_t(qv_vision_ctx *c, qv_pool *pool, qv_precision prec, float *Y, int ldy, const float *X,
                     const uint16_t *W, const uint16_t *b, int m, int n, int k) {
    double t0 = qv_now();
    qv_linear(pool, prec, Y, ldy, X, W, b, m, n, k);
    c->prof[0] += qv_now() - t0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Forward                                                                                           */

/* Attention of one pair: qkv [n][3E] (rotary applied) -> ao [n][E]. Each pool thread owns a contiguous
 * range of query rows and walks it head by head in sub-tiles of QTILE/nth rows through its own slice of
 * the scores buffer: S = scale Q K^T, exp(S - max), O = S V, O /= sum. OpenBLAS runs single-threaded
 * (src/gemm.c), so the threads' products proceed side by side; K and V of a head stay in cache across
 * the sub-tiles. */
typedef struct {
    qv_vision_ctx *c;
    int n;
} attn_task;

static void attention_task(void *ctx, int ith, int nth) {
    const attn_task *a = ctx;
    qv_vision_ctx *c = a->c;
    const qv_vision *v = c->v;
    const int n = a->n, E = v->hp.embed_dim, H = v->hp.n_heads, hd = v->hp.head_dim, ld = 3 * E;
    if (ith >= QTILE) return;   /* more threads than tile rows: the rest idle */
    /* rows per sub-tile: this thread's share of QTILE, fewer for long pairs so that a sub-tile of
     * scores (tq x n) stays within ~512 KB of L2 across the three passes over it */
    int tq = QTILE / nth > 0 ? QTILE / nth : 1;
    const int fit = (int)(131072 / n) > 16 ? (int)(131072 / n) : 16;
    if (tq > fit) tq = fit;
    const float scale = (float)(1.0 / sqrt((double)hd));
    int64_t r0, r1;
    qv_split(n, ith, nth < QTILE ? nth : QTILE, 1, &r0, &r1);
    float *S = c->scores + (int64_t)ith * tq * n, *rs = c->rowsum + (int64_t)ith * tq;
    for (int h = 0; h < H; h++) {
        const float *Q = c->big + (int64_t)h * hd, *K = Q + E, *V = Q + 2 * E;
        for (int64_t i0 = r0; i0 < r1; i0 += tq) {
            const int t = r1 - i0 < tq ? (int)(r1 - i0) : tq;
            qv_sgemm(0, 1, t, n, hd, scale, Q + i0 * ld, ld, K, ld, 0.0f, S, n);
            for (int i = 0; i < t; i++) rs[i] = qv_softmax_row(S + (int64_t)i * n, n);
            float *O = c->ao + i0 * E + (int64_t)h * hd;
            qv_sgemm(0, 0, t, hd, n, 1.0f, S, n, V, ld, 0.0f, O, E);
            for (int i = 0; i < t; i++) {
                const float r = rs[i];
                float *o = O + (int64_t)i * E;
                for (int d = 0; d < hd; d++) o[d] *= r;
            }
        }
    }
}

static void attention(qv_vision_ctx *c, qv_pool *pool, int n) {
    attn_task a = {c, n};
    double t0 = qv_now();
    qv_pool_run(pool, attention_task, &a);
    c->prof[1] += qv_now() - t0;
}

qv_status qv_vision_encode_pair(qv_vision_ctx *c, qv_pool *pool, qv_precision prec, const float *px, int gh,
                                int gw, float *out, qv_dump_fn dump, void *dump_user, qv_err *err) {
    const qv_vision *v = c->v;
    const int E = v->hp.embed_dim, M = v->hp.mlp_dim, m = v->merge, q4 = v->hp.head_dim / 4;
    if (gh <= 0 || gw <= 0 || gh % m || gw % m)
        return qv_errf(err, QV_ERR_INVALID, "vision: grid %dx%d is not a positive multiple of the merge size %d",
                       gh, gw, m);
    if ((int64_t)gh * gw > c->max_n)
        return qv_errf(err, QV_ERR_INVALID, "vision: pair of %dx%d patches exceeds the context's %d", gh, gw,
                       c->max_n);
    const int n = gh * gw, mm = m * m, mE = mm * E;

    /* rotary tables by position value: cos/sin(p * inv_freq[j]) for p < max(gh, gw), computed in double */
    const int pmax = gh > gw ? gh : gw;
    for (int p = 0; p < pmax; p++)
        for (int j = 0; j < q4; j++) {
            double a = (double)p * v->inv_freq[j];
            c->rcos[(int64_t)p * q4 + j] = (float)cos(a);
            c->rsin[(int64_t)p * q4 + j] = (float)sin(a);
        }

    /* patch embedding: x[n][E] = px[n][P] . W[E][P]^T */
    linear_t(c, pool, prec, c->x, E, px, v->patch_w, NULL, n, E, v->patch_dim);
    if (dump) dump(dump_user, "vision.patch_embed", c->x, n, E);

    /* residual adds are fused with the LayerNorm that follows them (LN2; the next block's LN1; ln_q) */
    row_task ln = {.op = OP_LN, .c = c, .y = c->h, .x = c->x, .w = v->blocks[0].ln1_w, .b = v->blocks[0].ln1_b,
                   .rows = n, .cols = E, .ld = E};
    run_rows(pool, &ln);
    for (int l = 0; l < v->hp.depth; l++) {
        const vblock *b = &v->blocks[l];
        linear_t(c, pool, prec, c->big, 3 * E, c->h, b->qkv_w, b->qkv_b, n, 3 * E, E);
        row_task rp = {.op = OP_ROPE, .c = c, .y = c->big, .rows = n, .ld = 3 * E, .gw = gw};
        run_rows(pool, &rp);
        attention(c, pool, n);
        linear_t(c, pool, prec, c->h, E, c->ao, b->proj_w, b->proj_b, n, E, E);
        /* x += proj; h = LN2(x) */
        row_task add = {.op = OP_ADD, .c = c, .y = c->x, .x = c->h, .rows = n, .cols = E, .ld = E, .lnout = c->h,
                        .w = b->ln2_w, .b = b->ln2_b};
        run_rows(pool, &add);
        linear_t(c, pool, prec, c->big, M, c->h, b->fc1_w, b->fc1_b, n, M, E);
        row_task act = {.op = OP_QUICK_GELU, .c = c, .y = c->big, .rows = n, .cols = M, .ld = M};
        run_rows(pool, &act);
        linear_t(c, pool, prec, c->h, E, c->big, b->fc2_w, b->fc2_b, n, E, M);
        /* x += fc2; h = LN1 of the next block, or the merger's ln_q after the last */
        add.w = l + 1 < v->hp.depth ? v->blocks[l + 1].ln1_w : v->lnq_w;
        add.b = l + 1 < v->hp.depth ? v->blocks[l + 1].ln1_b : v->lnq_b;
        run_rows(pool, &add);
        if (dump) {
            char name[48];
            snprintf(name, sizeof name, "vision.block.%d", l);
            dump(dump_user, name, c->x, n, E);
        }
    }

    /* merger: h = ln_q(x) (above); m*m consecutive rows as one [mE] row, Linear, GELU(erf), Linear to D */
    const int nt = n / mm;
    linear_t(c, pool, prec, c->big, mE, c->h, v->m0_w, v->m0_b, nt, mE, mE);
    row_task act = {.op = OP_GELU_ERF, .c = c, .y = c->big, .rows = nt, .cols = mE, .ld = mE};
    run_rows(pool, &act);
    linear_t(c, pool, prec, out, v->out_dim, c->big, v->m2_w, v->m2_b, nt, v->out_dim, mE);
    return QV_OK;
}

qv_status qv_vision_encode(qv_vision_ctx *c, qv_pool *pool, qv_precision prec, const float *px, int t, int gh,
                           int gw, float *out, qv_dump_fn dump, void *dump_user, qv_err *err) {
    if (t <= 0) return qv_errf(err, QV_ERR_INVALID, "vision: grid with %d temporal pairs", t);
    const int64_t n = (int64_t)gh * gw, P = c->v->patch_dim, D = c->v->out_dim, mm = c->v->merge * c->v->merge;
    for (int p = 0; p < t; p++) {
        qv_status s = qv_vision_encode_pair(c, pool, prec, px + p * n * P, gh, gw, out + p * (n / mm) * D, dump,
                                            dump_user, err);
        if (s) return s;
    }
    return QV_OK;
}
