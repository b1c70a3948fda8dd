/* tok_encode.c — text -> ids: added tokens matched in the raw text (leftmost, longest), each stretch between
 * them NFC-normalized (libutf8proc, with a quick check that skips it for text already in NFC), split by the
 * Qwen2 pre-tokenizer pattern (a hand-written matcher of the Oniguruma regex below) and merged by BPE rank.
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * \s is Oniguruma's Unicode space: U+0009-000D, U+0085 and the Zs/Zl/Zp categories (= White_Space).
 * Bytes that are not valid UTF-8 (HF cannot be given them) are kept as they are: each counts as one
 * "other" character, is not normalized, and is encoded through its byte token. */
#include "tok_internal.h"
#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { C_L = 1, C_N, C_O, C_SP, C_WS, C_NL, C_END }; /* letter, number, other, ' ', other space, \r \n */

static uint8_t g_ascii_cls[128];
static pthread_once_t g_cls_once = PTHREAD_ONCE_INIT;

static void init_cls(void) {
    for (int c = 0; c < 128; c++) {
        uint8_t k = C_O;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = C_L;
        else if (c >= '0' && c <= '9') k = C_N;
        else if (c == ' ') k = C_SP;
        else if (c == '\r' || c == '\n') k = C_NL;
        else if (c == '\t' || c == '\v' || c == '\f') k = C_WS;
        g_ascii_cls[c] = k;
    }
}

static int cls_cp(int32_t cp) {
    if (cp < 0) return C_O;
    if (cp == 0x85) return C_WS;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: return C_L;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: return C_N;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: return C_WS;
    default: return C_O;
    }
}

/* class of the character at s[i], its byte length in *l */
static inline int cls_at(const uint8_t *s, size_t n, size_t i, int *l) {
    if (s[i] < 0x80) { *l = 1; return g_ascii_cls[s[i]]; }
    return cls_cp(tok_utf8_decode(s + i, n - i, l));
}

static inline int is_ws(int c) { return c >= C_SP && c <= C_NL; }

static inline int lower_ascii(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* length of the contraction after an apostrophe at s[-1] ((?i:s|t|re|ve|m|ll|d)), 0 if none */
static size_t contraction(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    int c = lower_ascii(s[0]);
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 1;
    if (n >= 2 && s[0] == 0xC5 && s[1] == 0xBF) return 2; /* U+017F LONG S folds to 's' */
    if (n >= 2) {
        int d = lower_ascii(s[1]);
        if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 2;
    }
    return 0;
}

static size_t scan_letters(const uint8_t *s, size_t n, size_t i) {
    while (i < n) {
        int l;
        if (s[i] < 0x80) {
            if (g_ascii_cls[s[i]] != C_L) break;
            i++;
            continue;
        }
        if (cls_at(s, n, i, &l) != C_L) break;
        i += (size_t)l;
    }
    return i;
}

/* end of the pre-token that starts at s[i] (i < n), following the alternatives of the pattern in order */
static size_t next_piece(const uint8_t *s, size_t n, size_t i) {
    int l0, l1 = 0;
    if (s[i] == '\'') {
        size_t k = contraction(s + i + 1, n - i - 1);
        if (k) return i + 1 + k;
    }
    int c0 = cls_at(s, n, i, &l0);
    if (c0 == C_L) return scan_letters(s, n, i + (size_t)l0);
    size_t j = i + (size_t)l0;
    int c1 = j < n ? cls_at(s, n, j, &l1) : C_END;
    if (c0 != C_NL && c0 != C_N && c1 == C_L) return scan_letters(s, n, j + (size_t)l1);
    if (c0 == C_N) return j;
    if (c0 == C_O || (c0 == C_SP && c1 == C_O)) {
        size_t k = c0 == C_O ? j : j + (size_t)l1;
        while (k < n) {
            int l;
            if (cls_at(s, n, k, &l) != C_O) break;
            k += (size_t)l;
        }
        while (k < n && (s[k] == '\r' || s[k] == '\n')) k++;
        return k;
    }
    /* whitespace run [i, q): \s*[\r\n]+ ends after its last newline; else \s+(?!\S) leaves the last
     * space for the next word unless the run ends the text; else \s+ */
    size_t q = i, nl_end = 0, last = i;
    while (q < n) {
        int l, c = cls_at(s, n, q, &l);
        if (!is_ws(c)) break;
        if (c == C_NL) nl_end = q + 1;
        last = q;
        q += (size_t)l;
    }
    if (nl_end) return nl_end;
    if (q == n) return n;
    if (last > i) return last;
    return q;
}

/* ---- NFC ---- */

/* 1 if the code point is NFC_Quick_Check=Yes with combining class 0 (a conservative list of ranges) */
static inline int nfc_safe(int32_t cp) {
    return cp < 0x300 || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x3000 && cp <= 0x3029) || (cp >= 0x3030 && cp <= 0x3098) ||
           (cp >= 0x309B && cp <= 0x30FF) || (cp >= 0xFF01 && cp <= 0xFF9D) || (cp >= 0x2010 && cp <= 0x2027) ||
           (cp >= 0x2030 && cp <= 0x205E);
}

typedef struct {
    const qv_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    uint8_t *nfc;               /* normalized stretch */
    size_t nfc_cap;
    int32_t *u32;               /* utf8proc scratch */
    size_t u32_cap;
    int32_t *sym;               /* BPE symbols, then pair ranks / merged ids / links / heap */
    uint32_t *rank;
    int32_t *nid, *prev, *next;
    uint64_t *heap;
    size_t sym_cap;
    int oom;
} enc_ctx;

static int grow(void **p, size_t *cap, size_t need, size_t elem) { return qv_grow_n(p, cap, need, elem); }

/* appends NFC(s[0..n)) to c->nfc at *o; each maximal valid UTF-8 run is normalized, invalid bytes copied */
static int nfc_into(enc_ctx *c, const uint8_t *s, size_t n, size_t *out_o) {
    size_t o = *out_o;
    size_t i = 0;
    while (i < n) {
        size_t r = i;
        while (r < n) {
            int l;
            if (tok_utf8_decode(s + r, n - r, &l) < 0) break;
            r += (size_t)l;
        }
        if (r > i) {
            utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
            utf8proc_ssize_t m;
            for (;;) {
                m = utf8proc_decompose(s + i, (utf8proc_ssize_t)(r - i), c->u32, (utf8proc_ssize_t)c->u32_cap, opt);
                if (m < 0) return 0;
                if ((size_t)m <= c->u32_cap) break;
                if (!grow((void **)&c->u32, &c->u32_cap, (size_t)m, sizeof *c->u32)) return 0;
            }
            m = utf8proc_normalize_utf32(c->u32, m, opt);
            if (m < 0) return 0;
            m = utf8proc_reencode(c->u32, m, opt); /* UTF-8 written over the buffer */
            if (m < 0) return 0;
            if (!grow((void **)&c->nfc, &c->nfc_cap, o + (size_t)m + (n - r) + 1, 1)) return 0;
            memcpy(c->nfc + o, c->u32, (size_t)m);
            o += (size_t)m;
        }
        if (r < n) {
            if (!grow((void **)&c->nfc, &c->nfc_cap, o + 1, 1)) return 0;
            c->nfc[o++] = s[r];
            r++;
        }
        i = r;
    }
    *out_o = o;
    return 1;
}

static int nfc_copy(enc_ctx *c, const uint8_t *s, size_t n, size_t *o) {
    if (!grow((void **)&c->nfc, &c->nfc_cap, *o + n + 1, 1)) return 0;
    memcpy(c->nfc + *o, s, n);
    *o += n;
    return 1;
}

/* NFC of a stretch, touching only the regions around characters outside the safe list. A safe character
 * (NFC_Quick_Check=Yes, combining class 0) is a normalization boundary: text before it and text from it on
 * normalize independently. A region runs from the safe character before an unsafe one (it may be the
 * base a mark composes with) to the next safe character. Sets *out to s itself when nothing changes. */
static int nfc_stretch(enc_ctx *c, const uint8_t *s, size_t n, const uint8_t **out, size_t *out_n) {
    size_t i = 0, from = 0, o = 0, prev = 0;
    int prev_safe = 0, touched = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) { prev = i + 7, prev_safe = 1, i += 8; continue; }
        }
        int l;
        int32_t cp = s[i] < 0x80 ? (l = 1, s[i]) : tok_utf8_decode(s + i, n - i, &l);
        if (cp < 0 || nfc_safe(cp)) {
            prev = i, prev_safe = cp >= 0, i += (size_t)l;
            continue;
        }
        size_t a = prev_safe && prev >= from && prev < i ? prev : i, b = i + (size_t)l;
        while (b < n) { /* up to the next safe character */
            int32_t cb = s[b] < 0x80 ? (l = 1, s[b]) : tok_utf8_decode(s + b, n - b, &l);
            if (cb >= 0 && nfc_safe(cb)) break;
            b += (size_t)l;
        }
        if (!nfc_copy(c, s + from, a - from, &o) || !nfc_into(c, s + a, b - a, &o)) return 0;
        touched = 1;
        from = i = b;
        prev_safe = 0;
    }
    if (!touched) {
        *out = s, *out_n = n;
        return 1;
    }
    if (!nfc_copy(c, s + from, n - from, &o)) return 0;
    *out = c->nfc, *out_n = o;
    return 1;
}

/* ---- BPE ---- */

static int sym_reserve(enc_ctx *c, size_t n) {
    if (n <= c->sym_cap) return 1;
    size_t nc = c->sym_cap ? c->sym_cap : 256;
    while (nc < n) nc *= 2;
    int32_t *a = realloc(c->sym, nc * sizeof *a);
    if (a) c->sym = a;
    uint32_t *r = realloc(c->rank, nc * sizeof *r);
    if (r) c->rank = r;
    int32_t *b = realloc(c->nid, nc * sizeof *b);
    if (b) c->nid = b;
    int32_t *p = realloc(c->prev, nc * sizeof *p);
    if (p) c->prev = p;
    int32_t *q = realloc(c->next, nc * sizeof *q);
    if (q) c->next = q;
    uint64_t *h = realloc(c->heap, 3 * nc * sizeof *h);
    if (h) c->heap = h;
    if (!a || !r || !b || !p || !q || !h) return 0;
    c->sym_cap = nc;
    return 1;
}

/* rank and merged id of the pair (i, c->next[i]) */
static inline void pair_rank(const qv_tokenizer *t, enc_ctx *c, int32_t i) {
    int32_t j = c->next[i];
    const tok_merge *m = j >= 0 ? tok_merge_find(t, c->sym[i], c->sym[j]) : NULL;
    c->rank[i] = m ? m->rank : TOK_NO_RANK;
    c->nid[i] = m ? m->id : -1;
}

/* short words: linked symbols and a linear scan for the lowest rank (leftmost on ties) per merge;
 * compacts c->sym and returns the symbol count */
static size_t bpe_small(const qv_tokenizer *t, enc_ctx *c, size_t k) {
    for (size_t i = 0; i < k; i++) c->next[i] = i + 1 < k ? (int32_t)i + 1 : -1;
    for (size_t i = 0; i < k; i++) pair_rank(t, c, (int32_t)i);
    for (;;) {
        uint32_t best = TOK_NO_RANK;
        int32_t bi = -1, bprev = -1;
        for (int32_t i = 0, p = -1; i >= 0; p = i, i = c->next[i])
            if (c->rank[i] < best) best = c->rank[i], bi = i, bprev = p;
        if (bi < 0) break;
        int32_t j = c->next[bi];
        c->sym[bi] = c->nid[bi];
        c->next[bi] = c->next[j];
        if (bprev >= 0) pair_rank(t, c, bprev);
        pair_rank(t, c, bi);
    }
    size_t o = 0;
    for (int32_t i = 0; i >= 0; i = c->next[i]) c->sym[o++] = c->sym[i];
    return o;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= *n) break;
        if (l + 1 < *n && h[l + 1] < h[l]) l++;
        if (h[l] >= v) break;
        h[i] = h[l];
        i = l;
    }
    h[i] = v;
    return top;
}

static void heap_pair(const qv_tokenizer *t, enc_ctx *c, size_t *hn, int32_t i) {
    int32_t j = c->next[i];
    if (j < 0) return;
    const tok_merge *m = tok_merge_find(t, c->sym[i], c->sym[j]);
    if (m) heap_push(c->heap, hn, (uint64_t)m->rank << 32 | (uint32_t)i);
}

/* long words: linked symbols and a heap ordered by (rank, position), as HF's word.rs; compacts c->sym */
static size_t bpe_heap(const qv_tokenizer *t, enc_ctx *c, size_t k) {
    size_t hn = 0;
    for (size_t i = 0; i < k; i++) {
        c->prev[i] = (int32_t)i - 1;
        c->next[i] = i + 1 < k ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < k; i++) heap_pair(t, c, &hn, (int32_t)i);
    while (hn) {
        uint64_t top = heap_pop(c->heap, &hn);
        int32_t i = (int32_t)(uint32_t)top, j = c->next[i];
        if (c->sym[i] < -1 || j < 0) continue; /* gone, or now last */
        const tok_merge *m = tok_merge_find(t, c->sym[i], c->sym[j]);
        if (!m || m->rank != (uint32_t)(top >> 32)) continue; /* stale */
        c->sym[i] = m->id;
        c->sym[j] = -2;
        c->next[i] = c->next[j];
        if (c->next[j] >= 0) c->prev[c->next[j]] = i;
        if (c->prev[i] >= 0) heap_pair(t, c, &hn, c->prev[i]);
        heap_pair(t, c, &hn, i);
    }
    size_t o = 0;
    for (int32_t i = 0; i >= 0; i = c->next[i]) c->sym[o++] = c->sym[i];
    return o;
}

static int push_ids(enc_ctx *c, const int32_t *ids, size_t n) {
    if (!grow((void **)&c->ids, &c->cap, c->n + n, sizeof *c->ids)) return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0) c->ids[c->n++] = ids[i]; /* a byte missing from the vocab is dropped (no unk) */
    return 1;
}

/* one pre-token (raw bytes) -> ids appended */
static int bpe_word(enc_ctx *c, const uint8_t *w, size_t n) {
    const qv_tokenizer *t = c->t;
    if (n == 1) return push_ids(c, &t->byte_id[w[0]], 1);
    if (t->ignore_merges) {
        int32_t id = tok_vocab_find(t, w, n);
        if (id >= 0) return push_ids(c, &id, 1);
    }
    tok_cache_ent *ce = NULL;
    uint32_t h = 0;
    int locked = 0;
    if (t->cache && n <= TOK_CACHE_KEY) {
        h = (uint32_t)tok_hash_bytes(w, n);
        ce = &t->cache[h & ((1u << TOK_CACHE_BITS) - 1)];
        locked = pthread_mutex_trylock((pthread_mutex_t *)&t->cache_mu) == 0;
        if (locked && ce->klen == n && ce->hash == h && memcmp(ce->key, w, n) == 0) {
            int32_t ids[TOK_CACHE_IDS];
            size_t k = ce->nids;
            memcpy(ids, ce->ids, k * sizeof *ids);
            pthread_mutex_unlock((pthread_mutex_t *)&t->cache_mu);
            return push_ids(c, ids, k);
        }
        if (locked) pthread_mutex_unlock((pthread_mutex_t *)&t->cache_mu);
    }
    if (!sym_reserve(c, n)) return 0;
    for (size_t i = 0; i < n; i++) c->sym[i] = t->byte_id[w[i]];
    size_t k = n > tok_bpe_heap_threshold ? bpe_heap(t, c, n) : bpe_small(t, c, n);
    if (ce && k <= TOK_CACHE_IDS && locked && pthread_mutex_trylock((pthread_mutex_t *)&t->cache_mu) == 0) {
        ce->hash = h;
        ce->klen = (uint8_t)n;
        ce->nids = (uint8_t)k;
        memcpy(ce->key, w, n);
        memcpy(ce->ids, c->sym, k * sizeof *c->sym);
        pthread_mutex_unlock((pthread_mutex_t *)&t->cache_mu);
    }
    return push_ids(c, c->sym, k);
}

/* a stretch of text between added tokens */
static int encode_stretch(enc_ctx *c, const uint8_t *s, size_t n) {
    if (n == 0) return 1;
    if (!nfc_stretch(c, s, n, &s, &n)) return 0;
    for (size_t i = 0; i < n;) {
        size_t e = next_piece(s, n, i);
        if (!bpe_word(c, s + i, e - i)) return 0;
        i = e;
    }
    return 1;
}

/* leftmost, longest added token at or after `from`; returns its start or n */
static size_t find_added(const qv_tokenizer *t, const uint8_t *s, size_t n, size_t from, int *which) {
    if (!t->n_added) return n;
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[s[i]]) continue;
        for (int a = 0; a < t->n_added; a++) { /* longest first */
            const tok_added *ad = &t->added[a];
            if (ad->len <= n - i && memcmp(t->strs + ad->str_off, s + i, ad->len) == 0) {
                *which = a;
                return i;
            }
        }
    }
    return n;
}

qv_status qv_tok_encode(const qv_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                        qv_err *err) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids || (!text && len)) return qv_errf(err, QV_ERR_INVALID, "qv_tok_encode: bad arguments");
    if (len > (size_t)INT32_MAX) return qv_errf(err, QV_ERR_INVALID, "qv_tok_encode: text of %zu bytes is over 2 GiB", len);
    pthread_once(&g_cls_once, init_cls);
    enc_ctx c = {.t = t};
    const uint8_t *s = (const uint8_t *)text;
    int ok = grow((void **)&c.ids, &c.cap, len / 3 + 16, sizeof *c.ids);
    size_t pos = 0;
    while (ok && pos < len) {
        int a = -1;
        size_t m = find_added(t, s, len, pos, &a);
        ok = encode_stretch(&c, s + pos, m - pos);
        if (!ok || m == len) break;
        ok = push_ids(&c, &t->added[a].id, 1);
        pos = m + t->added[a].len;
    }
    free(c.nfc);
    free(c.u32);
    free(c.sym);
    free(c.rank);
    free(c.nid);
    free(c.prev);
    free(c.next);
    free(c.heap);
    if (!ok) {
        free(c.ids);
        return qv_errf(err, QV_ERR_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);
    }
    *ids = c.ids;
    *n_ids = c.n;
    return QV_OK;
}
