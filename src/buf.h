/* buf.h — the core's one growable buffer: the doubling every grown array, string and arena of the
 * library uses (qv_grow), and an append-only NUL-terminated string on top of it (qv_buf).
 *
 *   qv_buf b = {0};
 *   qv_buf_put(&b, "abc", 3); qv_buf_puts(&b, "def");
 *   char *s = qv_buf_finish(&b);    // "abcdef", malloc'd; NULL if any put ran out of memory
 */
#ifndef QV_BUF_H
#define QV_BUF_H

#include <stddef.h>

/* Makes *p (of *cap bytes, NULL/0 at first) hold at least need bytes: the capacity doubles from 256
 * until it fits, the contents are kept. 1 on success; 0 when out of memory or need overflows, with *p
 * and *cap unchanged. */
int qv_grow(void **p, size_t *cap, size_t need);
/* The same for an array of elem-byte elements, *cap and need counted in elements. */
int qv_grow_n(void **p, size_t *cap, size_t need, size_t elem);

typedef struct {
    char *p;        /* NUL-terminated once anything was put */
    size_t n, cap;  /* bytes used (without the NUL), allocated */
    int oom;        /* a put ran out of memory: every later put is a no-op */
} qv_buf;

int qv_buf_put(qv_buf *b, const void *s, size_t n);   /* 0 when out of memory (then b->oom) */
int qv_buf_puts(qv_buf *b, const char *s);
/* The string ("" when nothing was put), handed to the caller; NULL (and the buffer freed) after an
 * out-of-memory put. b is reset either way. */
char *qv_buf_finish(qv_buf *b);

#endif
