/* lm.h — the Qwen2 language model of Qwen2-VL: decoder with M-RoPE, KV cache, chunked prefill and
 * decoding (lm/qwen2.c), the M-RoPE position walk (lm/mrope.c, transformers' get_rope_index) and
 * sampling (lm/sample.c). spec/qwen2vl-reference.md sections 6-8.
 *
 *   qv_lm *m;  qv_lm_ctx *c;
 *   qv_lm_create(&m, ck, &err);                                  // weight table, bf16 used in place
 *   qv_lm_ctx_params cp = qv_lm_ctx_default_params();
 *   cp.n_ctx = prompt_len + max_new; cp.pool = pool; cp.prec = QV_PREC_FAST;
 *   qv_lm_ctx_create(&c, m, &cp, &err);                          // KV cache + scratch, nothing later
 *   int64_t *pos = malloc(3 * n * sizeof *pos), delta;           // whole-prompt positions, once
 *   qv_mrope_positions(ids, n, img_grids, n_img, vid_grids, n_vid, qv_lm_hparams(m), 2, pos, &delta, &err);
 *   qv_lm_prefill(c, ids, n, vision_embeds, n_vision_rows, pos, n, logits, NULL, NULL, &err);
 *   for (k = 0; ; k++) {                                         // decode
 *       int32_t id = qv_sample(s, logits, history, n_history);
 *       qv_lm_decode(c, id, n + k + delta, logits, &err);        // position prompt_len + k + rope_delta
 *   }
 *   qv_lm_ctx_free(c); qv_lm_free(m);                            // contexts before the model, model before ck
 *
 * Ownership: qv_lm borrows the checkpoint (tensors point into its mapping) and is read-only after
 * create: any number of contexts (threads) may share one. A context is used by one caller at a time;
 * it runs its work on the pool given in its params (not owned; NULL = calling thread only).
 *
 * Numeric paths (kernels.h): QV_PREC_REF keeps float32 activations and a float32 KV cache (matches the
 * float64 reference to ~1e-6; for tests and small models), QV_PREC_FAST rounds activations to bf16 in
 * the matrix products (taking outlier input columns out exactly, kernels.h) and keeps f32 keys and bf16
 * values in the KV cache (84 KiB per token on the 7B; bf16 keys flip attention on checkpoints with outlier
 * channels, lm/qwen2.c k_type). */
#ifndef QV_LM_H
#define QV_LM_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "kernels.h"
#include "quant.h"
#include "tensor.h"
#include "threads.h"

/* ---- model (weights table) ---- */

typedef struct qv_lm qv_lm;

/* Looks up every decoder tensor (released names), checks shapes against ck->cfg.text; borrows ck. */
qv_status qv_lm_create(qv_lm **out, const qv_ckpt *ck, qv_err *err);
void qv_lm_free(qv_lm *m);                                 /* NULL-safe */
/* The decoder's weight table (checkpoint.h: released names, shapes, in file order; per-layer rows
 * repeat n_layers times) and the dimensions its shapes index, for a text config. */
const qv_weight_def *qv_lm_weights(const qv_text_hparams *hp, int64_t dims[QV_WEIGHT_DIMS], int *n_rows);
const qv_text_hparams *qv_lm_hparams(const qv_lm *m);
/* Weight format of the big matrices (q, k, v, o, gate, up, down, lm_head; embeddings stay bf16):
 * QV_QUANT_Q8 makes 8-bit copies now (src/quant.h; threaded on pool; ~1.1 bytes per weight, one
 * allocation owned by the model and shared by its contexts) and drops the quantized tensors' bf16 pages
 * from memory (madvise DONTNEED on the read-only mapping); QV_QUANT_NONE (the state after create) goes
 * back to bf16. ~2x faster decode; results differ from the bf16 paths (~1e-2 relative). QV_QUANT_Q4: the
 * same with 4-bit copies (0.56 bytes per weight, ~3.5x faster decode, ~1e-1 relative). Call before
 * creating contexts. QV_ERR_UNSUPPORTED when a row length is not a multiple of 32. */
qv_status qv_lm_set_quant(qv_lm *m, qv_quant quant, qv_pool *pool, qv_err *err);
/* Stored quantized weights (pipeline/qstore.h keeps them in files): qv_lm_quant_blob gives the one blob
 * every quantized matrix lives in (qv_lm_quant_bytes of the format set; NULL for bf16), to be written out;
 * qv_lm_use_quant takes such a blob (64-byte aligned, e.g. a mapped file; the caller keeps it valid
 * while the model lives) instead of quantizing: QV_ERR_FORMAT when its length is not this model's
 * (qv_lm_quant_bytes: 0 when the format does not fit the model). */
size_t qv_lm_quant_bytes(const qv_lm *m, qv_quant quant);
const void *qv_lm_quant_blob(const qv_lm *m);
qv_status qv_lm_use_quant(qv_lm *m, qv_quant quant, const void *blob, size_t len, qv_err *err);

/* ---- context (KV cache + scratch) ---- */

typedef struct {
    int n_ctx;           /* tokens the KV cache holds: prompt + generation budget (required, > 0) */
    int chunk;           /* most tokens per forward pass; scratch memory scales with it, never with n_ctx
                            (default 256; 7B: ~55 MiB) */
    qv_precision prec;   /* QV_PREC_REF (default) or QV_PREC_FAST */
    qv_pool *pool;       /* threads for the whole forward pass; borrowed; NULL = caller only */
    qv_dtype kv_dtype;   /* QV_F32, QV_F16 (values; keys f32) or QV_BF16 (keys and values); QV_DTYPE_COUNT
                            (default) = F32 for REF, f32 keys + half values for FAST */
    int check_memory;    /* 1 (default): refuse (QV_ERR_NOMEM, numbers in the message) when the cache and
                            scratch would not fit in MemAvailable, or together with the decoder's weights
                            (which must stay resident) not in MemTotal */
} qv_lm_ctx_params;

qv_lm_ctx_params qv_lm_ctx_default_params(void);

typedef struct qv_lm_ctx qv_lm_ctx;

/* Bytes a context would allocate (KV cache + scratch) for these params; 0 on overflow/bad params. */
uint64_t qv_lm_ctx_bytes(const qv_lm *m, const qv_lm_ctx_params *p);
qv_status qv_lm_ctx_create(qv_lm_ctx **out, const qv_lm *m, const qv_lm_ctx_params *p, qv_err *err);
void qv_lm_ctx_free(qv_lm_ctx *c);                         /* NULL-safe */
void qv_lm_ctx_reset(qv_lm_ctx *c);                        /* empty the cache for a new prompt */
int qv_lm_n_past(const qv_lm_ctx *c);                      /* tokens in the cache */
int qv_lm_n_ctx(const qv_lm_ctx *c);

/* Appends n tokens to the cache (positions n_past .. n_past+n-1 of the sequence), in chunks of at most
 * params.chunk tokens; results do not depend on the chunk size.
 *   ids [n]: token i's input is the embedding row of ids[i], EXCEPT when embd != NULL and ids[i] is
 *            negative or the config's image/video pad id: then it is the next unused row of embd
 *            (rows taken in order: k-th such token gets row k). ids == NULL: every token is an embd row.
 *   embd [n_embd][D] float32 (vision embeddings in prompt order, images and videos as they occur);
 *            exactly n_embd rows must be taken, else QV_ERR_INVALID.
 *   pos  [3][pos_stride] int64 M-RoPE positions (rows t, h, w), token i at pos[r*pos_stride + i]
 *            (pass the slice of the whole-prompt positions starting at this call's first token).
 *   logits [vocab] (may be NULL): the logits of the LAST of the n tokens.
 *   dump (may be NULL): per chunk, "lm.layer.K" after decoder layer K and "lm.norm" after the final
 *            norm, [rows of this chunk][D]; consecutive calls' rows concatenate in token order.
 * Fails with QV_ERR_NOMEM (cache full) when n_past + n > n_ctx, leaving the cache unchanged.
 * = qv_lm_prefill_seq with the default options (no cut points, no callbacks). */
qv_status qv_lm_prefill(qv_lm_ctx *c, const int32_t *ids, int n, const float *embd, int n_embd,
                        const int64_t *pos, int64_t pos_stride, float *logits, qv_dump_fn dump,
                        void *dump_user, qv_err *err);

/* The prompt prefill of a run: this function alone decides where chunks end. */
typedef struct {
    int64_t start;           /* first token of ids/pos to run (default 0); the tokens before it are already in
                                the KV cache (a reused prefix: start == qv_lm_n_past(c) of a context that ran
                                them with the same cut points) */
    const int64_t *cuts;     /* [n_cuts] token indices where a chunk must end (any order; those outside
                                (start, n) are ignored). Chunks run from start in params.chunk tokens, each
                                also ending at the next cut, so a run with a cut at p and a later run with
                                start = p (prefix cached) compute the same chunks from p on. */
    int n_cuts;
    void (*on_progress)(void *user, int64_t done, int64_t total); /* after each chunk: done = its end index, total = n */
    int (*abort_cb)(void *user); /* polled before every chunk but the first; nonzero = stop with
                                QV_ERR_CANCELLED (the finished chunks stay in the cache) */
    void *user;
    qv_dump_fn dump;         /* as qv_lm_prefill's dump */
    void *dump_user;
    float *all_logits;       /* [n - start][vocab] or NULL: the logits of EVERY token run (row i = token
                                start + i; qv bench accuracy compares paths at every position). Costs a
                                lm_head product per row: for measurements, not for serving. */
} qv_lm_prefill_opts;

qv_lm_prefill_opts qv_lm_prefill_default_opts(void);  /* all zero */

/* Runs tokens [o->start, n) of a sequence into the cache, after the n_past tokens already there.
 *   ids [n], pos [3][pos_stride] (pos_stride >= n): the WHOLE sequence, indexed by token index; ids and embd
 *            rows as in qv_lm_prefill; embd [n_embd][D] holds the rows of the embedding tokens of
 *            [start, n) only, in order.
 *   logits [vocab] (may be NULL): of token n-1. o may be NULL (defaults).
 * Results (logits, cache) do not depend on the chunk size or the cut points beyond float rounding of the
 * fast path (within the chunk tests' tolerance); with the same cuts and chunk they are bit-identical. */
qv_status qv_lm_prefill_seq(qv_lm_ctx *c, const int32_t *ids, int64_t n, const float *embd, int64_t n_embd,
                            const int64_t *pos, int64_t pos_stride, const qv_lm_prefill_opts *o, float *logits,
                            qv_err *err);

/* One generated token: id at position pos on all three rows (prompt_len + k + rope_delta for the k-th
 * generated token); logits [vocab] of it. No allocation. */
qv_status qv_lm_decode(qv_lm_ctx *c, int32_t id, int64_t pos, float *logits, qv_err *err);

/* ---- KV prefix export/import (the persistent prefix cache, pipeline/cache.h) ----
 * Portable layout of n tokens: per layer, per KV head: K rows [n][head_dim], then V rows [n][head_dim], in
 * the cache's dtypes (K f32 unless kv_dtype is BF16; V qv_lm_kv_dtype: f32 on the reference path, IEEE half
 * on the fast one). An import followed
 * by a prefill of the rest computes exactly what one prefill cut at n computes. */
uint64_t qv_lm_kv_bytes(const qv_lm_ctx *c, int n);
qv_dtype qv_lm_kv_dtype(const qv_lm_ctx *c);
qv_status qv_lm_kv_export(const qv_lm_ctx *c, int n, void *out, qv_err *err);   /* n <= n_past */
qv_status qv_lm_kv_import(qv_lm_ctx *c, int n, const void *in, qv_err *err);    /* resets; n_past = n */
/* The same by byte ranges [off, off+len) of that layout (offsets multiples of the element size), for
 * streaming without a second copy: a write at off 0 resets the context, the write that ends the layout
 * sets n_past = n (qv_lm_ctx_reset abandons a partial import). */
qv_status qv_lm_kv_read(const qv_lm_ctx *c, int n, uint64_t off, uint64_t len, void *out, qv_err *err);
qv_status qv_lm_kv_write(qv_lm_ctx *c, int n, uint64_t off, uint64_t len, const void *in, qv_err *err);
/* Keeps the first n tokens (n < n_past; else nothing changes), as if only they had been prefilled. */
void qv_lm_ctx_truncate(qv_lm_ctx *c, int n);

/* Where a context's time went since create/reset (wall seconds, summed over calls). */
typedef struct {
    double linear_s;      /* matrix products (qv_linear), lm_head included */
    double attention_s;   /* rotary, cache stores, attention */
    double other_s;       /* embeddings, norms, SwiGLU, residual adds */
    int64_t tokens;       /* tokens run through the decoder */
} qv_lm_stats;
void qv_lm_ctx_stats(const qv_lm_ctx *c, qv_lm_stats *out);

/* ---- M-RoPE positions (transformers' Qwen2VLModel.get_rope_index) ---- */

/* ids [n]: the whole prompt with the vision pads expanded (each image/video span is t*(gh/m)*(gw/m)
 * consecutive image_token_id / video_token_id tokens, m = spatial_merge).
 * image_grids [n_images][3], video_grids [n_videos][3]: (t, gh, gw) in patches, in order of appearance
 * of their kind (like image_grid_thw / video_grid_thw).
 * Out: pos [3][n] (rows t, h, w) and *rope_delta = max_position + 1 - n.
 * QV_ERR_INVALID when spans and grids disagree (count, length, a span cut short). */
qv_status qv_mrope_positions(const int32_t *ids, int n, const int (*image_grids)[3], int n_images,
                             const int (*video_grids)[3], int n_videos, const qv_text_hparams *hp,
                             int spatial_merge, int64_t *pos, int64_t *rope_delta, qv_err *err);

/* ---- sampling (transformers' logits processors: repetition penalty, temperature, top-k, top-p) ---- */

typedef struct {
    int greedy;               /* 1: argmax after the repetition penalty (temperature/top-k/top-p unused) */
    float temperature;        /* >= 0; 1 = off; 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float repetition_penalty; /* 1 = off; HF: logit > 0 -> logit / p, else logit * p, over seen ids */
    uint64_t seed;            /* xoshiro256** seeded by splitmix64(seed): same seed, same draws */
} qv_sampler_params;

qv_sampler_params qv_sampler_default_params(void);           /* greedy, all filters off, seed 0 */
/* From generation_config.json: greedy unless do_sample; its temperature/top_k/top_p/penalty. */
qv_sampler_params qv_sampler_params_from_gen(const qv_gen_hparams *g);

typedef struct qv_sampler qv_sampler;

qv_status qv_sampler_create(qv_sampler **out, const qv_sampler_params *p, int vocab, qv_err *err);
void qv_sampler_free(qv_sampler *s);                          /* NULL-safe */
/* Picks the next id from logits [vocab] (not modified); history [n_history] = ids seen so far (prompt
 * and generated; for the repetition penalty; may be NULL). No allocation. */
int32_t qv_sample(qv_sampler *s, const float *logits, const int32_t *history, int n_history);

#endif
