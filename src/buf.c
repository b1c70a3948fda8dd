/* buf.c — the growable buffer (buf.h). */
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int qv_grow_n(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return 0;
        nc *= 2;
    }
    if (elem && nc > SIZE_MAX / elem) return 0;
    void *q = realloc(*p, nc * elem);
    if (!q) return 0;
    *p = q;
    *cap = nc;
    return 1;
}

int qv_grow(void **p, size_t *cap, size_t need) { return qv_grow_n(p, cap, need, 1); }

int qv_buf_put(qv_buf *b, const void *s, size_t n) {
    if (b->oom) return 0;
    if (n > SIZE_MAX - b->n - 1 || !qv_grow((void **)&b->p, &b->cap, b->n + n + 1)) {
        b->oom = 1;
        return 0;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 1;
}

int qv_buf_puts(qv_buf *b, const char *s) { return qv_buf_put(b, s, strlen(s)); }

char *qv_buf_finish(qv_buf *b) {
    if (!b->oom && !b->p) qv_buf_put(b, "", 0);
    char *s = b->oom ? NULL : b->p;
    if (b->oom) free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
    return s;
}
