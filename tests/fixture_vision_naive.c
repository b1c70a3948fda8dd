/* fixture_vision_naive.c — the encoder against a plain double-precision implementation of spec
 * section 5 written here from the transformers code (rotary positions built the way rot_pos_emb does
 * it: reshape + permute of the row/column grids; attention as one full N x N product), on the tiny
 * model's weights, for grids the golden files don't cover: a large non-square pair (36x40 = 1440
 * patches: several attention sub-tiles per thread), a tall thin one (2x50), and 2x2. Inputs are
 * pseudo-random pixels. Reference path within 1e-5 relative L2, fast path within 3e-2. */
#include "test.h"

#include "checkpoint.h"
#include "threads.h"
#include "encoder.h"

static const qv_ckpt *g_ck;

static double *wget(const char *name, int64_t *numel) {
    const qv_tensor *t = qv_ckpt_get(g_ck, name);
    if (!t) { fprintf(stderr, "missing %s\n", name); exit(1); }
    int64_t n = qv_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof(float));
    double *d = malloc((size_t)n * sizeof(double));
    qv_convert_to_f32(f, t->data, t->dtype, n);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    if (numel) *numel = n;
    return d;
}

/* y[r][n] = x[r][k] W[n][k]^T + b */
static void lin(double *y, const double *x, const double *W, const double *b, int r, int n, int k) {
    for (int i = 0; i < r; i++)
        for (int j = 0; j < n; j++) {
            double s = b ? b[j] : 0;
            for (int q = 0; q < k; q++) s += x[(size_t)i * k + q] * W[(size_t)j * k + q];
            y[(size_t)i * n + j] = s;
        }
}

static void layernorm(double *y, const double *x, const double *w, const double *b, int r, int n) {
    for (int i = 0; i < r; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < n; j++) m += x[(size_t)i * n + j];
        m /= n;
        for (int j = 0; j < n; j++) v += (x[(size_t)i * n + j] - m) * (x[(size_t)i * n + j] - m);
        v /= n;
        for (int j = 0; j < n; j++) y[(size_t)i * n + j] = (x[(size_t)i * n + j] - m) / sqrt(v + 1e-6) * w[j] + b[j];
    }
}

/* the whole encoder for one pair, in double */
static void naive(const qv_vision_hparams *hp, const float *px, int gh, int gw, double *out) {
    const int E = hp->embed_dim, H = hp->n_heads, hd = hp->head_dim, M = hp->mlp_dim, D = hp->out_hidden;
    const int m = hp->spatial_merge_size, N = gh * gw, P = 1176;
    double *xin = malloc(sizeof(double) * N * P), *x = malloc(sizeof(double) * N * E);
    double *h = malloc(sizeof(double) * N * E), *qkv = malloc(sizeof(double) * N * 3 * E);
    double *ao = malloc(sizeof(double) * N * E), *mid = malloc(sizeof(double) * N * M);
    double *sc = malloc(sizeof(double) * N), *tmp = malloc(sizeof(double) * N * E);
    int *prow = malloc(sizeof(int) * N), *pcol = malloc(sizeof(int) * N);
    for (size_t i = 0; i < (size_t)N * P; i++) xin[i] = px[i];
    double *pw = wget("visual.patch_embed.proj.weight", NULL);
    lin(x, xin, pw, NULL, N, E, P);
    free(pw);
    /* rot_pos_emb: hpos[h][w] = h, wpos = w, reshaped (h/m, m, w/m, m), permuted (0, 2, 1, 3), flattened */
    int idx = 0;
    for (int bh = 0; bh < gh / m; bh++)
        for (int bw = 0; bw < gw / m; bw++)
            for (int ih = 0; ih < m; ih++)
                for (int iw = 0; iw < m; iw++, idx++) { prow[idx] = bh * m + ih; pcol[idx] = bw * m + iw; }
    const int q4 = hd / 4, half = hd / 2;
    for (int l = 0; l < hp->depth; l++) {
        char nm[96];
#define W(s) (snprintf(nm, sizeof nm, "visual.blocks.%d.%s", l, s), wget(nm, NULL))
        double *n1w = W("norm1.weight"), *n1b = W("norm1.bias"), *n2w = W("norm2.weight"), *n2b = W("norm2.bias");
        double *qw = W("attn.qkv.weight"), *qb = W("attn.qkv.bias"), *pjw = W("attn.proj.weight"), *pjb = W("attn.proj.bias");
        double *f1w = W("mlp.fc1.weight"), *f1b = W("mlp.fc1.bias"), *f2w = W("mlp.fc2.weight"), *f2b = W("mlp.fc2.bias");
#undef W
        layernorm(h, x, n1w, n1b, N, E);
        lin(qkv, h, qw, qb, N, 3 * E, E);
        for (int i = 0; i < N; i++)
            for (int s = 0; s < 2; s++)
                for (int hh = 0; hh < H; hh++) {
                    double *p = qkv + (size_t)i * 3 * E + (size_t)s * E + (size_t)hh * hd, r[256];
                    for (int d = 0; d < hd; d++) {
                        int j = d % half;   /* emb = cat(freqs, freqs); freqs = [row*inv, col*inv] */
                        double inv = pow(10000.0, -2.0 * (j % q4) / half);
                        double ang = (j < q4 ? prow[i] : pcol[i]) * inv;
                        double rot = d < half ? -p[d + half] : p[d - half];
                        r[d] = p[d] * cos(ang) + rot * sin(ang);
                    }
                    memcpy(p, r, sizeof(double) * hd);
                }
        for (int hh = 0; hh < H; hh++)
            for (int i = 0; i < N; i++) {
                const double *q = qkv + (size_t)i * 3 * E + (size_t)hh * hd;
                double mx = -1e300, sum = 0;
                for (int j = 0; j < N; j++) {
                    const double *k = qkv + (size_t)j * 3 * E + E + (size_t)hh * hd;
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += q[d] * k[d];
                    sc[j] = s / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j < N; j++) { sc[j] = exp(sc[j] - mx); sum += sc[j]; }
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j < N; j++) o += sc[j] * qkv[(size_t)j * 3 * E + 2 * E + (size_t)hh * hd + d];
                    ao[(size_t)i * E + (size_t)hh * hd + d] = o / sum;
                }
            }
        lin(tmp, ao, pjw, pjb, N, E, E);
        for (size_t i = 0; i < (size_t)N * E; i++) x[i] += tmp[i];
        layernorm(h, x, n2w, n2b, N, E);
        lin(mid, h, f1w, f1b, N, M, E);
        for (size_t i = 0; i < (size_t)N * M; i++) mid[i] = mid[i] / (1 + exp(-1.702 * mid[i]));
        lin(tmp, mid, f2w, f2b, N, E, M);
        for (size_t i = 0; i < (size_t)N * E; i++) x[i] += tmp[i];
        free(n1w); free(n1b); free(n2w); free(n2b); free(qw); free(qb); free(pjw); free(pjb);
        free(f1w); free(f1b); free(f2w); free(f2b);
    }
    double *lw = wget("visual.merger.ln_q.weight", NULL), *lb = wget("visual.merger.ln_q.bias", NULL);
    double *m0w = wget("visual.merger.mlp.0.weight", NULL), *m0b = wget("visual.merger.mlp.0.bias", NULL);
    double *m2w = wget("visual.merger.mlp.2.weight", NULL), *m2b = wget("visual.merger.mlp.2.bias", NULL);
    layernorm(h, x, lw, lb, N, E);
    const int nt = N / (m * m), mE = m * m * E;
    lin(tmp, h, m0w, m0b, nt, mE, mE);
    for (size_t i = 0; i < (size_t)nt * mE; i++) tmp[i] = 0.5 * tmp[i] * (1 + erf(tmp[i] / sqrt(2.0)));
    lin(out, tmp, m2w, m2b, nt, D, mE);
    free(lw); free(lb); free(m0w); free(m0b); free(m2w); free(m2b);
    free(xin); free(x); free(h); free(qkv); free(ao); free(mid); free(sc); free(tmp); free(prow); free(pcol);
}

int main(void) {
    char *dir = test_fixture("models/tiny-qwen2vl");
    qv_ckpt *ck = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_ckpt_open(&ck, dir, &err) == QV_OK, "%s: %s", dir, err.msg);
    free(dir);
    if (!ck) return test_done();
    g_ck = ck;
    qv_vision *v = NULL;
    CHECK_MSG(qv_vision_create(&v, ck, &err) == QV_OK, "%s", err.msg);
    if (!v) { qv_ckpt_free(ck); return test_done(); }
    const qv_vision_hparams *hp = qv_vision_hparams_of(v);
    CHECK(qv_vision_patch_dim(v) == 1176);
    qv_pool *pool = qv_pool_create(2);
    const int grids[3][2] = {{36, 40}, {2, 50}, {2, 2}};
    qv_vision_ctx *c = NULL;
    CHECK_MSG(qv_vision_ctx_create(&c, v, 36 * 40, &err) == QV_OK, "%s", err.msg);
    CHECK(qv_vision_ctx_bytes(v, 36 * 40) > 0);
    uint64_t s = 7;
    for (int gi = 0; gi < 3 && c; gi++) {
        const int gh = grids[gi][0], gw = grids[gi][1], n = gh * gw, D = hp->out_hidden;
        float *px = malloc(sizeof(float) * n * 1176), *out = malloc(sizeof(float) * n / 4 * D);
        double *ref = malloc(sizeof(double) * n / 4 * D);
        float *reff = malloc(sizeof(float) * n / 4 * D);
        for (size_t i = 0; i < (size_t)n * 1176; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            px[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 3.8 - 1.8);
        }
        naive(hp, px, gh, gw, ref);
        for (size_t i = 0; i < (size_t)n / 4 * D; i++) reff[i] = (float)ref[i];
        for (int prec = QV_PREC_REF; prec <= QV_PREC_FAST; prec++) {
            qv_status st = qv_vision_encode_pair(c, pool, (qv_precision)prec, px, gh, gw, out, NULL, NULL, &err);
            CHECK_MSG(st == QV_OK, "%s", err.msg);
            double e = test_rel_l2(out, reff, (long)n / 4 * D), tol = prec == QV_PREC_REF ? 1e-5 : 3e-2;
            printf("%dx%d %-4s rel_l2 vs naive double %.3e\n", gh, gw, prec == QV_PREC_REF ? "ref" : "fast", e);
            CHECK_MSG(e < tol, "%dx%d prec %d: %g", gh, gw, prec, e);
        }
        free(px); free(out); free(ref); free(reff);
    }
    qv_vision_ctx_free(c);
    qv_pool_free(pool);
    qv_vision_free(v);
    qv_ckpt_free(ck);
    return test_done();
}
