/* engine.h — the public API of the whole qv engine: a model loaded once (checkpoint, tokenizer, vision
 * encoder, language model, threads), then any number of runs, each a prompt with videos/images -> tokens.
 *
 *   qv_engine_params ep = qv_engine_default_params();
 *   ep.model_dir = "/models/Qwen2-VL-7B";
 *   qv_engine *e; qv_err err = {0};
 *   if (qv_engine_create(&e, &ep, &err)) { fprintf(stderr, "qv: %s\n", err.msg); ... }
 *
 *   const char *videos[] = {"clip.mp4"};
 *   char *prompt;                                    // chat or base form, as the checkpoint wants
 *   qv_engine_build_prompt(e, videos, 1, NULL, 0, "What happens?", NULL, &prompt, &err);
 *   qv_media_opts mo = qv_media_default_opts();      // pipeline/video.h: fps, frames, pixels, start/end
 *   qv_gen_opts go = qv_engine_default_gen_opts(e);  // max_tokens, sampling, stop ids, callbacks
 *   go.on_text = print_piece; go.user = stdout;      // streamed as generated, complete UTF-8 only
 *   qv_result res = {0};
 *   if (qv_engine_run_raw(e, prompt, &mo, &go, &res, &err)) ...
 *   puts(res.text); qv_result_free(&res); free(prompt);
 *   qv_engine_free(e);
 *
 * The raw prompt is the whole prompt verbatim (special tokens included) with {{video:PATH}} / {{image:PATH}}
 * where a vision block goes; each marker stands for the WHOLE block <|vision_start|><|video_pad|>*N
 * <|vision_end|> (the prompt_raw form of the golden files). A run is five phases over one run struct
 * (pipeline/engine.c, one static function each, in this order):
 *   1. plan inputs       parse the markers; per input pick its producer of encoder input — the decoded
 *                        file (pipeline/video.h; opened and its frames chosen, nothing decoded yet) or the
 *                        --pixel-values file (pipeline/pixel_values.h) — and its grid;
 *   2. tokenize, place   prompt ids with the pads expanded, M-RoPE positions computed once for the whole
 *                        prompt; then the KV cache (prompt + max_tokens) is made, refused early when it
 *                        would not fit, holding the stored KV of the prompt's prefix up to its last vision
 *                        block when an earlier run left it (in this engine, or in params.cache_dir): then
 *                        phase 3 is skipped and phase 4 starts after the prefix;
 *   3. encode vision     per input (images first, then videos, each in prompt order — the reference's
 *                        order) its rows come from the vision cache (params.cache_dir; keyed by the file's
 *                        content, the frame options, the model and the numeric path), or its producer
 *                        streams pairs through one qv_pair_fn into the encoder, which
 *                        writes the input's rows of the embeddings (memory: one pair of frames; the
 *                        embeddings of the whole prompt stay float32 until prefilled: 46k tokens of the
 *                        7B, 660 MB);
 *   4. prefill           lm/ (qv_lm_prefill_seq) runs the prompt from a start position (0, or the length
 *                        of a prefix already in the KV cache) in chunks it cuts itself (params.chunk, and
 *                        a cut at the end of the reusable prefix in every run, so that cached and uncached
 *                        runs compute the same chunks and give bit-identical results);
 *   5. generate          sample, stream text, decode, until a stop id, max_tokens or the abort callback.
 *
 * Threads: an engine runs one call at a time (it owns the KV cache and scratch); use one engine per
 * thread, or serialize. Nothing is read from process globals: cancellation is go->abort_cb (polled
 * between frames, pairs, chunks and tokens); a cancelled run returns QV_ERR_CANCELLED with what it
 * produced so far in *res. Progress goes to go->on_progress, text to go->on_text, warnings to the core
 * logger (qv_log_set); the engine never writes to the terminal. */
#ifndef QV_ENGINE_H
#define QV_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "config.h"
#include "kernels.h"
#include "tensor.h"
#include "lm.h"
#include "video.h"
#include "tokenizer.h"

typedef struct qv_engine qv_engine;

typedef struct {
    const char *model_dir;   /* Hugging Face Qwen2-VL folder (config.json, *.safetensors, tokenizer) */
    int n_threads;           /* 0 = all online CPUs */
    qv_precision prec;       /* QV_PREC_FAST (default) or QV_PREC_REF (float32 activations; tests) */
    int chunk;               /* prefill chunk in tokens (default 256); REF results do not depend on it */
    int n_ctx_max;           /* refuse prompts + max_tokens above this (0 = only memory limits) */
    int chat;                /* prompt form of qv_engine_build_prompt: -1 (default) = from the checkpoint's
                                chat template (<|im_start|> -> chat), 0 = base form, 1 = chat form */
    int check_memory;        /* 1 (default): refuse a KV cache that would not fit in MemAvailable */
    qv_quant quant;          /* QV_QUANT_NONE (default): bf16 weights; QV_QUANT_Q8: 8-bit language-model
                                weights made at load (qv_lm_set_quant): ~2x faster decode, answers may
                                differ from the reference */
    const char *cache_dir;   /* persistent cache folder (pipeline/cache.h): vision embeddings and KV prefixes
                                of earlier runs are reused from it; NULL (default) = none (the last prompt's
                                prefix is still reused within this engine). An unusable folder is one
                                warning (qv_log) and runs go on uncached */
    uint64_t cache_max;      /* its size cap in bytes, least recently used entries evicted (0 = 20 GiB) */
} qv_engine_params;

qv_engine_params qv_engine_default_params(void);

/* Loads the checkpoint (mmap), tokenizer, vision and language-model weight tables and the thread pool
 * once. Errors name the file (missing model folder, bad config, missing tensor ...). */
qv_status qv_engine_create(qv_engine **out, const qv_engine_params *p, qv_err *err);
void qv_engine_free(qv_engine *e);                            /* NULL-safe */

const qv_model_config *qv_engine_config(const qv_engine *e);   /* hyper-parameters, generation config */
const qv_tokenizer *qv_engine_tokenizer(const qv_engine *e);
int qv_engine_is_chat(const qv_engine *e);                     /* the form build_prompt uses */
qv_pool *qv_engine_pool(const qv_engine *e);                   /* its threads (for the media front end) */
double qv_engine_load_seconds(const qv_engine *e);

/* ---- one run ---------------------------------------------------------------------------------------- */

typedef struct {
    int max_tokens;          /* tokens to generate at most (default 256; 0 = prefill only, no generation) */
    qv_sampler_params sampling;  /* default: the checkpoint's generation_config (greedy unless do_sample) */
    int use_stop;            /* 1 (default): stop at a stop id (not included in text, kept in gen_ids);
                                0: generate exactly max_tokens (tests) */
    int32_t stop_ids[16];    /* n_stop = 0: the defaults, generation_config eos ids + <|endoftext|>, plus
                                <|im_end|> when the prompt holds <|im_start|> */
    int n_stop;

    /* streaming: text pieces as generated (complete UTF-8 only, special tokens skipped) */
    void (*on_text)(void *user, const char *piece, size_t len);
    /* progress: stage "load" | "video" (pairs decoded+encoded, per input) | "image" | "prefill" (tokens)
     * | "generate" (tokens; total = max_tokens); done == total on the last call of a stage */
    void (*on_progress)(void *user, const char *stage, long done, long total);
    int (*abort_cb)(void *user); /* polled between frames, pairs, chunks and tokens with go->user; nonzero = stop, the run returns QV_ERR_CANCELLED with what it produced */
    void *user;

    const char *media_root;  /* relative {{video:PATH}} / {{image:PATH}} are resolved against this folder
                                (NULL = the current directory) */
    const char *pixel_values_path; /* non-NULL: take the encoder input from this safetensors file
                                (pixel_values + image_grid_thw, pixel_values_videos + video_grid_thw, as in
                                the golden case files) instead of decoding the media: the k-th image
                                marker gets the k-th image grid's rows, the same for videos */

    /* dumps (tests, --dump): f32 matrices named as the golden files: "pixel_values",
     * "pixel_values_videos", "vision_embeds" (images before videos), "lm.norm" (all prompt rows),
     * "logits_last" ([1][vocab]); with dump_layers also "vision.patch_embed", "vision.block.K",
     * "lm.layer.K". Repeated names continue the previous rows (see qv_dumper below). */
    qv_dump_fn dump;
    void *dump_user;
    int dump_layers;
    /* A run with dump set reads nothing from the caches (every tensor is computed and dumped). */

    float *logits_last;      /* non-NULL: [vocab] receives the logits of the last prompt token */
} qv_gen_opts;

/* Defaults for this engine (e may be NULL: greedy, built-in stop ids). */
qv_gen_opts qv_engine_default_gen_opts(const qv_engine *e);

/* One vision input of the prompt, as used. */
typedef struct {
    int is_video;            /* 1 video, 0 image */
    char *path;              /* as resolved (owned) */
    int t, gh, gw;           /* grid in patches (t = temporal pairs) */
    int64_t n_tokens;        /* t*gh*gw/4 placeholder tokens */
    int64_t pad_offset;      /* index in prompt_ids of its first pad token */
    int n_frames;            /* sampled frames (0 when from --pixel-values) */
    double first_ms, last_ms;/* pts of the first and last sampled frame, ms (0 for images) */
    double duration_s;       /* of the whole file (0 for images) */
} qv_result_vision;

typedef struct {
    int32_t *prompt_ids;     /* [n_prompt], vision pads expanded (== golden input_ids) */
    int64_t n_prompt;
    int64_t *position_ids;   /* [3][n_prompt] M-RoPE rows t, h, w */
    int64_t rope_delta;
    int32_t *gen_ids;        /* [n_gen] generated ids (a final stop id included) */
    int n_gen;
    char *text;              /* generated text, UTF-8, special tokens skipped */
    int stopped;             /* 1: ended at a stop id, 0: reached max_tokens (or cancelled) */
    qv_result_vision *vision;/* [n_vision] in prompt order */
    int n_vision;
    int64_t n_vision_tokens;
    double t_decode_media;   /* seconds in the media front end (decode, resize, patchify) */
    double t_vision;         /* seconds in the vision encoder */
    double t_prefill;        /* seconds of prefill (n_prompt tokens) */
    double t_generate;       /* seconds of generation (n_gen tokens) */
    int n_vision_cached;     /* vision inputs whose embeddings came from the cache (not decoded, not encoded) */
    int64_t n_prefix_reused; /* prompt tokens whose KV came from a stored prefix (not prefilled) */
    int prefix_from_disk;    /* 1 when that prefix was read from the cache folder, 0 from memory */
} qv_result;

void qv_result_free(qv_result *r);                            /* frees the arrays, zeroes *r; NULL-safe */

/* Runs one prompt (see the top of this file). mo may be NULL (reference defaults); go may be NULL
 * (qv_engine_default_gen_opts). *res is filled (also partly on failure/cancel: free it either way). */
qv_status qv_engine_run_raw(qv_engine *e, const char *prompt_raw, const qv_media_opts *mo, const qv_gen_opts *go,
                            qv_result *res, qv_err *err);

/* The raw prompt for media + a question, in the form the checkpoint wants (params.chat):
 *   chat: "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + the vision blocks
 *         (images, then videos) + question + "<|im_end|>\n<|im_start|>assistant\n"
 *   base: the vision blocks, then the question in framing (default "Question: {question} Answer:").
 * framing: "{question}" is replaced by the question; NULL = default (chat: the question alone).
 * *prompt_raw_out malloc'd. Empty question: QV_ERR_INVALID. */
qv_status qv_engine_build_prompt(const qv_engine *e, const char *const *videos, int n_videos,
                                 const char *const *images, int n_images, const char *question,
                                 const char *framing, char **prompt_raw_out, qv_err *err);

/* ---- dumps ---------------------------------------------------------------------------------------- */

/* Collects dumped matrices (consecutive calls with the same name append rows) and writes them with the
 * run's grids (I64 [n,3] image_grid_thw / video_grid_thw) and position_ids (I64 [3, seq]) as one
 * safetensors file with the golden files' names and layouts (logits_last as [vocab]).
 *   qv_dumper *d = qv_dumper_create();  go.dump = qv_dumper_fn; go.dump_user = d;
 *   qv_engine_run_raw(...);  qv_dumper_write(d, "out.safetensors", &res, &err);  qv_dumper_free(d); */
typedef struct qv_dumper qv_dumper;
qv_dumper *qv_dumper_create(void);                            /* NULL on OOM */
void qv_dumper_fn(void *dumper, const char *name, const float *data, int64_t rows, int64_t cols);
int qv_dumper_failed(const qv_dumper *d);                     /* 1 when an append ran out of memory */
qv_status qv_dumper_write(const qv_dumper *d, const char *path, const qv_result *res, qv_err *err);
void qv_dumper_free(qv_dumper *d);                            /* NULL-safe */

#endif
