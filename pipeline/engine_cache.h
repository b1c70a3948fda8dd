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
#include "pipeline/cache.h"
#include "pipeline/video.h"

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

#endif
