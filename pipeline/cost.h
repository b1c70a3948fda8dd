/* cost.h — what a run will cost before it starts: frames, resolution and visual tokens of each input
 * (from the stream's frame count and size, no frame decoded), and an estimate of the time on this machine
 * from the model's FLOPs and bytes and a short measurement of this CPU's kernels (~0.3 s).
 *
 *   qv_cpu_speed sp; qv_cost_measure(pool, QV_PREC_FAST, &mc, &sp);        // once per process
 *   qv_cost c = {0};
 *   qv_cost_add_vision(&c, &mc, t, gh, gw, n_frames);                       // per video/image (or window)
 *   qv_cost_add_run(&c, &mc, n_text_tokens, max_tokens, 0);                 // per engine run
 *   qv_cost_time(&c, &mc, &sp, 0);   -> c.s_total, c.s_vision, c.s_prefill, c.s_generate
 *
 * The model of the time (README "The cost, up front"): vision = linear FLOPs (patch embedding, blocks,
 * merger) / the vision GEMM rate + attention FLOPs (within a temporal pair) / the attention rate;
 * prefill = linear FLOPs / the prefill GEMM rate + causal attention FLOPs; each generated token reads the
 * language model's weights once (bytes / the decode bandwidth) plus its KV cache (f32 keys, half
 * values). The rates are measured here with qv_linear (and qv_sgemm for the attention tiles) on this
 * model's own shapes (synthetic weights) and scaled by efficiency factors
 * fitted on the development machine against full runs (QV_COST_* below). Media decoding is estimated
 * from the seconds of video decoded and their size. */
#ifndef QV_COST_H
#define QV_COST_H

#include <stdint.h>

#include "config.h"
#include "kernels.h"
#include "threads.h"
#include "video.h"

typedef struct {
    double gemm_gflops;      /* qv_linear, m = 256 rows of the LM's hidden x hidden, all threads */
    double vis_gflops;       /* qv_linear at the vision block's shapes (m = 256, E -> 3E) */
    double gemv_gbps;        /* bf16 weight bytes per second at m = 1 (decode), all threads */
    double attn_gflops;      /* f32 sgemm of one attention tile (64 queries x H/KV heads against 256 keys),
                                per thread x threads (the tiles are independent tasks) */
    int n_threads;
    double seconds;          /* how long the measurement took */
} qv_cpu_speed;

/* Measures the rates above (about 0.3 s on the 7B's shapes; less on small models). */
void qv_cost_measure(qv_pool *pool, qv_precision prec, const qv_model_config *mc, qv_cpu_speed *out);

typedef struct {
    /* counts */
    int64_t n_frames;        /* sampled frames over all vision inputs */
    int64_t n_patches;       /* encoder rows (t*gh*gw summed) */
    int64_t n_vision_tokens; /* placeholder tokens (patches / 4) */
    int64_t n_pairs;         /* temporal pairs (an image counts one): the units of the "video" progress */
    int64_t n_prompt;        /* prompt tokens over all runs (vision included) */
    int64_t n_gen;           /* tokens generated at most over all runs */
    int n_runs;
    int width, height;       /* resized frame size of the last vision input added */
    double video_s;          /* seconds of video decoded (span of each input) */
    double src_pixels;       /* source frame size of the last video input */
    /* work */
    double flops_vis_linear, flops_vis_attn, flops_pre_linear, flops_pre_attn;
    double params_gen;       /* weights read by generation (parameters, all tokens) */
    double bytes_kv;         /* KV cache bytes read by generation */
    /* times (qv_cost_time) */
    double s_media, s_vision, s_prefill, s_generate, s_total;
} qv_cost;

/* One vision input (a video or window: t temporal pairs of gh x gw patches; an image: t = 1). video_s:
 * seconds of video decoded for it (0 for an image), src_w x src_h its decoded size. */
void qv_cost_add_vision(qv_cost *c, const qv_model_config *mc, int t, int gh, int gw, int n_frames, double video_s,
                        int src_w, int src_h);
/* One engine run: n_text text tokens of prompt beside the vision tokens added since the previous run,
 * max_gen tokens generated at most; n_vis_run: the vision tokens of this run. */
void qv_cost_add_run(qv_cost *c, const qv_model_config *mc, int64_t n_vis_run, int64_t n_text, int max_gen);
/* Fills the times from the work and the measured rates; weight_bytes: 2 (bf16) or 1 (--q8). */
void qv_cost_time(qv_cost *c, const qv_model_config *mc, const qv_cpu_speed *sp, int weight_bytes);

/* The grid a video (or window [start_s, end_s] of it) gets with options mo, from its frame count, rate and
 * size as qv_media_open reports them: the same arithmetic as pipeline/video.c (pipeline/sampler.h).
 * QV_OK with *t, *gh, *gw, *n_frames; an error when the span holds no frame. */
qv_status qv_cost_video_grid(int64_t total_frames, double stream_fps, int src_w, int src_h, const qv_media_opts *mo,
                             double start_s, double end_s, int *t, int *gh, int *gw, int *n_frames, qv_err *err);

#endif
