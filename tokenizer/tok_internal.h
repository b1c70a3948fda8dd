/* tok_internal.h — the tokenizer's private data, shared by tokenizer.c (loading), tok_encode.c (NFC,
 * pre-tokenizer, BPE) and tok_decode.c (ids -> UTF-8, streaming). Not a public header: only tokenizer/
 * and its own tests include it. */
#ifndef QV_TOK_INTERNAL_H
#define QV_TOK_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

#define TOK_MAX_IDS (1 << 22)     /* ids must lie in [0, TOK_MAX_IDS) */
#define TOK_NO_RANK UINT32_MAX

typedef struct {
    uint32_t str_off, str_len;    /* the token as written (byte-level form), NUL-terminated in t->strs */
    uint32_t raw_off, raw_len;    /* the bytes it decodes to, in t->raw */
    uint8_t present, special, added;
} tok_entry;

typedef struct {
    uint64_t key;                 /* (uint64)left << 32 | right; UINT64_MAX = empty slot */
    uint32_t rank;
    int32_t id;                   /* the merged token */
} tok_merge;

typedef struct {
    uint32_t tag;                 /* high bits of the hash, to skip most wrong slots without a compare */
    int32_t id;
    uint32_t raw_off, raw_len;    /* copies of the entry's, so a probe touches one cache line */
} tok_vslot;

typedef struct {
    uint32_t str_off, len;        /* content, in t->strs */
    int32_t id;
} tok_added;

/* Word cache (a direct-mapped table of short pre-tokens and their ids), behind a trylock. */
#define TOK_CACHE_BITS 15
#define TOK_CACHE_KEY 27
#define TOK_CACHE_IDS 8
typedef struct {
    uint32_t hash;
    uint8_t klen, nids;           /* klen 0 = empty */
    uint8_t key[TOK_CACHE_KEY];
    int32_t ids[TOK_CACHE_IDS];
} tok_cache_ent;

struct qv_tokenizer {
    int32_t n_ids;                /* largest id + 1 */
    tok_entry *ent;               /* [n_ids] */
    char *strs;                   /* token strings arena */
    size_t strs_len, strs_cap;
    uint8_t *raw;                 /* decoded bytes arena */
    size_t raw_len, raw_cap;

    tok_vslot *vmap;              /* raw bytes -> id, open addressing, id -1 = empty */
    uint32_t vmap_mask;

    tok_merge *mmap;              /* (left, right) -> rank, merged id */
    uint32_t mmap_mask;
    uint32_t n_merges;

    int32_t byte_id[256];         /* single byte -> id, -1 if the vocab lacks it */
    int ignore_merges;            /* model.ignore_merges: a whole pre-token found in the vocab wins */

    tok_added *added;             /* sorted by length, longest first */
    int n_added;
    uint8_t added_first[256];     /* 1 if some added token starts with this byte */

    pthread_mutex_t cache_mu;
    tok_cache_ent *cache;         /* [1 << TOK_CACHE_BITS], NULL = no cache */
};

/* GPT-2 byte-level alphabet: code point -> byte, or -1 outside the alphabet. */
int tok_cp_to_byte(uint32_t cp);

/* Strict UTF-8 decoding of one character at s[0..n): returns the code point and sets *len, or returns -1
 * with *len = 1 for an invalid or truncated sequence (overlong forms and surrogates are invalid). */
static inline int32_t tok_utf8_decode(const uint8_t *s, size_t n, int *len) {
    uint8_t b = s[0];
    if (b < 0x80) { *len = 1; return b; }
    *len = 1;
    if (b < 0xC2 || b > 0xF4) return -1;
    if (b < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return -1;
        *len = 2;
        return ((b & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (b < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return -1;
        if (b == 0xE0 && s[1] < 0xA0) return -1;
        if (b == 0xED && s[1] > 0x9F) return -1;
        *len = 3;
        return ((b & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return -1;
    if (b == 0xF0 && s[1] < 0x90) return -1;
    if (b == 0xF4 && s[1] > 0x8F) return -1;
    *len = 4;
    return ((b & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

static inline uint64_t tok_hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static inline uint32_t tok_hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(key >> 32);
}

/* (left, right) -> merge, or NULL */
static inline const tok_merge *tok_merge_find(const qv_tokenizer *t, int32_t a, int32_t b) {
    if (a < 0 || b < 0 || !t->mmap) return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t i = tok_hash_pair(key) & t->mmap_mask;
    for (;;) {
        const tok_merge *m = &t->mmap[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
        i = (i + 1) & t->mmap_mask;
    }
}

/* raw bytes -> id, -1 if none */
int32_t tok_vocab_find(const qv_tokenizer *t, const uint8_t *raw, size_t len);

/* Words longer than this many bytes use the heap BPE (default 32, measured; tests set 0 = always). */
extern size_t tok_bpe_heap_threshold;

#endif
