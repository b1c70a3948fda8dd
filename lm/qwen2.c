/* qwen2.c — the Qwen2 decoder of Qwen2-VL (transformers' Qwen2VLTextModel + lm_head; spec section 6):
 * weights table (bf16 in place from the checkpoint mapping), contexts (KV cache + chunk-sized scratch),
 * chunked prefill and decode.
 *
 * Per chunk of m tokens, in data-flow order:
 *   x[m][D] = embed(ids) | vision rows
 *   per layer: xn = rmsnorm(x) ; q,k,v = xn Wq/k/v^T + b ; M-RoPE(q, k) ; K,V -> cache[n_past..]
 *              att = softmax(q K^T / sqrt(hd), causal) V  (GQA: head h reads kv head h / (H/KV))
 *              x += att Wo^T ; xn = rmsnorm(x) ; x += (silu(xn Wg^T) * (xn Wu^T)) Wd^T
 *   xn = rmsnorm(x) ; logits = xn[m-1] lm_head^T   (embed_tokens when tied)
 * Keys and values of the chunk go into the cache before attention, so every query reads the cache
 * only: the chunk size changes nothing but the grouping of the matrix products.
 *
 * Attention (attn_task) walks the cache in tiles of ATTN_T positions with an online softmax, so its
 * scratch is fixed whatever the context. Prefill blocks of queries use sgemm on f32 keys and widened
 * value tiles (12-bit products here moved the outlier checkpoints' logits: Q K^T to top-1 98.6 %, rel L2
 * 1.3e-2 on the 7B-wide one against 99.8 %, 1.2e-3; P V to 99.2 % on the 7B-wide formula model, for 8 %
 * of prefill speed at a 46k context: not kept). Decode (few query rows) streams each tile once through
 * the kernels' attention kernels (f32 keys, half values) or hands bf16 tiles to qv_linear in place — which
 * is why 2-byte V (bf16 or the fast path's half) is stored transposed per tile (P V^T is then a product
 * against rows, the kernels' weight layout).
 *
 * Rotary angles follow the reference bit for bit where it matters: inv_freq and inv_freq * position are
 * float32 in transformers (even when the model runs in float64), so they are float32 here; cos/sin of
 * that float32 angle are evaluated in double and rounded once. */
#include "lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    const uint16_t *in_norm, *post_norm;          /* [D] */
    const uint16_t *wq, *bq;                      /* [H*hd][D], [H*hd] */
    const uint16_t *wk, *bk, *wv, *bv;            /* [KV*hd][D], [KV*hd] */
    const uint16_t *wo;                           /* [D][H*hd] */
    const uint16_t *wg, *wu;                      /* [F][D] */
    const uint16_t *wd;                           /* [D][F] */
} lm_layer;

struct qv_lm {
    qv_text_hparams hp;
    const uint16_t *embed;                        /* [V][D] */
    const uint16_t *norm;                         /* [D] */
    const uint16_t *lm_head;                      /* [V][D]; == embed when tied */
    lm_layer *layers;                             /* [n_layers] */
    float *inv_freq;                              /* [hd/2], float32 as the reference computes it */
    int8_t *freq_row;                             /* [hd/2]: 0 = t, 1 = h, 2 = w (mrope_section) */
    uint64_t weight_bytes;                        /* bytes of every decoder tensor (for memory planning) */
    qv_q8_mat *q8;                                /* NULL, or 8-bit copies (qv_lm_set_quant): [l*7 + 0..6] =
                                                     q k v o gate up down of layer l, [n_layers*7] = lm_head */
    void *q8_mem;                                 /* one allocation holding every q8 matrix */
    qv_quant quant;                               /* the format of q8[] (QV_QUANT_NONE when NULL) */
    const void *q8_blob;                          /* or the caller's blob they point into (qv_lm_use_quant) */
};

struct qv_lm_ctx {
    const qv_lm *m;
    qv_lm_ctx_params p;
    int n_past;                                   /* tokens in the cache */
    int nth;                                      /* pool size */
    size_t k_esz, v_esz;                          /* bytes per cache element of K and of V (4 or 2) */
    int v_f16;                                    /* 2-byte V elements are IEEE half (else bf16) */
    int n_cap;                                    /* n_ctx rounded up to a multiple of ATTN_T */
    int n_seg_cap;                                /* key segments of ATTN_SEG positions in n_cap */
    void *kc;                                     /* [L][KV][n_cap][hd] f32 or bf16: a head's rows contiguous */
    void *vc;                                     /* f32: [L][KV][n_cap][hd]; bf16: [L][KV][n_cap/T][hd][T],
                                                     each tile of T positions transposed, so P V is a
                                                     product against rows (the kernels' bf16 layout) */
    float *x, *xn;                                /* [chunk][D] residual stream, normed/temporary */
    float *q, *att;                               /* [chunk][H*hd] */
    float *k, *v;                                 /* [chunk][KV*hd] */
    float *g, *u;                                 /* [chunk][F] */
    float *cs, *sn;                               /* [chunk][hd/2] rotary cos, sin */
    float *attn_ws;                               /* [nth][ATTN_WS floats] attention tiles per thread */
    float *attn_part;                             /* [KV][n_cap / ATTN_SEG][ATTN_QB * H/KV][hd + 2]: the
                                                     per-segment O, running max and sum of a one-block
                                                     chunk (attn_merge) */
    size_t attn_ws_floats;                        /* per thread */
    qv_lm_stats st;                               /* time spent, since create/reset */
};

/* ---------------------------------------------------------------- weights */

/* The decoder's weight table (checkpoint.h): released names, shapes over lm_dims, where each binds. */
enum { LM_D, LM_HD, LM_KVD, LM_F, LM_V, LM_UNTIED, LM_NDIMS };
_Static_assert((int)LM_NDIMS <= (int)QV_WEIGHT_DIMS, "lm dims");
/* the last argument: what gen-weights --outliers scales (checkpoint.h qv_outlier_role) */
#define LG(nm, nd, d0, d1, fld, o) {nm, 0, nd, {d0, d1}, offsetof(struct qv_lm, fld), 0, 0, o}
#define LL(nm, nd, d0, d1, fld, o) {"model.layers.%d." nm, 1, nd, {d0, d1}, offsetof(lm_layer, fld), 0, 0, o}
static const qv_weight_def lm_weights[] = {
    LG("model.embed_tokens.weight", 2, LM_V, LM_D, embed, QV_OUT_COLUMNS),
    LL("input_layernorm.weight", 1, LM_D, 0, in_norm, QV_OUT_CHANNELS),
    LL("post_attention_layernorm.weight", 1, LM_D, 0, post_norm, QV_OUT_CHANNELS),
    LL("self_attn.q_proj.weight", 2, LM_HD, LM_D, wq, QV_OUT_NONE),
    LL("self_attn.q_proj.bias", 1, LM_HD, 0, bq, QV_OUT_NONE),
    LL("self_attn.k_proj.weight", 2, LM_KVD, LM_D, wk, QV_OUT_NONE),
    LL("self_attn.k_proj.bias", 1, LM_KVD, 0, bk, QV_OUT_NONE),
    LL("self_attn.v_proj.weight", 2, LM_KVD, LM_D, wv, QV_OUT_NONE),
    LL("self_attn.v_proj.bias", 1, LM_KVD, 0, bv, QV_OUT_NONE),
    LL("self_attn.o_proj.weight", 2, LM_D, LM_HD, wo, QV_OUT_NONE),
    LL("mlp.gate_proj.weight", 2, LM_F, LM_D, wg, QV_OUT_NONE),
    LL("mlp.up_proj.weight", 2, LM_F, LM_D, wu, QV_OUT_NONE),
    LL("mlp.down_proj.weight", 2, LM_D, LM_F, wd, QV_OUT_ROWS_FIRST_LAYER),
    LG("model.norm.weight", 1, LM_D, 0, norm, QV_OUT_CHANNELS),
    {"lm_head.weight", 0, 2, {LM_V, LM_D}, offsetof(struct qv_lm, lm_head), 0, LM_UNTIED + 1, QV_OUT_NONE},
};
#undef LG
#undef LL
enum { LM_NW = sizeof lm_weights / sizeof *lm_weights };

static void lm_dims(const qv_text_hparams *hp, int64_t *d) {
    d[LM_D] = hp->hidden;
    d[LM_HD] = (int64_t)hp->n_heads * hp->head_dim;
    d[LM_KVD] = (int64_t)hp->n_kv_heads * hp->head_dim;
    d[LM_F] = hp->ffn;
    d[LM_V] = hp->vocab;
    d[LM_UNTIED] = !hp->tie_embeddings;
}

const qv_weight_def *qv_lm_weights(const qv_text_hparams *hp, int64_t dims[QV_WEIGHT_DIMS], int *n_rows) {
    lm_dims(hp, dims);
    *n_rows = LM_NW;
    return lm_weights;
}

qv_status qv_lm_create(qv_lm **out, const qv_ckpt *ck, qv_err *err) {
    *out = NULL;
    if (!ck) return qv_errf(err, QV_ERR_INVALID, "lm: no checkpoint");
    const qv_text_hparams *hp = &ck->cfg.text;
    int D = hp->hidden, H = hp->n_heads, KV = hp->n_kv_heads, hd = hp->head_dim, F = hp->ffn, V = hp->vocab;
    if (D <= 0 || H <= 0 || KV <= 0 || hd <= 0 || hd % 2 || F <= 0 || V <= 0 || hp->n_layers <= 0 ||
        H % KV || hp->mrope_section[0] < 0 || hp->mrope_section[1] < 0 || hp->mrope_section[2] < 0 ||
        hp->mrope_section[0] + hp->mrope_section[1] + hp->mrope_section[2] != hd / 2 || !(hp->rope_theta > 0))
        return qv_errf(err, QV_ERR_FORMAT, "lm: inconsistent text config (hidden %d, heads %d/%d of %d, "
                       "mrope_section [%d,%d,%d])", D, H, KV, hd, hp->mrope_section[0], hp->mrope_section[1],
                       hp->mrope_section[2]);
    qv_lm *m = calloc(1, sizeof *m);
    if (!m) return qv_errf(err, QV_ERR_NOMEM, "lm: out of memory");
    m->hp = *hp;
    m->layers = calloc((size_t)hp->n_layers, sizeof *m->layers);
    m->inv_freq = malloc((size_t)(hd / 2) * sizeof *m->inv_freq);
    m->freq_row = malloc((size_t)(hd / 2));
    if (!m->layers || !m->inv_freq || !m->freq_row) {
        qv_lm_free(m);
        return qv_errf(err, QV_ERR_NOMEM, "lm: out of memory");
    }
    for (int j = 0; j < hd / 2; j++) {
        /* 1.0 / (base ** (arange(0, dim, 2).float() / dim)) in float32 */
        float e = (float)(2 * j) / (float)hd;
        float pw = (float)pow(hp->rope_theta, (double)e);
        m->inv_freq[j] = 1.0f / pw;
        m->freq_row[j] = (int8_t)(j < hp->mrope_section[0] ? 0 : j < hp->mrope_section[0] + hp->mrope_section[1] ? 1 : 2);
    }
    int64_t dims[QV_WEIGHT_DIMS];
    lm_dims(hp, dims);
    if (qv_weights_bind(ck, lm_weights, LM_NW, dims, hp->n_layers, m, m->layers, sizeof *m->layers, NULL,
                        &m->weight_bytes, err))
        goto fail;
    if (hp->tie_embeddings) m->lm_head = m->embed;
    *out = m;
    return QV_OK;
fail:
    qv_lm_free(m);
    return err ? err->code : QV_ERR_FORMAT;
}

void qv_lm_free(qv_lm *m) {
    if (!m) return;
    free(m->q8);
    free(m->q8_mem);
    free(m->layers);
    free(m->inv_freq);
    free(m->freq_row);
    free(m);
}

const qv_text_hparams *qv_lm_hparams(const qv_lm *m) { return &m->hp; }

/* the matrices qv_lm_set_quant converts, in q8[] order */
static int q8_list(const qv_lm *m, int i, const uint16_t **w, int *n, int *k) {
    const qv_text_hparams *hp = &m->hp;
    int D = hp->hidden, Hd = hp->n_heads * hp->head_dim, KVd = hp->n_kv_heads * hp->head_dim, F = hp->ffn;
    if (i == hp->n_layers * 7) return *w = m->lm_head, *n = hp->vocab, *k = D, 1;
    const lm_layer *L = &m->layers[i / 7];
    switch (i % 7) {
    case 0: return *w = L->wq, *n = Hd, *k = D, 1;
    case 1: return *w = L->wk, *n = KVd, *k = D, 1;
    case 2: return *w = L->wv, *n = KVd, *k = D, 1;
    case 3: return *w = L->wo, *n = D, *k = Hd, 1;
    case 4: return *w = L->wg, *n = F, *k = D, 1;
    case 5: return *w = L->wu, *n = F, *k = D, 1;
    default: return *w = L->wd, *n = D, *k = F, 1;
    }
}

/* The RMSNorm weight whose output matrix i of q8_list reads (q k v: the layer's input norm; gate up: its
 * post-attention norm; lm_head: the final norm), NULL for o and down. Where that weight has outlier
 * channels the activations do too, and those columns of the matrix are kept exactly (qv_q8_keep): measured
 * on the outlier checkpoint, int8 weights on them cost --q8 most of its error (q and k: the attention
 * logits). */
static const uint16_t *q8_norm(const qv_lm *m, int i) {
    if (i == m->hp.n_layers * 7) return m->norm;
    const lm_layer *L = &m->layers[i / 7];
    switch (i % 7) {
    case 0: case 1: case 2: return L->in_norm;
    case 4: case 5: return L->post_norm;
    default: return NULL;
    }
}

/* Back to bf16: frees what set_quant made (a blob from qv_lm_use_quant stays the caller's). */
static void quant_drop(qv_lm *m) {
    const int cnt = m->hp.n_layers * 7 + 1;
    const uint16_t *w;
    int n, k;
    if (!m->q8) return;
    for (int i = 0; i < cnt; i++)
        if (q8_list(m, i, &w, &n, &k) && !(i == cnt - 1 && m->lm_head == m->embed))
            m->weight_bytes += (uint64_t)n * k * 2 - qv_quant_bytes(m->quant, n, k);
    free(m->q8);
    free(m->q8_mem);
    m->q8 = NULL;
    m->q8_mem = NULL;
    m->quant = QV_QUANT_NONE;
}

/* The blob of every quantized matrix in q8_list order: per matrix its qv_quant_bytes, then (when its norm
 * feeds it, q8_norm) the kept columns' qv_q8_keep_bytes. Returns the total, 0 when a row length does not
 * fit the format (message in err). */
static size_t quant_layout(const qv_lm *m, qv_quant quant, qv_err *err) {
    const int cnt = m->hp.n_layers * 7 + 1, bits = quant == QV_QUANT_Q4 ? 4 : 8;
    const uint16_t *w;
    int n, k;
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        q8_list(m, i, &w, &n, &k);
        if (k % QV_Q8_BLOCK || !qv_quant_bytes(quant, n, k)) {
            qv_errf(err, QV_ERR_UNSUPPORTED, "lm: %d-bit weights need rows that are a multiple of %d values; "
                    "matrix %d of the decoder has %d (run without --q%d)", bits, QV_Q8_BLOCK, i, k, bits);
            return 0;
        }
        total += qv_quant_bytes(quant, n, k) + (q8_norm(m, i) ? qv_q8_keep_bytes(n) : 0);
    }
    return total;
}

size_t qv_lm_quant_bytes(const qv_lm *m, qv_quant quant) {
    return quant == QV_QUANT_Q8 || quant == QV_QUANT_Q4 ? quant_layout(m, quant, NULL) : 0;
}

const void *qv_lm_quant_blob(const qv_lm *m) { return m->q8 ? (m->q8_mem ? m->q8_mem : m->q8_blob) : NULL; }

/* Points the matrices into blob (quant_layout's order): quantizing them first when fill (pool), else taking
 * what is there (a stored blob). The kept columns' channels come from the norms either way. */
static qv_status quant_bind(qv_lm *m, qv_quant quant, char *blob, int fill, qv_pool *pool, qv_err *err) {
    const int cnt = m->hp.n_layers * 7 + 1, bits = quant == QV_QUANT_Q4 ? 4 : 8;
    const uint16_t *w;
    int n, k;
    m->q8 = calloc((size_t)cnt, sizeof *m->q8);
    if (!m->q8) return qv_errf(err, QV_ERR_NOMEM, "lm: out of memory");
    long pg = sysconf(_SC_PAGESIZE);
    size_t off = 0;
    for (int i = 0; i < cnt; i++) {
        q8_list(m, i, &w, &n, &k);
        qv_q8_mat *Q = &m->q8[i];
        char *at = blob + off;
        if (fill) {
            char name[48];
            snprintf(name, sizeof name, i == cnt - 1 ? "lm_head" : "layer %d matrix %d", i / 7, i % 7);
            qv_status st = bits == 4 ? qv_q4_quantize_bf16(Q, at, w, n, k, pool, name, err)
                                     : qv_q8_quantize_bf16(Q, at, w, n, k, pool, name, err);
            if (st) {
                free(m->q8);
                m->q8 = NULL;
                return st;
            }
        } else {
            qv_q8_bind(Q, at, bits, n, k);
        }
        off += qv_quant_bytes(quant, n, k);
        const uint16_t *nw = q8_norm(m, i);
        int cols[QV_OUTLIER_MAX], nc = nw ? qv_q8_outlier_channels(nw, m->hp.hidden, cols) : 0;
        if (nc) qv_q8_keep(Q, blob + off, fill ? w : NULL, cols, nc);
        if (nw) off += qv_q8_keep_bytes(n);
        if (!fill || (i == cnt - 1 && m->lm_head == m->embed)) continue;   /* tied: the bf16 rows serve lookups */
        /* the bf16 pages are read-only file pages: drop them now, so RSS never holds both copies (a later
         * read, e.g. after going back to bf16, faults them in again from the file) */
        uintptr_t a = ((uintptr_t)w + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
        uintptr_t e = ((uintptr_t)w + (size_t)n * k * 2) / (uintptr_t)pg * (uintptr_t)pg;
        if (pg > 0 && e > a) madvise((void *)a, e - a, MADV_DONTNEED);
    }
    for (int i = 0; i < cnt; i++) {
        q8_list(m, i, &w, &n, &k);
        if (i == cnt - 1 && m->lm_head == m->embed) continue;
        m->weight_bytes -= (uint64_t)n * k * 2 - qv_quant_bytes(quant, n, k);
    }
    m->quant = quant;
    return QV_OK;
}

qv_status qv_lm_set_quant(qv_lm *m, qv_quant quant, qv_pool *pool, qv_err *err) {
    quant_drop(m);
    m->q8_blob = NULL;
    if (quant == QV_QUANT_NONE) return QV_OK;
    if (quant != QV_QUANT_Q8 && quant != QV_QUANT_Q4) return qv_errf(err, QV_ERR_INVALID, "lm: unknown weight format %d", (int)quant);
    size_t total = quant_layout(m, quant, err);
    if (!total) return err ? err->code : QV_ERR_UNSUPPORTED;
    if (posix_memalign(&m->q8_mem, 64, total)) {
        m->q8_mem = NULL;
        return qv_errf(err, QV_ERR_NOMEM, "lm: no memory for the %d-bit weights (%.2f GiB)", quant == QV_QUANT_Q4 ? 4 : 8,
                       total / 1073741824.0);
    }
    qv_status st = quant_bind(m, quant, m->q8_mem, 1, pool, err);
    if (st) {
        free(m->q8_mem);
        m->q8_mem = NULL;
    }
    return st;
}

qv_status qv_lm_use_quant(qv_lm *m, qv_quant quant, const void *blob, size_t len, qv_err *err) {
    quant_drop(m);
    m->q8_blob = NULL;
    if (quant != QV_QUANT_Q8 && quant != QV_QUANT_Q4) return qv_errf(err, QV_ERR_INVALID, "lm: unknown weight format %d", (int)quant);
    size_t total = quant_layout(m, quant, err);
    if (!total) return err ? err->code : QV_ERR_UNSUPPORTED;
    if (len != total || !blob || ((uintptr_t)blob & 63))
        return qv_errf(err, QV_ERR_FORMAT, "lm: stored %d-bit weights of %zu bytes, this model needs %zu", quant == QV_QUANT_Q4 ? 4 : 8,
                       len, total);
    qv_status st = quant_bind(m, quant, (char *)blob, 0, NULL, err);
    if (!st) m->q8_blob = blob;
    return st;
}

/* ---------------------------------------------------------------- contexts */

qv_lm_ctx_params qv_lm_ctx_default_params(void) {
    qv_lm_ctx_params p = {.n_ctx = 0, .chunk = 256, .prec = QV_PREC_REF, .pool = NULL,
                          .kv_dtype = QV_DTYPE_COUNT, .check_memory = 1};
    return p;
}

/* V's dtype (and K's when BF16 is asked for). FAST: IEEE half, not bf16: same bytes, same transposed
 * tiles, but an 11-bit mantissa against 8. Measured on the outlier checkpoint (qv bench accuracy, 2 layers of
 * the 7B's widths, 512 tokens): with the 16-bit integer products, bf16 values alone held top-1 at 98.6 %
 * (logits rel. L2 4.5e-3); half values 100 % (1.1e-3), as close as f32 values. Values beyond the half range
 * (|v| > 65504; real checkpoints' values are far smaller) are stored as +-65504, NaN as NaN. */
static qv_dtype kv_type(const qv_lm_ctx_params *p) {
    if (p->kv_dtype == QV_DTYPE_COUNT) return p->prec == QV_PREC_REF ? QV_F32 : QV_F16;
    return p->kv_dtype;
}

/* K's dtype: f32 unless bf16 was asked for explicitly. Keys decide the attention logits q.k, and on
 * checkpoints with outlier channels ("massive activations", qv gen-weights --outliers) every key carries
 * a large shared component: bf16 keys (8-bit mantissa) then move the logits by several units and flip
 * near one-hot attention (measured: top-1 96.2 % vs 97.2 %, logits rel L2 7.7e-2 vs 4.7e-3 with f32 keys;
 * the values' precision mattered less until the products got better: kv_type). Prefill widened the bf16 tiles
 * to f32 anyway. */
static qv_dtype k_type(const qv_lm_ctx_params *p) {
    return p->kv_dtype == QV_DTYPE_COUNT ? QV_F32 : p->kv_dtype;
}

/* Attention works on tiles: a block of ATTN_QB queries (x H/KV heads sharing one KV head = R rows)
 * against ATTN_T keys at a time, with an online softmax; scratch per thread: Q, O [R][hd], S [R][T],
 * K and V tiles [T][hd] (widened from a bf16 cache), running max and sum [R]. */
enum { ATTN_QB = 64, ATTN_T = 256 };
enum { ATTN_SMALL_R = 16 };   /* up to this many query rows (decode: H/KV), bf16 tiles go to qv_linear */
/* A chunk of one query block (decode, and the question after a cached video prefix) splits the keys
 * into segments of ATTN_SEG positions, one task each, merged afterwards (attn_merge): its KV heads alone
 * (4 on the 7B) would keep the other threads of a large machine idle while the cache is read. Fixed
 * segment length: the numbers do not depend on the thread count; one segment (contexts up to ATTN_SEG)
 * is the unsplit computation. */
enum { ATTN_SEG = 16 * ATTN_T };

/* query rows of one block: ATTN_QB queries x the H/KV heads sharing a KV head */
static uint64_t attn_block_rows(const qv_text_hparams *hp) { return (uint64_t)ATTN_QB * (hp->n_heads / hp->n_kv_heads); }

static uint64_t attn_seg_cap(uint64_t n_cap) { return (n_cap + ATTN_SEG - 1) / ATTN_SEG; }

static uint64_t attn_part_floats(const qv_text_hparams *hp, uint64_t n_cap) {
    return (uint64_t)hp->n_kv_heads * attn_seg_cap(n_cap) * attn_block_rows(hp) * (hp->head_dim + 2);
}

static uint64_t attn_ws_floats(const qv_text_hparams *hp) {
    uint64_t R = attn_block_rows(hp), hd = hp->head_dim;
    return R * hd * 2 + R * ATTN_T + (uint64_t)ATTN_T * hd * 2 + R * 2;
}

/* Sizes of every buffer in floats (scratch) or bytes (cache). Returns 0 on overflow. */
typedef struct { uint64_t cache_bytes, k_bytes, v_bytes, scratch_floats; } ctx_sizes;

static int ctx_size(const qv_lm *m, const qv_lm_ctx_params *p, int nth, ctx_sizes *s) {
    const qv_text_hparams *hp = &m->hp;
    uint64_t C = (uint64_t)p->chunk, D = hp->hidden, Hd = (uint64_t)hp->n_heads * hp->head_dim;
    uint64_t KVd = (uint64_t)hp->n_kv_heads * hp->head_dim, F = hp->ffn, hh = hp->head_dim / 2;
    uint64_t kesz = k_type(p) == QV_F32 ? 4 : 2, vesz = kv_type(p) == QV_F32 ? 4 : 2, per_tok, kb, vb, sc = 0, t;
    uint64_t cap = ((uint64_t)p->n_ctx + ATTN_T - 1) / ATTN_T * ATTN_T;
    if (!qv_mul_ok(KVd * kesz, (uint64_t)hp->n_layers, &per_tok) || !qv_mul_ok(per_tok, cap, &kb)) return 0;
    if (!qv_mul_ok(KVd * vesz, (uint64_t)hp->n_layers, &per_tok) || !qv_mul_ok(per_tok, cap, &vb)) return 0;
    uint64_t parts[] = {C * D * 2, C * Hd * 2, C * KVd * 2, C * F * 2, C * hh * 2, attn_part_floats(hp, cap)};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (!qv_add_ok(sc, parts[i], &sc)) return 0;
    if (!qv_mul_ok((uint64_t)nth, attn_ws_floats(hp), &t) || !qv_add_ok(sc, t, &sc)) return 0;
    s->k_bytes = kb;
    s->v_bytes = vb;
    s->cache_bytes = kb + vb;
    s->scratch_floats = sc;
    return 1;
}

uint64_t qv_lm_ctx_bytes(const qv_lm *m, const qv_lm_ctx_params *p) {
    ctx_sizes s;
    if (!m || !p || p->n_ctx <= 0 || p->chunk <= 0) return 0;
    if (!ctx_size(m, p, qv_pool_size(p->pool), &s)) return 0;
    uint64_t sc;
    if (!qv_mul_ok(s.scratch_floats, 4, &sc) || !qv_add_ok(sc, s.cache_bytes, &sc)) return 0;
    return sc;
}

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
/* MemAvailable and MemTotal from /proc/meminfo in bytes; 0 when unknown. */
static void mem_info(uint64_t *avail, uint64_t *total) {
    *avail = *total = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return;
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *avail = (uint64_t)kb * 1024;
        else if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total = (uint64_t)kb * 1024;
    }
    fclose(f);
}

qv_status qv_lm_ctx_create(qv_lm_ctx **out, const qv_lm *m, const qv_lm_ctx_params *p, qv_err *err) {
    *out = NULL;
    if (!m || !p) return qv_errf(err, QV_ERR_INVALID, "lm context: no model or params");
    if (p->n_ctx <= 0 || p->chunk <= 0 || p->n_ctx > (1 << 30))
        return qv_errf(err, QV_ERR_INVALID, "lm context: n_ctx %d (1..2^30) and chunk %d (> 0) out of range", p->n_ctx,
                       p->chunk);
    if (p->prec != QV_PREC_REF && p->prec != QV_PREC_FAST)
        return qv_errf(err, QV_ERR_INVALID, "lm context: unknown precision %d", (int)p->prec);
    qv_dtype kt = kv_type(p);
    if (kt != QV_F32 && kt != QV_BF16 && kt != QV_F16)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "lm context: KV cache dtype %s (F32, F16 or BF16 only)", qv_dtype_name(kt));
    qv_lm_ctx_params pp = *p;
    if (pp.chunk > pp.n_ctx) pp.chunk = pp.n_ctx;
    int nth = qv_pool_size(pp.pool);
    ctx_sizes s;
    if (!ctx_size(m, &pp, nth, &s))
        return qv_errf(err, QV_ERR_NOMEM, "lm context: size overflows for n_ctx %d", pp.n_ctx);
    if (pp.check_memory) {
        uint64_t need = s.cache_bytes + s.scratch_floats * 4, avail, total;
        mem_info(&avail, &total);
        /* the mapped weights must stay resident beside the cache: both must fit in the machine */
        if (total && need + m->weight_bytes > total)
            return qv_errf(err, QV_ERR_NOMEM, "lm context: a KV cache of %d tokens (%.2f GiB %s) plus %.2f GiB "
                           "scratch and the model's %.2f GiB of weights exceed this machine's %.2f GiB; use fewer "
                           "tokens (shorter video, fewer frames) or the bf16 cache", pp.n_ctx,
                           s.cache_bytes / 1073741824.0, qv_dtype_name(kt), s.scratch_floats * 4 / 1073741824.0,
                           m->weight_bytes / 1073741824.0, total / 1073741824.0);
        if (avail && need > avail)
            return qv_errf(err, QV_ERR_NOMEM, "lm context: a KV cache of %d tokens (%.2f GiB %s) plus %.2f GiB "
                           "scratch needs more than the %.2f GiB of memory available; use fewer tokens "
                           "(shorter video, fewer frames) or the bf16 cache", pp.n_ctx,
                           s.cache_bytes / 1073741824.0, qv_dtype_name(kt), s.scratch_floats * 4 / 1073741824.0,
                           avail / 1073741824.0);
    }
    qv_lm_ctx *c = calloc(1, sizeof *c);
    if (!c) return qv_errf(err, QV_ERR_NOMEM, "lm context: out of memory");
    c->m = m;
    c->p = pp;
    c->p.kv_dtype = kt;
    c->nth = nth;
    c->k_esz = k_type(&pp) == QV_F32 ? 4 : 2;
    c->v_esz = kt == QV_F32 ? 4 : 2;
    c->v_f16 = kt == QV_F16;
    c->n_cap = (pp.n_ctx + ATTN_T - 1) / ATTN_T * ATTN_T;
    c->n_seg_cap = (int)attn_seg_cap((uint64_t)c->n_cap);
    c->kc = malloc(s.k_bytes);
    c->vc = calloc(1, s.v_bytes);   /* finite zeros beyond the last position: P is 0 there */
    float *sc = malloc(s.scratch_floats * sizeof(float));
    if (!c->kc || !c->vc || !sc) {
        free(sc);
        qv_lm_ctx_free(c);
        return qv_errf(err, QV_ERR_NOMEM, "lm context: out of memory for a %.2f GiB KV cache and %.2f GiB scratch",
                       s.cache_bytes / 1073741824.0, s.scratch_floats * 4 / 1073741824.0);
    }
    const qv_text_hparams *hp = &m->hp;
    size_t C = (size_t)pp.chunk, D = hp->hidden, Hd = (size_t)hp->n_heads * hp->head_dim;
    size_t KVd = (size_t)hp->n_kv_heads * hp->head_dim, F = hp->ffn, hh = hp->head_dim / 2;
    float *q = sc;
    c->x = q; q += C * D;
    c->xn = q; q += C * D;
    c->q = q; q += C * Hd;
    c->att = q; q += C * Hd;
    c->k = q; q += C * KVd;
    c->v = q; q += C * KVd;
    c->g = q; q += C * F;
    c->u = q; q += C * F;
    c->cs = q; q += C * hh;
    c->sn = q; q += C * hh;
    c->attn_part = q; q += attn_part_floats(hp, (uint64_t)c->n_cap);
    c->attn_ws = q;
    c->attn_ws_floats = (size_t)attn_ws_floats(hp);
    *out = c;
    return QV_OK;
}

void qv_lm_ctx_free(qv_lm_ctx *c) {
    if (!c) return;
    free(c->kc);
    free(c->vc);
    free(c->x);     /* the scratch block starts at x */
    free(c);
}

void qv_lm_ctx_reset(qv_lm_ctx *c) {
    if (!c) return;
    c->n_past = 0;
    memset(&c->st, 0, sizeof c->st);
}

void qv_lm_ctx_stats(const qv_lm_ctx *c, qv_lm_stats *out) { *out = c->st; }

/* ---- KV prefix export/import (the cache's portable layout, lm.h) ---- */

uint64_t qv_lm_kv_bytes(const qv_lm_ctx *c, int n) {
    const qv_text_hparams *hp = &c->m->hp;
    return (uint64_t)hp->n_layers * hp->n_kv_heads * (uint64_t)n * hp->head_dim * (c->k_esz + c->v_esz);
}

qv_dtype qv_lm_kv_dtype(const qv_lm_ctx *c) { return c->p.kv_dtype; }

/* Copies position p's v row of head (layer, g) to/from row [hd] in the cache's own layout. */
static void *v_elem(const qv_lm_ctx *c, size_t hbase, int p, int d) {
    size_t hd = (size_t)c->m->hp.head_dim;
    if (c->v_esz == 4) return (float *)c->vc + hbase + (size_t)p * hd + d;
    int col = p % ATTN_T;
    return (uint16_t *)c->vc + hbase + (size_t)(p - col) * hd + (size_t)d * ATTN_T + col;
}

/* Copies bytes [off, off+len) of the portable layout of n tokens between buf and the cache. The layout is
 * a run of segments, K then V of each (layer, KV head), each n * head_dim elements. */
static void kv_copy(qv_lm_ctx *c, int n, uint64_t off, uint64_t len, unsigned char *buf, int to_cache) {
    const qv_text_hparams *hp = &c->m->hp;
    const int KV = hp->n_kv_heads, hd = hp->head_dim;
    const uint64_t kseg = (uint64_t)n * hd * c->k_esz, vseg = (uint64_t)n * hd * c->v_esz, pair = kseg + vseg;
    while (len > 0 && pair > 0) {
        uint64_t pi = off / pair, in = off % pair;
        int is_v = in >= kseg;
        if (is_v) in -= kseg;
        uint64_t seg = is_v ? vseg : kseg, m = seg - in < len ? seg - in : len;
        const uint64_t es = is_v ? c->v_esz : c->k_esz;
        int l = (int)(pi / (uint64_t)KV), g = (int)(pi % (uint64_t)KV);
        size_t hbase = ((size_t)l * KV + g) * c->n_cap * hd;
        if (!is_v || es == 4) { /* contiguous rows from position 0 */
            unsigned char *base = (unsigned char *)(is_v ? c->vc : c->kc) + hbase * es + in;
            if (to_cache) memcpy(base, buf, m);
            else memcpy(buf, base, m);
        } else /* 2-byte V: tiles of ATTN_T positions stored transposed */
            for (uint64_t e = in / 2; e < (in + m) / 2; e++) {
                uint16_t *x = v_elem(c, hbase, (int)(e / hd), (int)(e % hd));
                if (to_cache) memcpy(x, buf + 2 * (e - in / 2), 2);
                else memcpy(buf + 2 * (e - in / 2), x, 2);
            }
        buf += m;
        off += m;
        len -= m;
    }
}

/* zeros past position n in n's V tile (bf16): the state a fresh prefill of n tokens leaves */
static void zero_tile_tail(qv_lm_ctx *c, int n) {
    if (c->v_esz != 2 || n % ATTN_T == 0) return;
    const qv_text_hparams *hp = &c->m->hp;
    for (int l = 0; l < hp->n_layers; l++)
        for (int g = 0; g < hp->n_kv_heads; g++) {
            size_t hbase = ((size_t)l * hp->n_kv_heads + g) * c->n_cap * hp->head_dim;
            for (int d = 0; d < hp->head_dim; d++)
                memset(v_elem(c, hbase, n, d), 0, (size_t)(ATTN_T - n % ATTN_T) * 2);
        }
}

qv_status qv_lm_kv_read(const qv_lm_ctx *c, int n, uint64_t off, uint64_t len, void *out, qv_err *err) {
    uint64_t total = qv_lm_kv_bytes(c, n);
    if (n < 0 || n > c->n_past || off > total || len > total - off)
        return qv_errf(err, QV_ERR_INVALID, "kv read: %d tokens (the cache holds %d), bytes %llu+%llu of %llu", n,
                       c->n_past, (unsigned long long)off, (unsigned long long)len, (unsigned long long)total);
    kv_copy((qv_lm_ctx *)c, n, off, len, out, 0);
    return QV_OK;
}

qv_status qv_lm_kv_write(qv_lm_ctx *c, int n, uint64_t off, uint64_t len, const void *in, qv_err *err) {
    uint64_t total = qv_lm_kv_bytes(c, n);
    if (n < 0 || n > c->p.n_ctx || off > total || len > total - off)
        return qv_errf(err, QV_ERR_INVALID, "kv write: %d tokens (room for %d), bytes %llu+%llu of %llu", n,
                       c->p.n_ctx, (unsigned long long)off, (unsigned long long)len, (unsigned long long)total);
    if (off == 0) {
        qv_lm_ctx_reset(c);
        zero_tile_tail(c, n);
    }
    kv_copy(c, n, off, len, (unsigned char *)in, 1);
    if (off + len == total) c->n_past = n;
    return QV_OK;
}

qv_status qv_lm_kv_export(const qv_lm_ctx *c, int n, void *out, qv_err *err) {
    return qv_lm_kv_read(c, n, 0, qv_lm_kv_bytes(c, n), out, err);
}

qv_status qv_lm_kv_import(qv_lm_ctx *c, int n, const void *in, qv_err *err) {
    return qv_lm_kv_write(c, n, 0, qv_lm_kv_bytes(c, n), in, err);
}

void qv_lm_ctx_truncate(qv_lm_ctx *c, int n) {
    if (n < 0 || n >= c->n_past) return;
    zero_tile_tail(c, n);
    c->n_past = n;
}
int qv_lm_n_past(const qv_lm_ctx *c) { return c->n_past; }
int qv_lm_n_ctx(const qv_lm_ctx *c) { return c->p.n_ctx; }

/* ---------------------------------------------------------------- pieces of the forward pass */

/* cos/sin tables [m][hd/2] for token i at positions (pt, ph, pw)[i], rows [lo, hi) */
static void rope_tables(qv_lm_ctx *c, const int64_t *pos, int64_t stride, int lo, int hi) {
    const qv_lm *M = c->m;
    int hh = M->hp.head_dim / 2;
    for (int i = lo; i < hi; i++)
        for (int j = 0; j < hh; j++) {
            float p = (float)pos[M->freq_row[j] * stride + i];
            float a = M->inv_freq[j] * p;                 /* float32 product, as the reference */
            c->cs[(size_t)i * hh + j] = (float)cos((double)a);
            c->sn[(size_t)i * hh + j] = (float)sin((double)a);
        }
}

/* rotate-half rotation of n_heads heads of hd in rows [lo, hi) of x (row stride ld) */
static void rope_apply(const qv_lm_ctx *c, float *x, int lo, int hi, int n_heads, size_t ld) {
    int hd = c->m->hp.head_dim, hh = hd / 2;
    for (int i = lo; i < hi; i++)
        qv_rope_half(x + (size_t)i * ld, n_heads, hd, c->cs + (size_t)i * hh, c->sn + (size_t)i * hh);
}

typedef struct {
    qv_lm_ctx *c;
    int layer, m;
} attn_args;

/* key segments of the coming attention over m queries: 1 unless one query block (ATTN_SEG) */
static int attn_nseg(const qv_lm_ctx *c, int m) {
    if (m > ATTN_QB) return 1;
    return (c->n_past + m + ATTN_SEG - 1) / ATTN_SEG;
}

/* the segments' partial results into c->att, segments in order: rows rescaled to the largest running
 * max (a segment a query sees nothing of has max -inf and weighs 0; segment 0 always has keys) */
static void attn_merge(qv_lm_ctx *c, int m) {
    const qv_text_hparams *hp = &c->m->hp;
    const int KV = hp->n_kv_heads, hd = hp->head_dim, rep = hp->n_heads / KV, nseg = attn_nseg(c, m);
    const size_t Hd = (size_t)hp->n_heads * hd, pw = (size_t)hd + 2, seg_w = (size_t)attn_block_rows(hp) * pw;
    for (int g = 0; g < KV; g++)
        for (int row = 0; row < m * rep; row++) {
            const float *p0 = c->attn_part + (size_t)g * c->n_seg_cap * seg_w + (size_t)row * pw;
            float M = -INFINITY, sum = 0.0f;
            for (int s = 0; s < nseg; s++) M = fmaxf(M, p0[(size_t)s * seg_w + hd]);
            float *dst = c->att + (size_t)(row / rep) * Hd + (size_t)(g * rep + row % rep) * hd;
            for (int d = 0; d < hd; d++) dst[d] = 0.0f;
            for (int s = 0; s < nseg; s++) {
                const float *p = p0 + (size_t)s * seg_w;
                if (p[hd] == -INFINITY) continue;
                const float w = expf(p[hd] - M);
                sum += p[hd + 1] * w;
                for (int d = 0; d < hd; d++) dst[d] += p[d] * w;
            }
            const float inv = 1.0f / sum;
            for (int d = 0; d < hd; d++) dst[d] *= inv;
        }
}

/* One task = (kv head g, block of up to ATTN_QB queries of the chunk[, key segment]): the R = QB x H/KV
 * query rows that share g go through the keys tile by tile as two matrix products (S = Q K^T, O += P V)
 * with an online softmax, so each cached row is read once per block and the scores never exceed one
 * tile; a one-block chunk runs one task per ATTN_SEG keys and leaves its partial rows to attn_merge.
 * Causal: query i of the chunk sees cache rows [0, n_past + i]. Key tiles start at multiples of ATTN_T
 * of the absolute position, whatever the chunking. */
static void attn_task(void *ctx, int ith, int nth) {
    attn_args *a = ctx;
    qv_lm_ctx *c = a->c;
    const qv_text_hparams *hp = &c->m->hp;
    const int H = hp->n_heads, KV = hp->n_kv_heads, hd = hp->head_dim, rep = H / KV, n_cap = c->n_cap;
    const size_t Hd = (size_t)H * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *Q = c->attn_ws + (size_t)ith * c->attn_ws_floats;
    const size_t Rmax = (size_t)attn_block_rows(hp);
    float *O = Q + Rmax * hd, *S = O + Rmax * hd, *Kt = S + Rmax * ATTN_T, *Vt = Kt + (size_t)ATTN_T * hd;
    float *mx = Vt + (size_t)ATTN_T * hd, *sum = mx + Rmax;
    const int kbf = c->k_esz == 2, bf = c->v_esz == 2, vh = c->v_f16;
    const int nblk = (a->m + ATTN_QB - 1) / ATTN_QB, nseg = attn_nseg(c, a->m), ntask = nblk * KV * nseg;
    for (int t = ith; t < ntask; t += nth) {
        const int g = t % KV, seg = t / KV % nseg, i0 = (t / KV / nseg) * ATTN_QB;
        const int qn = a->m - i0 < ATTN_QB ? a->m - i0 : ATTN_QB, R = qn * rep;
        for (int i = 0; i < qn; i++) { /* rows (i, r): the rep heads of g are contiguous in q; pre-scaled */
            const float *src = c->q + (size_t)(i0 + i) * Hd + (size_t)g * rep * hd;
            float *dst = Q + (size_t)i * rep * hd;
            for (int e = 0; e < rep * hd; e++) dst[e] = src[e] * scale;
        }
        memset(O, 0, (size_t)R * hd * sizeof *O);
        for (int r = 0; r < R; r++) { mx[r] = -INFINITY; sum[r] = 0; }
        const int nk_all = c->n_past + i0 + qn;      /* keys the last query of the block sees */
        const int nk = nseg > 1 && (seg + 1) * ATTN_SEG < nk_all ? (seg + 1) * ATTN_SEG : nk_all;
        const size_t hbase = ((size_t)a->layer * KV + g) * n_cap * hd;
        for (int j0 = nseg > 1 ? seg * ATTN_SEG : 0; j0 < nk; j0 += ATTN_T) {
            const int tn = nk - j0 < ATTN_T ? nk - j0 : ATTN_T;
            /* bf16 tiles: K rows [tn][hd] and V transposed [hd][T] (same offset: one tile = T*hd) */
            const uint16_t *Kb = (const uint16_t *)c->kc + hbase + (size_t)j0 * hd;
            const uint16_t *Vb = (const uint16_t *)c->vc + hbase + (size_t)j0 * hd;
            const int small = bf && !vh && R <= ATTN_SMALL_R;   /* half tiles are widened first */
            /* decode on the fast path's f32 keys and half values: the streaming kernels (qv_attn_qk) */
            const int few = !kbf && vh && R <= ATTN_SMALL_R;
            if (small && kbf) {  /* decode: the kernels' bf16 matrix-vector path, nothing widened */
                qv_linear(NULL, QV_PREC_REF, S, ATTN_T, Q, Kb, NULL, R, tn, hd);
            } else if (few) {
                qv_attn_qk(S, ATTN_T, Q, hd, R, (const float *)c->kc + hbase + (size_t)j0 * hd, hd, tn, hd);
            } else if (kbf) {
                qv_bf16_to_f32_row(Kt, Kb, tn * hd);
                qv_sgemm(0, 1, R, tn, hd, 1.0f, Q, hd, Kt, hd, 0.0f, S, ATTN_T);
            } else {
                qv_sgemm(0, 1, R, tn, hd, 1.0f, Q, hd, (const float *)c->kc + hbase + (size_t)j0 * hd, hd, 0.0f, S,
                         ATTN_T);
            }
            for (int i = 0; i < qn; i++) {
                int valid = c->n_past + i0 + i + 1 - j0;   /* keys of this tile query i sees */
                if (valid > tn) valid = tn;
                for (int r = 0; r < rep; r++) {
                    const int row = i * rep + r;
                    float *s = S + (size_t)row * ATTN_T;
                    if (valid <= 0) { memset(s, 0, (size_t)(small ? ATTN_T : tn) * sizeof *s); continue; }
                    float m = qv_row_max(s, valid, mx[row]);
                    float corr = expf(mx[row] - m);           /* 0 on the first tile (-inf) */
                    if (corr != 1.0f) {
                        float *o = O + (size_t)row * hd;
                        for (int d = 0; d < hd; d++) o[d] *= corr;
                    }
                    float acc = qv_exp_sub_sum(s, valid, m);
                    for (int j = valid; j < (small ? ATTN_T : tn); j++) s[j] = 0;
                    sum[row] = (float)(sum[row] * corr + acc);
                    mx[row] = m;
                }
            }
            if (small) {         /* O += P V^T-tile: a whole tile, P is 0 past the last valid key */
                qv_linear(NULL, QV_PREC_REF, Kt, hd, S, Vb, NULL, R, hd, ATTN_T);
                for (size_t e = 0; e < (size_t)R * hd; e++) O[e] += Kt[e];
            } else if (few) {
                qv_attn_pv_f16(O, hd, S, ATTN_T, R, Vb, ATTN_T, hd, tn);
            } else if (bf) {
                if (vh) qv_f16_to_f32_row(Vt, Vb, hd * ATTN_T);
                else qv_bf16_to_f32_row(Vt, Vb, hd * ATTN_T);
                qv_sgemm(0, 1, R, hd, tn, 1.0f, S, ATTN_T, Vt, ATTN_T, 1.0f, O, hd);
            } else {
                qv_sgemm(0, 0, R, hd, tn, 1.0f, S, ATTN_T, (const float *)c->vc + hbase + (size_t)j0 * hd, hd, 1.0f, O,
                         hd);
            }
        }
        if (nseg > 1) {   /* this segment's unnormalized rows, max and sum: attn_merge finishes */
            float *part = c->attn_part + ((size_t)g * c->n_seg_cap + seg) * Rmax * (hd + 2);
            for (int r = 0; r < R; r++) {
                memcpy(part + (size_t)r * (hd + 2), O + (size_t)r * hd, (size_t)hd * sizeof *O);
                part[(size_t)r * (hd + 2) + hd] = mx[r];
                part[(size_t)r * (hd + 2) + hd + 1] = sum[r];
            }
            continue;
        }
        for (int i = 0; i < qn; i++)
            for (int r = 0; r < rep; r++) {
                const float inv = 1.0f / sum[i * rep + r], *o = O + (size_t)(i * rep + r) * hd;
                float *dst = c->att + (size_t)(i0 + i) * Hd + (size_t)(g * rep + r) * hd;
                for (int d = 0; d < hd; d++) dst[d] = o[d] * inv;
            }
    }
}

typedef struct { float *g; const float *u; size_t n; } silu_args;

static void silu_task(void *ctx, int ith, int nth) {
    silu_args *a = ctx;
    int64_t lo, hi;
    qv_split((int64_t)a->n, ith, nth, 64, &lo, &hi);
    if (hi > lo) qv_silu_mul(a->g + lo, a->u + lo, hi - lo);
}

/* v clamped to the finite half range (NaN kept) */
static float half_range(float v) { return v > 65504.0f ? 65504.0f : v < -65504.0f ? -65504.0f : v; }

/* Before a chunk of m rows is stored: the 2-byte V tiles whose first position it writes are zeroed (no
 * stale values past the last position: P is 0 there, and 0 * a stale NaN would not be). */
static void cache_clear_tiles(qv_lm_ctx *c, int layer, int m) {
    const qv_text_hparams *hp = &c->m->hp;
    const int KV = hp->n_kv_heads, hd = hp->head_dim;
    if (c->v_esz == 4) return;
    for (int g = 0; g < KV; g++) {
        const size_t hbase = ((size_t)layer * KV + g) * c->n_cap * hd;
        for (int p = (c->n_past + ATTN_T - 1) / ATTN_T * ATTN_T; p < c->n_past + m; p += ATTN_T)
            memset((uint16_t *)c->vc + hbase + (size_t)p * hd, 0, (size_t)hd * ATTN_T * sizeof(uint16_t));
    }
}

/* Stores the chunk's k, v rows [lo, hi) into the cache at [layer][n_past + i] (tiles cleared before). */
static void cache_store(qv_lm_ctx *c, int layer, int lo, int hi) {
    const qv_text_hparams *hp = &c->m->hp;
    const int KV = hp->n_kv_heads, hd = hp->head_dim;
    const size_t kvd = (size_t)KV * hd;
    for (int g = 0; g < KV; g++) {
        size_t hbase = ((size_t)layer * KV + g) * c->n_cap * hd, off = hbase + (size_t)c->n_past * hd;
        for (int i = lo; i < hi; i++) {
            const float *k = c->k + (size_t)i * kvd + (size_t)g * hd, *v = c->v + (size_t)i * kvd + (size_t)g * hd;
            if (c->k_esz == 4) memcpy((float *)c->kc + off + (size_t)i * hd, k, (size_t)hd * sizeof(float));
            else qv_f32_to_bf16_row((uint16_t *)c->kc + off + (size_t)i * hd, k, hd);
            if (c->v_esz == 4) {
                memcpy((float *)c->vc + off + (size_t)i * hd, v, (size_t)hd * sizeof(float));
            } else {
                int p = c->n_past + i, col = p % ATTN_T;
                uint16_t *tile = (uint16_t *)c->vc + hbase + (size_t)(p - col) * hd;
                if (c->v_f16)
                    for (int d = 0; d < hd; d++) tile[(size_t)d * ATTN_T + col] = qv_f32_to_f16(half_range(v[d]));
                else
                    for (int d = 0; d < hd; d++) tile[(size_t)d * ATTN_T + col] = qv_f32_to_bf16(v[d]);
            }
        }
    }
}

/* The row-wise steps of a layer, rows split across the pool (each row's result is the serial one's, so
 * the split changes no number): with 16 threads the matrix products take a sixteenth of their time, and
 * these steps (3 % of a 1-thread prefill) would otherwise be a quarter of it. */
enum { ROWS_NORM, ROWS_ADD, ROWS_ADD_NORM, ROWS_ROPE_STORE, ROWS_TABLES };
enum { ROWS_POOL_MIN = 8 };   /* fewer rows (decode): on the calling thread */
typedef struct {
    qv_lm_ctx *c;
    int op, m, layer;
    const uint16_t *w;        /* NORM, ADD_NORM: the norm weight */
    const int64_t *pos;       /* TABLES */
    int64_t stride;
} rows_args;

static void rows_task(void *ctx, int ith, int nth) {
    const rows_args *a = ctx;
    qv_lm_ctx *c = a->c;
    const qv_text_hparams *hp = &c->m->hp;
    const size_t D = (size_t)hp->hidden;
    int64_t lo, hi;
    qv_split(a->m, ith, nth, 1, &lo, &hi);
    if (hi <= lo) return;
    switch (a->op) {
    case ROWS_ADD:
    case ROWS_ADD_NORM:
        for (size_t i = (size_t)lo * D; i < (size_t)hi * D; i++) c->x[i] += c->xn[i];
        if (a->op == ROWS_ADD) break;
        /* fall through */
    case ROWS_NORM:
        qv_rmsnorm_bf16(c->xn + (size_t)lo * D, c->x + (size_t)lo * D, a->w, (int)(hi - lo), (int)D, hp->rms_eps);
        break;
    case ROWS_ROPE_STORE:
        rope_apply(c, c->q, (int)lo, (int)hi, hp->n_heads, (size_t)hp->n_heads * hp->head_dim);
        rope_apply(c, c->k, (int)lo, (int)hi, hp->n_kv_heads, (size_t)hp->n_kv_heads * hp->head_dim);
        cache_store(c, a->layer, (int)lo, (int)hi);
        break;
    case ROWS_TABLES:
        rope_tables(c, a->pos, a->stride, (int)lo, (int)hi);
        break;
    }
}

static void rows_run(qv_lm_ctx *c, int op, int m, int layer, const uint16_t *w, const int64_t *pos, int64_t stride) {
    rows_args a = {c, op, m, layer, w, pos, stride};
    if (m < ROWS_POOL_MIN) rows_task(&a, 0, 1);
    else qv_pool_run(c->p.pool, rows_task, &a);
}

/* Runs m (<= chunk) tokens whose embeddings are in c->x through the decoder; advances n_past. */
static void forward_chunk(qv_lm_ctx *c, const int64_t *pos, int64_t stride, int m, float *logits,
                          float *all_logits, qv_dump_fn dump, void *du) {
    const qv_lm *M = c->m;
    const qv_text_hparams *hp = &M->hp;
    int D = hp->hidden, H = hp->n_heads, KV = hp->n_kv_heads, hd = hp->head_dim, F = hp->ffn;
    int Hd = H * hd, KVd = KV * hd;
    qv_pool *pool = c->p.pool;
    qv_precision pr = c->p.prec;
    qv_lm_stats *S = &c->st;
    /* the big products: 8-bit weights when the model has them (qv_lm_set_quant), else bf16 */
#define LIN(Y, ldy, X, W, Q, b, rows, n, k) \
    (M->q8 ? qv_linear_q8(pool, Y, ldy, X, &M->q8[Q], b, rows, n, k) : qv_linear(pool, pr, Y, ldy, X, W, b, rows, n, k))
    double t0 = qv_now(), t1;
#define LAP(field) (t1 = qv_now(), S->field += t1 - t0, t0 = t1)
    rows_run(c, ROWS_TABLES, m, 0, NULL, pos, stride);
    LAP(attention_s);
    for (int l = 0; l < hp->n_layers; l++) {
        const lm_layer *L = &M->layers[l];
        rows_run(c, ROWS_NORM, m, l, L->in_norm, NULL, 0);
        LAP(other_s);
        LIN(c->q, Hd, c->xn, L->wq, l * 7 + 0, L->bq, m, Hd, D);
        LIN(c->k, KVd, c->xn, L->wk, l * 7 + 1, L->bk, m, KVd, D);
        LIN(c->v, KVd, c->xn, L->wv, l * 7 + 2, L->bv, m, KVd, D);
        LAP(linear_s);
        cache_clear_tiles(c, l, m);
        rows_run(c, ROWS_ROPE_STORE, m, l, NULL, NULL, 0);
        attn_args aa = {c, l, m};
        qv_pool_run(pool, attn_task, &aa);
        if (attn_nseg(c, m) > 1) attn_merge(c, m);
        LAP(attention_s);
        LIN(c->xn, D, c->att, L->wo, l * 7 + 3, NULL, m, D, Hd);
        LAP(linear_s);
        rows_run(c, ROWS_ADD_NORM, m, l, L->post_norm, NULL, 0);
        LAP(other_s);
        LIN(c->g, F, c->xn, L->wg, l * 7 + 4, NULL, m, F, D);
        LIN(c->u, F, c->xn, L->wu, l * 7 + 5, NULL, m, F, D);
        LAP(linear_s);
        silu_args sa = {c->g, c->u, (size_t)m * F};
        qv_pool_run(pool, silu_task, &sa);
        LAP(other_s);
        LIN(c->xn, D, c->g, L->wd, l * 7 + 6, NULL, m, D, F);
        LAP(linear_s);
        rows_run(c, ROWS_ADD, m, l, NULL, NULL, 0);
        LAP(other_s);
        if (dump) {
            char name[32];
            snprintf(name, sizeof name, "lm.layer.%d", l);
            dump(du, name, c->x, m, D);
            t0 = qv_now();
        }
    }
    c->n_past += m;
    S->tokens += m;
    if (!dump && !logits && !all_logits) return;
    /* only the last row is needed for logits; all rows when dumping or asked for every row's logits */
    int r0 = dump || all_logits ? 0 : m - 1;
    t0 = qv_now();
    qv_rmsnorm_bf16(c->xn + (size_t)r0 * D, c->x + (size_t)r0 * D, M->norm, m - r0, D, hp->rms_eps);
    if (dump) dump(du, "lm.norm", c->xn, m, D);
    LAP(other_s);
    if (all_logits) LIN(all_logits, hp->vocab, c->xn, M->lm_head, hp->n_layers * 7, NULL, m, hp->vocab, D);
    if (logits && all_logits) memcpy(logits, all_logits + (size_t)(m - 1) * hp->vocab, (size_t)hp->vocab * sizeof *logits);
    else if (logits) LIN(logits, hp->vocab, c->xn + (size_t)(m - 1) * D, M->lm_head, hp->n_layers * 7, NULL, 1, hp->vocab, D);
    LAP(linear_s);
#undef LAP
#undef LIN
}

/* ---------------------------------------------------------------- prefill / decode */

qv_lm_prefill_opts qv_lm_prefill_default_opts(void) {
    qv_lm_prefill_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

/* end of the chunk that starts at s: s + chunk, or the first cut point inside (s, that) */
static int64_t chunk_end(int64_t s, int64_t n, int C, const qv_lm_prefill_opts *o) {
    int64_t e = n - s < C ? n : s + C;
    for (int i = 0; o && i < o->n_cuts; i++)
        if (o->cuts[i] > s && o->cuts[i] < e) e = o->cuts[i];
    return e;
}

qv_status qv_lm_prefill_seq(qv_lm_ctx *c, const int32_t *ids, int64_t n, const float *embd, int64_t n_embd,
                            const int64_t *pos, int64_t pos_stride, const qv_lm_prefill_opts *o, float *logits,
                            qv_err *err) {
    int64_t start = o ? o->start : 0;
    if (!c || n <= 0 || start < 0 || start >= n || !pos || pos_stride < n || n_embd < 0 || (!ids && !embd) ||
        (n_embd && !embd) || (o && o->n_cuts && !o->cuts) || (o && o->n_cuts < 0))
        return qv_errf(err, QV_ERR_INVALID, "lm prefill: bad arguments (n %lld, start %lld, pos_stride %lld, n_embd %lld)",
                       (long long)n, (long long)start, (long long)pos_stride, (long long)n_embd);
    const qv_text_hparams *hp = &c->m->hp;
    if (n - start > c->p.n_ctx - c->n_past)
        return qv_errf(err, QV_ERR_NOMEM, "lm prefill: %lld more tokens do not fit the KV cache (%d of %d used); "
                       "create the context with a larger n_ctx", (long long)(n - start), c->n_past, c->p.n_ctx);
    /* validate everything before touching the cache */
    int64_t used = 0;
    for (int64_t i = start; i < n; i++) {
        int32_t id = ids ? ids[i] : -1;
        if (embd && (id < 0 || id == hp->image_token_id || id == hp->video_token_id)) used++;
        else if (id < 0 || id >= hp->vocab)
            return qv_errf(err, QV_ERR_INVALID, "lm prefill: token %lld has id %d outside the vocabulary (%d)",
                           (long long)i, id, hp->vocab);
        for (int r = 0; r < 3; r++) {
            int64_t p = pos[r * pos_stride + i];
            if (p < 0 || p >= (1 << 24))
                return qv_errf(err, QV_ERR_INVALID, "lm prefill: token %lld has position %lld (row %d) outside "
                               "[0, 2^24)", (long long)i, (long long)p, r);
        }
    }
    if (used != n_embd)
        return qv_errf(err, QV_ERR_INVALID, "lm prefill: %lld tokens take embedding rows but %lld rows were given",
                       (long long)used, (long long)n_embd);
    int D = hp->hidden, C = c->p.chunk;
    int64_t row = 0;
    for (int64_t s = start; s < n;) {
        if (s > start && o && o->abort_cb && o->abort_cb(o->user))
            return qv_errf(err, QV_ERR_CANCELLED, "cancelled");
        int64_t e = chunk_end(s, n, C, o);
        int m = (int)(e - s);
        double t0 = qv_now();
        for (int i = 0; i < m; i++) {
            int32_t id = ids ? ids[s + i] : -1;
            float *xi = c->x + (size_t)i * D;
            if (embd && (id < 0 || id == hp->image_token_id || id == hp->video_token_id))
                memcpy(xi, embd + (size_t)row++ * D, (size_t)D * sizeof *xi);
            else
                qv_bf16_to_f32_row(xi, c->m->embed + (size_t)id * D, D);
        }
        c->st.other_s += qv_now() - t0;
        float *al = o && o->all_logits ? o->all_logits + (size_t)(s - start) * hp->vocab : NULL;
        forward_chunk(c, pos + s, pos_stride, m, e == n ? logits : NULL, al, o ? o->dump : NULL, o ? o->dump_user : NULL);
        s = e;
        if (o && o->on_progress) o->on_progress(o->user, s, n);
    }
    return QV_OK;
}

qv_status qv_lm_prefill(qv_lm_ctx *c, const int32_t *ids, int n, const float *embd, int n_embd,
                        const int64_t *pos, int64_t pos_stride, float *logits, qv_dump_fn dump,
                        void *dump_user, qv_err *err) {
    qv_lm_prefill_opts o = qv_lm_prefill_default_opts();
    o.dump = dump;
    o.dump_user = dump_user;
    return qv_lm_prefill_seq(c, ids, n, embd, n_embd, pos, pos_stride, &o, logits, err);
}

qv_status qv_lm_decode(qv_lm_ctx *c, int32_t id, int64_t pos, float *logits, qv_err *err) {
    int64_t p3[3] = {pos, pos, pos};
    return qv_lm_prefill(c, &id, 1, NULL, 0, p3, 1, logits, NULL, NULL, err);
}
