/* safetensors.h — read checkpoints (one file or shards + model.safetensors.index.json) by mmap, and
 * write safetensors files (dumps, generated checkpoints).
 *
 *   qv_st *st; qv_err err;
 *   if (qv_st_open(&st, "models/tiny-qwen2vl", &err)) { ...err.msg... }
 *   const qv_tensor *w = qv_st_get(st, "model.norm.weight");   // NULL when absent
 *   qv_st_free(st);
 *
 * Every shard is mapped read-only; tensors point into the mappings (no copy). All header fields are
 * checked against the file: header length, offsets (exact 64-bit), dtype x shape, overlaps, duplicates.
 * Error messages name the file and the tensor. */
#ifndef QV_SAFETENSORS_H
#define QV_SAFETENSORS_H

#include "core.h"
#include "tensor.h"

typedef struct qv_st qv_st;

/* path: a directory (uses model.safetensors.index.json when present, else model.safetensors) or a
 * single .safetensors file. */
qv_status qv_st_open(qv_st **out, const char *path, qv_err *err);
void qv_st_free(qv_st *st);                          /* NULL-safe */

const qv_tensor *qv_st_get(const qv_st *st, const char *name);   /* NULL when absent */
int qv_st_count(const qv_st *st);
const qv_tensor *qv_st_at(const qv_st *st, int i);                /* 0 <= i < count, sorted by name */
int qv_st_n_shards(const qv_st *st);
const char *qv_st_shard_path(const qv_st *st, int i);
/* which shard a tensor lives in (index into shard paths) */
int qv_st_shard_of(const qv_st *st, const qv_tensor *t);
/* Asks the kernel to start reading every shard in the background (madvise WILLNEED), so that the
 * first pass over the weights does not wait on page faults one page at a time. For inference only:
 * `qv info` and tests should not pull 16 GB into the page cache. */
void qv_st_prefetch(const qv_st *st);
/* the __metadata__ value for key, or NULL */
const char *qv_st_meta(const qv_st *st, int shard, const char *key);

/* Writing: a whole file from in-memory tensors (dumps). Tensors are written in the given order,
 * data 8-byte aligned. metadata may be NULL or a NULL-terminated array of key, value strings. */
qv_status qv_st_write(const char *path, const qv_tensor *ts, int n, const char *const *metadata, qv_err *err);

/* Streaming writer for large files: declare every tensor first, then the header is written and data
 * is filled by offset (from several threads: pwrite is used). */
typedef struct qv_st_writer qv_st_writer;
qv_status qv_st_writer_create(qv_st_writer **out, const char *path, qv_err *err);
/* name is copied; returns the tensor's index */
int qv_st_writer_add(qv_st_writer *w, const char *name, qv_dtype dt, int ndim, const int64_t *shape);
/* writes the header, reserves the file; after this, data offsets are fixed */
qv_status qv_st_writer_begin(qv_st_writer *w, const char *const *metadata, qv_err *err);
/* writes bytes [off, off+len) of tensor i's data; thread-safe */
qv_status qv_st_writer_put(qv_st_writer *w, int i, uint64_t off, const void *data, uint64_t len, qv_err *err);
qv_status qv_st_writer_finish(qv_st_writer *w, qv_err *err);    /* fsync + close + free */
void qv_st_writer_abort(qv_st_writer *w);                         /* close, remove the file, free */
uint64_t qv_st_writer_file_size(const qv_st_writer *w);

#endif
