/* qstore.h — quantized language-model weights kept on disk beside the cache (issue 14), so that --q8 and
 * --q4 quantize a model once: later loads map the file instead of reading 15 GB of bf16 and rounding it.
 *
 * One file per model and format: <cache dir>/weights/<model fingerprint>.<q8|q4> (the fingerprint of
 * engine_cache.h: configs and shard contents). Layout: a 4096-byte header ("QVQW", header version, blob
 * length, key length, then the key text: store version, fingerprint, format, blob length), the blob of
 * qv_lm_quant_blob at offset 4096 (page aligned, mapped read-only). A file whose magic, version, key or
 * size does not match is reported (why), left alone and rebuilt over by the next write. Writes go to a
 * temporary file in the folder, fsync'd, renamed into place: a crash or a full disk never leaves a torn
 * file under the final name. The folder is not part of the cache's LRU trimming (`qv cache clear`
 * leaves it; `rm -r <cache dir>/weights` frees it). */
#ifndef QV_QSTORE_H
#define QV_QSTORE_H

#include <stddef.h>

#include "core.h"
#include "engine_cache.h"
#include "lm.h"
#include "quant.h"

/* bumped whenever the quantized formats or their rounding change: older files no longer match */
#define QV_QSTORE_VERSION 2

typedef struct {
    void *addr;    /* the whole file's mapping, or NULL */
    size_t len;
} qv_qmap;

/* <dir>/weights/<model_id>.<q8|q4> (malloc'd) */
char *qv_qstore_path(const char *dir, const char *model_id, qv_quant quant);

/* Gives lm its quant weights: mapped from the stored file of ec's cache folder (under ec's model
 * fingerprint) when there is a valid one, else quantized now on pool and written there; a failed write is
 * a warning (qv_log) and lm keeps the weights it made. ec NULL or without a folder: quantized only. *map
 * holds the mapping to release with qv_qstore_unmap after lm is freed; *how is "mapped", "made and
 * stored" or "made". Errors: those of qv_lm_set_quant. */
qv_status qv_qstore_apply(qv_lm *lm, qv_quant quant, qv_ec *ec, qv_pool *pool, qv_qmap *map, const char **how,
                          qv_err *err);

/* The writer and reader under qv_qstore_apply (tests): save writes blob under path (creating its
 * folder); map returns 1 with the blob's address when path holds a valid file for key of blob_len
 * bytes, else 0 with the reason in why ("" when the file does not exist). */
qv_status qv_qstore_save(const char *path, const char *key, const void *blob, size_t blob_len, qv_err *err);
int qv_qstore_map(const char *path, const char *key, size_t blob_len, qv_qmap *map, const void **blob, char *why,
                  size_t why_len);
void qv_qstore_unmap(qv_qmap *map);   /* NULL-safe, idempotent */

#endif
