/* cost.c — the cost of a run before it starts (see cost.h). */
#include "cost.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "tensor.h"

/* Efficiency of the whole stages against the kernel rates measured below. First fitted on full runs of
 * the realdims model (the 7B's shapes with 2+2 layers), where the patch embedding, merger and norms
 * around only two vision blocks weigh far more than in the 7B's 32: vision read ~0.5 of the qv_linear
 * rate there. Refitted on the 7B itself (a 10 s clip at 1200 and 2990 visual tokens, and the 16-frame
 * 448x448 bench clip): vision runs at 0.75-0.93 of the rate on a 2-core Zen 4 (AVX-512 BF16) and
 * ~0.6 on a 2-core Zen 3 (AVX2, the README's numbers), prefill at ~0.93 and ~0.8, decode at ~0.9 of the
 * m = 1 bandwidth: the factors sit between the two machines, so both stay well within 1.5x. */
#define QV_COST_VIS_EFF   0.75
#define QV_COST_PRE_EFF   0.85
#define QV_COST_GEN_EFF   0.90
/* Attention against the attention tile's own sgemm rate (it was the GEMM rate x 0.75 until stop 23, which
 * on a 2-core Zen 4 read ~1.7x the attention actually measured at a 46k context: the 12-bit GEMM runs at
 * ~1.5x the f32 sgemm there); fitted on the 7B's prefill at --context 46080 (attention ~145-155 GFLOP/s
 * including the softmax, against ~200 for the bare tiles). Decode's KV cache reads (3.9 GB per token at
 * 46k) run at about half the weights' bandwidth (7 query rows per KV head: more arithmetic per byte). */
#define QV_COST_ATTN_EFF  0.75
#define QV_COST_KV_EFF    0.50
/* media front end: seconds per second of 1280x720 video decoded, resized and patchified (2 cores) */
#define QV_COST_MEDIA_S_PER_720P_S 0.09

/* The best time of at least reps calls, going on (up to 64 calls) until 0.25 s is spent: the first calls
 * pay for waking the cores and the pool and growing scratch, and a core shared for a moment slows one
 * call; over 4 calls alone the 7B's GEMM rate read 205-335 GFLOP/s from run to run on one quiet machine. */
static double time_linear(qv_pool *pool, qv_precision prec, float *Y, const float *X, const uint16_t *W, int m, int n,
                          int k, int reps) {
    double best = 1e30, t_start = qv_now();
    for (int r = 0; r < 64 && (r < reps || qv_now() - t_start < 0.25); r++) {
        double t = qv_now();
        qv_linear(pool, prec, Y, n, X, W, NULL, m, n, k);
        t = qv_now() - t;
        if (t < best) best = t;
    }
    return best > 1e-9 ? best : 1e-9;
}

/* the f32 product of one attention tile as lm/qwen2.c runs it (R query rows x 256 keys x hd), on this
 * thread: GFLOP/s of the best call over a tenth of a second (0 without memory) */
static double attn_tile_gflops(int R, int hd) {
    float *A = malloc(sizeof(float) * (size_t)R * hd), *B = malloc(sizeof(float) * 256 * (size_t)hd);
    float *C = malloc(sizeof(float) * (size_t)R * 256);
    double best = 1e30;
    if (A && B && C) {
        for (size_t i = 0; i < (size_t)R * hd; i++) A[i] = (float)(i % 97) / 97.0f - 0.5f;
        for (size_t i = 0; i < (size_t)256 * hd; i++) B[i] = (float)(i % 89) / 89.0f - 0.5f;
        double t_start = qv_now();
        for (int r = 0; r < 256 && (r < 3 || qv_now() - t_start < 0.1); r++) {
            double t = qv_now();
            qv_sgemm(0, 1, R, 256, hd, 1.0f, A, hd, B, hd, 0.0f, C, 256);
            t = qv_now() - t;
            if (t < best) best = t;
        }
    }
    free(A);
    free(B);
    free(C);
    return best < 1e29 && best > 1e-9 ? 2.0 * R * 256.0 * hd / best / 1e9 : 0.0;
}

void qv_cost_measure(qv_pool *pool, qv_precision prec, const qv_model_config *mc, qv_cpu_speed *out) {
    double t0 = qv_now();
    memset(out, 0, sizeof *out);
    out->n_threads = qv_pool_size(pool);
    int H = mc->text.hidden, E = mc->vision.embed_dim, m = 256;
    /* decode: a weight block of at least 64 MB (beyond the caches), rows of the LM's hidden size */
    size_t k_dec = (size_t)H;
    size_t n_dec = ((size_t)64 << 20) / 2 / k_dec;
    size_t nw = n_dec * k_dec;
    if (nw < (size_t)H * H) nw = (size_t)H * H;
    if (nw < (size_t)3 * E * E) nw = (size_t)3 * E * E;
    size_t kx = (size_t)(H > E ? H : E);
    size_t ny = (size_t)m * (size_t)(H > 3 * E ? H : 3 * E);
    if (ny < n_dec) ny = n_dec;
    uint16_t *W = malloc(nw * sizeof *W);
    float *X = malloc((size_t)m * kx * sizeof *X), *Y = malloc(ny * sizeof *Y);
    if (!W || !X || !Y) { /* no memory for the measurement: typical rates of 2 recent cores */
        out->gemm_gflops = 150, out->vis_gflops = 150, out->gemv_gbps = 15;
    } else {
        uint32_t x = 12345;
        for (size_t i = 0; i < nw; i++) {
            x = x * 1664525u + 1013904223u;
            W[i] = qv_f32_to_bf16(((float)(x >> 9) / 8388608.0f - 1.0f) * 0.05f);
        }
        for (size_t i = 0; i < (size_t)m * kx; i++) X[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        double s = time_linear(pool, prec, Y, X, W, m, H, H, 4);
        out->gemm_gflops = 2.0 * m * H * H / s / 1e9;
        s = time_linear(pool, prec, Y, X, W, m, 3 * E, E, 4);
        out->vis_gflops = 2.0 * m * 3.0 * E * E / s / 1e9;
        s = time_linear(pool, prec, Y, X, W, 1, (int)n_dec, (int)k_dec, 3);
        out->gemv_gbps = 2.0 * (double)n_dec * k_dec / s / 1e9;
    }
    free(W);
    free(X);
    free(Y);
    const qv_text_hparams *tp = &mc->text;
    int rep = tp->n_kv_heads > 0 && tp->n_heads >= tp->n_kv_heads ? tp->n_heads / tp->n_kv_heads : 1;
    int hd = tp->head_dim > 0 ? tp->head_dim : 128;
    out->attn_gflops = attn_tile_gflops(64 * rep, hd) * out->n_threads;
    out->seconds = qv_now() - t0;
}

void qv_cost_add_vision(qv_cost *c, const qv_model_config *mc, int t, int gh, int gw, int n_frames, double video_s,
                        int src_w, int src_h) {
    const qv_vision_hparams *v = &mc->vision;
    double E = v->embed_dim, M = v->mlp_dim, D = v->out_hidden, L = v->depth;
    double P = (double)gh * gw; /* patches of one temporal pair: attention stays within it */
    double rows = P * t;
    double patch_dim = (double)v->in_chans * v->temporal_patch_size * v->patch_size * v->patch_size;
    double lin = rows * (2 * patch_dim * E + L * (2 * E * 3 * E + 2 * E * E + 2 * 2 * E * M)) +
                 rows / 4 * (2 * (4 * E) * (4 * E) + 2 * (4 * E) * D);
    c->flops_vis_linear += lin;
    c->flops_vis_attn += L * t * 4.0 * P * P * E;
    c->n_frames += n_frames;
    c->n_patches += (int64_t)rows;
    c->n_vision_tokens += (int64_t)rows / 4;
    c->n_pairs += t;
    c->width = gw * v->patch_size;
    c->height = gh * v->patch_size;
    c->video_s += video_s;
    if (video_s > 0) c->src_pixels = (double)src_w * src_h;
}

void qv_cost_add_run(qv_cost *c, const qv_model_config *mc, int64_t n_vis_run, int64_t n_text, int max_gen) {
    const qv_text_hparams *p = &mc->text;
    double H = p->hidden, F = p->ffn, L = p->n_layers, kv = (double)p->n_kv_heads * p->head_dim;
    double layer = H * H * 2 + H * kv * 2 + 3 * H * F; /* q, o, k, v, gate/up/down */
    double N = (double)(n_vis_run + n_text);
    c->flops_pre_linear += N * L * 2 * layer + 2 * H * p->vocab;
    c->flops_pre_attn += L * 2.0 * H * N * N; /* causal: QK^T and AV over N/2 keys on average */
    double g = max_gen > 0 ? max_gen : 0;
    /* each token: every layer's weights, the output head, and the KV cache so far */
    c->params_gen += g * (L * layer + H * p->vocab);
    c->bytes_kv += g * L * kv * (4 + 2) * (N + g / 2); /* f32 K and half V rows */
    c->n_prompt += (int64_t)N;
    c->n_gen += (int64_t)g;
    c->n_runs++;
}

void qv_cost_time(qv_cost *c, const qv_model_config *mc, const qv_cpu_speed *sp, int weight_bytes) {
    (void)mc;
    double vis = sp->vis_gflops * 1e9 * QV_COST_VIS_EFF, pre = sp->gemm_gflops * 1e9 * QV_COST_PRE_EFF;
    double attn = (sp->attn_gflops > 0 ? sp->attn_gflops : sp->gemm_gflops * 0.5) * 1e9 * QV_COST_ATTN_EFF;
    double bw = sp->gemv_gbps * 1e9 * QV_COST_GEN_EFF;
    if (!(vis > 0)) vis = 1e9;
    if (!(pre > 0)) pre = 1e9;
    if (!(attn > 0)) attn = 1e9;
    if (!(bw > 0)) bw = 1e9;
    c->s_vision = c->flops_vis_linear / vis + c->flops_vis_attn / attn;
    c->s_prefill = c->flops_pre_linear / pre + c->flops_pre_attn / attn;
    c->s_generate = c->params_gen * (weight_bytes > 0 ? weight_bytes : 2) / bw + c->bytes_kv / (bw * QV_COST_KV_EFF);
    double scale = c->src_pixels > 0 ? c->src_pixels / (1280.0 * 720.0) : 1.0;
    double threads = sp->n_threads > 0 ? sp->n_threads : 1;
    c->s_media = c->video_s * QV_COST_MEDIA_S_PER_720P_S * scale * 2.0 / threads;
    c->s_total = c->s_media + c->s_vision + c->s_prefill + c->s_generate;
}

qv_status qv_cost_video_grid(int64_t total_frames, double stream_fps, int src_w, int src_h, const qv_media_opts *mo,
                             double start_s, double end_s, int *t, int *gh, int *gw, int *n_frames, qv_err *err) {
    int64_t *idx = malloc(sizeof *idx * QV_MAX_SAMPLED);
    if (!idx) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    qv_sample_opts so = {mo->fps, mo->min_frames, mo->max_frames, start_s, end_s};
    int n = 0;
    qv_status st = qv_sample_frames(idx, &n, total_frames, stream_fps, &so, err);
    free(idx);
    if (st) return st;
    int64_t minp = mo->min_pixels > 0 ? mo->min_pixels : QV_VIDEO_MIN_PIXELS;
    int64_t tot = mo->total_pixels > 0 ? mo->total_pixels : QV_VIDEO_TOTAL_PIXELS;
    double maxp = qv_video_max_pixels(minp, mo->max_pixels, tot, n);
    int h = 0, w = 0;
    if ((st = qv_smart_resize(&h, &w, src_h, src_w, (double)minp, maxp, err))) return st;
    *n_frames = n;
    *t = (n + 1) / 2;
    *gh = h / 14;
    *gw = w / 14;
    return QV_OK;
}
