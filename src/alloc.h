/* alloc.h — the allocation seam of the library: every malloc, calloc, realloc, free, strdup, strndup and
 * posix_memalign in library code (src/ minus the CLI, tokenizer/, vision/, lm/, pipeline/) goes through
 * qv_malloc & co. The build makes that so without a call site to remember: each library target is
 * compiled with `-include alloc.h -DQV_ALLOC_SEAM` (CMakeLists.txt, qv_layer), which maps the standard
 * names onto these. Programs on top (CLI, tests) keep libc's.
 *
 * The seam is plain malloc underneath (memory from either side may be freed by the other), plus a
 * counter and a fault injector for tests:
 *   qv_alloc_fail_at(n)   the n-th allocation from now (n >= 1) returns NULL, once; 0 disarms
 *   qv_alloc_count()      allocations made since the last qv_alloc_fail_at (or the start)
 * cJSON's allocations are routed through the seam too (hooks installed on first arming). */
#ifndef QV_ALLOC_H
#define QV_ALLOC_H

/* No system header here: forced in before a file's own lines, this header must not fix the file's
 * feature-test macros (_GNU_SOURCE); the standard declarations that follow it are then read through
 * the macros below as (compatible) declarations of the qv_ functions. */
void *qv_malloc(__SIZE_TYPE__ n);
void *qv_calloc(__SIZE_TYPE__ n, __SIZE_TYPE__ size);
void *qv_realloc(void *p, __SIZE_TYPE__ n);
void qv_free(void *p);
char *qv_strdup(const char *s);
char *qv_strndup(const char *s, __SIZE_TYPE__ n);
int qv_posix_memalign(void **out, __SIZE_TYPE__ align, __SIZE_TYPE__ n);

void qv_alloc_fail_at(unsigned long long n);
unsigned long long qv_alloc_count(void);

#ifdef QV_ALLOC_SEAM
#define malloc(n) qv_malloc(n)
#define calloc(n, s) qv_calloc(n, s)
#define realloc(p, n) qv_realloc(p, n)
#define free(p) qv_free(p)
#define strdup(s) qv_strdup(s)
#define strndup(s, n) qv_strndup(s, n)
#define posix_memalign(o, a, n) qv_posix_memalign(o, a, n)
#endif

#endif
