/* alloc.c — the allocation seam (alloc.h): libc's allocator behind a counter and a one-shot fault. */
/* this file is compiled with the seam's header forced in too: the names here are libc's */
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef strdup
#undef strndup
#undef posix_memalign
#define _GNU_SOURCE
#include "alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t g_count;      /* allocations since the last arming */
static atomic_uint_fast64_t g_fail_at;    /* 0: off */

/* 1 when this allocation is the one to fail */
static int fault(void) {
    uint_fast64_t n = atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed) + 1;
    uint_fast64_t f = atomic_load_explicit(&g_fail_at, memory_order_relaxed);
    return f && n == f;
}

void *qv_malloc(size_t n) { return fault() ? NULL : malloc(n); }
void *qv_calloc(size_t n, size_t size) { return fault() ? NULL : calloc(n, size); }
void *qv_realloc(void *p, size_t n) { return fault() ? NULL : realloc(p, n); }
void qv_free(void *p) { free(p); }

char *qv_strdup(const char *s) { return fault() ? NULL : strdup(s); }
char *qv_strndup(const char *s, size_t n) { return fault() ? NULL : strndup(s, n); }

int qv_posix_memalign(void **out, size_t align, size_t n) {
    if (fault()) return ENOMEM;
    return posix_memalign(out, align, n);
}

static void *hook_malloc(size_t n) { return qv_malloc(n); }

void qv_alloc_fail_at(unsigned long long n) {
    static atomic_int hooked;
    if (!atomic_exchange(&hooked, 1)) {
        cJSON_Hooks h = {hook_malloc, qv_free};
        cJSON_InitHooks(&h);
    }
    atomic_store(&g_fail_at, 0);
    atomic_store(&g_count, 0);
    atomic_store(&g_fail_at, n);
}

unsigned long long qv_alloc_count(void) { return atomic_load(&g_count); }
