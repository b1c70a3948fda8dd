/* engine_cache.h — private to the engine (pipeline/engine.c): the keys of its two caches (issue 11).
 *
 *   vision entry: key = media content hash + every option that changes the frames + the model identity +
 *                 the numeric path; payload = the merger's output rows [n_tokens][D] float32; meta = grid
 *                 and frame facts (qv_ec_vmeta).
 *   KV entry:     key = the prompt's ids and M-RoPE positions up to the end of its last vision block, the
 *                 vision keys of its blocks, the model identity, numeric path, weight format and chunk
 *                 size; payload = that prefix's KV cache in qv_lm_kv_export's layout.
 *
 * The model identity hashes config.json, preprocessor_config.json and every weight shard's bytes (each
 * shard's hash remembered in the cache folder by device, inode, size, mtime and ctime: qv_hash_file_memo),
 * computed once per engine on first use. Without a cache folder the identity is this engine object's own
 * ("mem:<counter>"): the in-memory prefix then still works within the process. */
#ifndef QV_ENGINE_CACHE_H
#define QV_ENGINE_CACHE_H

#include <stdint.h>

#include "checkpoint.h"
#include "lm.h"
#include "cache.h"
#include "video.h"

typedef struct {
    int t, gh, gw, n_frames;
    double first_ms, last_ms, duration_s;
    int64_t n_tokens;
    int D;
} qv_ec_vmeta;

/* "t gh gw ..." text (NUL included in *len) and back; parse returns 0 on a malformed meta. */
void qv_ec_vmeta_write(const qv_ec_vmeta *m, char *buf, size_t cap);
int qv_ec_vmeta_parse(const void *meta, size_t len, qv_ec_vmeta *m);

/* The model identity into id (65 chars); c may be NULL (then a per-process identity). */
qv_status qv_ec_model_id(qv_cache *c, const qv_ckpt *ck, char id[72], qv_err *err);

/* Vision key text (malloc'd) for one input. NULL on OOM. */
char *qv_ec_vision_key(const char *model_id, int prec, const qv_hash *media, int is_video, const qv_media_opts *mo);

/* KV prefix key text (malloc'd): ids [P], pos [3][stride] rows sliced to P, vision key hashes of the blocks. */
char *qv_ec_kv_key(const char *model_id, int prec, int quant, int chunk, const int32_t *ids, const int64_t *pos,
                   int64_t stride, int64_t P, char *const *vision_keys, int n_vision);

/* ---- the engine's cache state: disk folder (optional), model identity, the in-memory prefix ---- */

typedef struct qv_ec qv_ec;

/* dir NULL: no folder. An unusable folder is one warning (qv_log) and no folder. NULL only on OOM. */
qv_ec *qv_ec_create(const qv_ckpt *ck, const char *dir, uint64_t max_bytes);
void qv_ec_free(qv_ec *ec);                                  /* NULL-safe */

/* The vision key of one input (hashes the file); NULL on a read error (err set) or OOM. */
char *qv_ec_vision_key_for(qv_ec *ec, const char *path, int is_video, const qv_media_opts *mo, int prec,
                           qv_err *err);
/* 1 = an entry exists: *m filled from its (checked) header, its sizes checked against D. */
int qv_ec_vision_peek(qv_ec *ec, const char *key, int D, qv_ec_vmeta *m);
/* 1 = hit: *rows ([m->n_tokens][D] float32, malloc'd) of the entry peeked with m. */
int qv_ec_vision_get(qv_ec *ec, const char *key, const qv_ec_vmeta *m, float **rows);
void qv_ec_vision_put(qv_ec *ec, const char *key, const char *path, const qv_ec_vmeta *m, const float *rows);

/* The end of the reusable prefix: just after the last vision block's <|vision_end|> (0 when the prompt has
 * no vision block, or when nothing follows the prefix). */
int64_t qv_ec_prefix_end(const int32_t *ids, int64_t n, int32_t image_pad, int32_t video_pad, int32_t vision_end);

/* The KV key of a prefix (model identity included); NULL on OOM. */
char *qv_ec_kv_key_for(qv_ec *ec, int prec, int quant, int chunk, const int32_t *ids, const int64_t *pos,
                       int64_t stride, int64_t P, char *const *vision_keys, int n_vision);
/* Disk, streamed (one 32 MiB block in memory): get = 1 when the prefix of P tokens was read into ctx (its
 * n_past = P), else 0 with ctx reset; put stores ctx's first P tokens. */
int qv_ec_kv_get(qv_ec *ec, const char *key, qv_lm_ctx *ctx, int64_t P);
int qv_ec_kv_has(qv_ec *ec, const char *key);
void qv_ec_kv_put(qv_ec *ec, const char *key, const char *desc, const qv_lm_ctx *ctx, int64_t P);
int qv_ec_has_disk(const qv_ec *ec);
/* The cache folder (NULL without one) and the model's fingerprint (computed now if needed; NULL without a
 * folder or when it cannot be computed): where stored quantized weights live (qstore.h). */
const char *qv_ec_disk_dir(const qv_ec *ec);
const char *qv_ec_fingerprint(qv_ec *ec);

/* The prefix the engine's KV cache holds now (key, tokens); set after a prefill reaches it, cleared
 * whenever the cache is reset. */
void qv_ec_mem_set(qv_ec *ec, const char *key, int64_t n);
int64_t qv_ec_mem_match(const qv_ec *ec, const char *key);   /* its length when key matches, else 0 */

#endif
