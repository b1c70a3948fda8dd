/* cache.h — the persistent cache of qv (issue 11): a folder of entries, each one file holding a header
 * (format version, kind, the full key text, a description for `qv cache list`, small metadata) and a
 * payload (vision embeddings, or a KV-cache prefix), plus the content hashes the keys are made of.
 *
 *   qv_cache_params cp = qv_cache_default_params();
 *   cp.dir = "/home/me/.cache/qv";                        // qv_cache_default_dir() gives the XDG default
 *   qv_cache *c;  qv_cache_open(&c, &cp, &err);          // mkdir -p; an unusable folder is an error
 *   qv_cache_hit h;
 *   if (qv_cache_get(c, QV_CACHE_VISION, key_text, &h) == 1) { ...h.meta, h.data...; qv_cache_hit_free(&h); }
 *   else qv_cache_put(c, QV_CACHE_VISION, key_text, desc, meta, meta_len, data, len);
 *   qv_cache_free(c);
 *
 * Never a wrong answer: the file name is the XXH3-128 of the key text, and the header holds the whole key
 * text, compared on every read; the payload's zlib CRC-32 is checked on every read. A corrupt, truncated,
 * foreign-version or mismatching entry is reported through the warning callback once, deleted and
 * counted as a miss (the caller rebuilds it). Writes go to a temporary file in the folder (O_EXCL |
 * O_NOFOLLOW), fsync'd, then renamed over the entry: two processes writing one entry leave one whole entry
 * and a reader never sees a torn one. A write that fails (read-only folder, full disk, file-size limit)
 * gives one warning per cache object and the caller goes on uncached.
 *
 * Least-recently-used eviction: every hit sets the entry's mtime to now (atime is unreliable: noatime
 * mounts); after a put the folder is trimmed to max_bytes, oldest mtime first.
 *
 * Library code: nothing is printed; warnings go to params.warn (NULL: dropped). One qv_cache is used by one
 * thread at a time; several processes may share a folder. */
#ifndef QV_CACHE_H
#define QV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

#define QV_CACHE_FORMAT 1                       /* bumped whenever an entry's layout or meaning changes */
#define QV_CACHE_DEFAULT_MAX ((uint64_t)20 << 30) /* 20 GiB */

typedef enum { QV_CACHE_VISION = 0, QV_CACHE_KV = 1 } qv_cache_kind;

typedef struct {
    const char *dir;                            /* the folder (created when missing) */
    uint64_t max_bytes;                         /* size cap of all entries; 0 = QV_CACHE_DEFAULT_MAX */
    void (*warn)(void *user, const char *msg);  /* one line, no newline */
    void *warn_user;
} qv_cache_params;

qv_cache_params qv_cache_default_params(void);

/* $XDG_CACHE_HOME/qv, else $HOME/.cache/qv (malloc'd); NULL when neither variable is set. */
char *qv_cache_default_dir(void);

typedef struct qv_cache qv_cache;

qv_status qv_cache_open(qv_cache **out, const qv_cache_params *p, qv_err *err);
void qv_cache_free(qv_cache *c);                /* NULL-safe */
const char *qv_cache_dir(const qv_cache *c);
/* Reports through params.warn (printf form); used by the cache's users for cache-related warnings. */
void qv_cache_warn(qv_cache *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct {
    void *meta;                                 /* [meta_len] as put (malloc'd) */
    size_t meta_len;
    void *data;                                 /* [len] payload (malloc'd, 64-byte aligned) */
    uint64_t len;
} qv_cache_hit;

void qv_cache_hit_free(qv_cache_hit *h);        /* NULL-safe, zeroes *h */

/* 1 = hit (*h filled, entry marked used), 0 = miss (also after a bad entry: warned and deleted), never
 * an error: a cache that cannot be read is a miss. max_len: refuse payloads above it (0 = no limit). */
int qv_cache_get(qv_cache *c, qv_cache_kind kind, const char *key, uint64_t max_len, qv_cache_hit *h);
/* Like get, but only the header is read and checked: h->meta and h->len (payload size) are set, h->data is
 * NULL. The payload's CRC is checked when it is read (qv_cache_get). */
int qv_cache_peek(qv_cache *c, qv_cache_kind kind, const char *key, qv_cache_hit *h);
/* Streams: get hands the payload (exactly len bytes, else a miss) to consume in blocks in order and checks
 * the CRC after the last one: 1 = every block consumed and the CRC good; 0 = a miss, a bad entry (warned,
 * deleted) or consume returned nonzero — then whatever consume did with the blocks must be undone. put
 * asks fill for the payload block by block (nonzero = abandon the entry, no warning). Memory: one 32 MiB
 * block, whatever the payload (a KV prefix of the 7B: 2.5 GiB for 46k tokens). */
int qv_cache_get_stream(qv_cache *c, qv_cache_kind kind, const char *key, uint64_t len,
                        int (*consume)(void *user, const void *buf, uint64_t off, uint64_t len), void *user);
int qv_cache_put_stream(qv_cache *c, qv_cache_kind kind, const char *key, const char *desc, const void *meta,
                        size_t meta_len, uint64_t len, int (*fill)(void *user, void *buf, uint64_t off, uint64_t len),
                        void *user);
/* 1 when an entry for key exists (header and key checked, payload not read). */
int qv_cache_has(qv_cache *c, qv_cache_kind kind, const char *key);

/* Stores an entry (replacing any). desc: one line for `qv cache list` (media path, model, options).
 * The payload is given as n_parts pieces written one after the other (no copy). 0 on success, -1 on
 * failure (warned once per cache object; the caller goes on). compress: 1 = deflate the payload (zlib,
 * level 1) — only where it pays, see README. Trims the folder to max_bytes afterwards. */
typedef struct {
    const void *p;
    uint64_t len;
} qv_cache_part;
int qv_cache_put(qv_cache *c, qv_cache_kind kind, const char *key, const char *desc, const void *meta,
                 size_t meta_len, const qv_cache_part *parts, int n_parts, int compress);

/* ---- management (qv cache list|du|clear) ---- */

typedef struct {
    char *file;                                 /* entry file name (in the folder) */
    qv_cache_kind kind;
    char *desc;                                 /* as put */
    uint64_t bytes;                             /* file size */
    int64_t last_use;                           /* seconds since the epoch (mtime) */
} qv_cache_entry;

/* All readable entries, most recently used first (*out malloc'd; free with qv_cache_entries_free). */
qv_status qv_cache_list(qv_cache *c, qv_cache_entry **out, int *n, qv_err *err);
void qv_cache_entries_free(qv_cache_entry *e, int n);
/* Deletes every entry (and stale temporary files); *n_deleted and *bytes may be NULL. */
qv_status qv_cache_clear(qv_cache *c, int *n_deleted, uint64_t *bytes, qv_err *err);
/* Deletes least recently used entries until the total is at most max_bytes; keep (a file name, may be
 * NULL) is never deleted. */
void qv_cache_trim(qv_cache *c, uint64_t max_bytes, const char *keep);

/* ---- content hashes (XXH3-128, hex: 32 characters + NUL) ---- */

typedef struct {
    char hex[33];
} qv_hash;

void qv_hash_bytes(const void *p, size_t n, qv_hash *out);
/* The bytes of a file, read in blocks. */
qv_status qv_hash_file(const char *path, qv_hash *out, qv_err *err);
/* A file's hash, remembered in c's folder keyed by (device, inode, size, mtime ns, ctime ns): model shards
 * are hashed once, not at every load. c may be NULL (no memo). */
qv_status qv_hash_file_memo(qv_cache *c, const char *path, qv_hash *out, qv_err *err);

#endif
