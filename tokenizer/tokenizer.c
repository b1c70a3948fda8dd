/* tokenizer.c — loading the Qwen2 byte-level BPE tokenizer: tokenizer.json (merges as "a b" strings or as
 * ["a", "b"] pairs), or the slow files vocab.json + merges.txt + tokenizer_config.json. Builds the id table,
 * the vocab hash (raw bytes -> id) and the merge hash ((left, right) -> rank, merged id).
 * Follows Hugging Face tokenizers 0.2x (models/bpe/serialization.rs, added_vocabulary.rs) and transformers'
 * Qwen2Tokenizer; every field is checked, and unknown normalizer/pre-tokenizer/model types are refused. */
#include "tok_internal.h"
#include "tok_json.h"
#include "buf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

size_t tok_bpe_heap_threshold = 32;

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) ---- */
static uint16_t g_b2c[256];
static int16_t g_c2b[324];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_alphabet(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        g_b2c[b] = (uint16_t)(direct ? b : 256 + n++);
    }
    for (int c = 0; c < 324; c++) g_c2b[c] = -1;
    for (int b = 0; b < 256; b++) g_c2b[g_b2c[b]] = (int16_t)b;
}

int tok_cp_to_byte(uint32_t cp) {
    pthread_once(&g_once, init_alphabet);
    return cp < 324 ? g_c2b[cp] : -1;
}

/* byte-level string -> raw bytes; 0 if a character lies outside the alphabet (or bad UTF-8) */
static int bl_to_raw(const char *s, size_t n, uint8_t *out, size_t *out_len) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int l;
        int32_t cp = tok_utf8_decode((const uint8_t *)s + i, n - i, &l);
        if (cp < 0 || cp >= 324 || g_c2b[cp] < 0) return 0;
        out[o++] = (uint8_t)g_c2b[cp];
        i += (size_t)l;
    }
    *out_len = o;
    return 1;
}

/* ---- arenas ---- */
static int arena_put(void **buf, size_t *len, size_t *cap, const void *p, size_t n, int nul, uint32_t *off) {
    size_t need = *len + n + (nul ? 1 : 0);
    if (need > UINT32_MAX) return 0;
    if (!qv_grow(buf, cap, need)) return 0;
    char *d = (char *)*buf + *len;
    if (n) memcpy(d, p, n);
    if (nul) d[n] = 0;
    *off = (uint32_t)*len;
    *len = need;
    return 1;
}

/* ---- vocab map ---- */
static int32_t vocab_find_h(const qv_tokenizer *t, const uint8_t *raw, size_t len, uint64_t h) {
    uint32_t tag = (uint32_t)(h >> 32), i = (uint32_t)h & t->vmap_mask;
    for (;;) {
        const tok_vslot *v = &t->vmap[i];
        if (v->id < 0) return -1;
        if (v->tag == tag && v->raw_len == len && memcmp(t->raw + v->raw_off, raw, len) == 0) return v->id;
        i = (i + 1) & t->vmap_mask;
    }
}

int32_t tok_vocab_find(const qv_tokenizer *t, const uint8_t *raw, size_t len) {
    if (!t->vmap) return -1;
    return vocab_find_h(t, raw, len, tok_hash_bytes(raw, len));
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 1024;
    while (c < n) c *= 2;
    return c;
}

/* ---- builder ---- */
#define MERGE_BATCH 32
typedef struct {
    uint32_t off, la, lc, rank;
    uint64_t ha, hc, hm, key;
    int32_t ia, ic, im;
} pend_merge;

typedef struct {
    qv_tokenizer *t;
    const char *src;   /* file name for messages */
    uint8_t *tmp;      /* scratch for byte-level conversion */
    size_t tmp_cap;
    uint8_t *tmp2;     /* the JSON scanner's string buffer, kept between passes */
    size_t tmp2_cap;
    int32_t pv_id[MERGE_BATCH]; /* vocab entries waiting for flush_vocab */
    uint64_t pv_hash[MERGE_BATCH];
    int npv;
    pend_merge pm[MERGE_BATCH]; /* merges waiting for flush_merges */
    int npm;
    uint8_t *pbuf;     /* their raw bytes: left then right, back to back */
    size_t pbuf_len, pbuf_cap;
} builder;

static int tmp_reserve(builder *b, size_t n) {
    if (n <= b->tmp_cap) return 1;
    uint8_t *p = realloc(b->tmp, n);
    if (!p) return 0;
    b->tmp = p;
    b->tmp_cap = n;
    return 1;
}

static qv_status alloc_ids(builder *b, long max_id, size_t n_vocab, qv_err *err) {
    qv_tokenizer *t = b->t;
    t->n_ids = (int32_t)(max_id + 1);
    t->ent = calloc((size_t)t->n_ids, sizeof *t->ent);
    uint32_t vcap = pow2_at_least((uint64_t)n_vocab * 3 / 2 + 1);
    t->vmap = malloc(vcap * sizeof *t->vmap);
    if (!t->ent || !t->vmap) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory for %d ids", b->src, t->n_ids);
    for (uint32_t i = 0; i < vcap; i++) t->vmap[i].id = -1;
    t->vmap_mask = vcap - 1;
    return QV_OK;
}

static qv_status flush_vocab(builder *b, qv_err *err);

/* a vocab entry: stored now, inserted into the hash by flush_vocab in batches (prefetched slots) */
static qv_status add_vocab(builder *b, const char *s, size_t n, long id, qv_err *err) {
    qv_tokenizer *t = b->t;
    if (id < 0 || id >= t->n_ids) return qv_errf(err, QV_ERR_FORMAT, "%s: token id %ld out of range", b->src, id);
    tok_entry *e = &t->ent[id];
    if (e->present) return qv_errf(err, QV_ERR_FORMAT, "%s: token id %ld is used twice", b->src, id);
    if (!tmp_reserve(b, n + 1)) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", b->src);
    size_t rl;
    if (n == 0 || !bl_to_raw(s, n, b->tmp, &rl))
        return qv_errf(err, QV_ERR_FORMAT, "%s: vocab token %ld (\"%.40s\") is not in byte-level form", b->src, id, s);
    if (!arena_put((void **)&t->strs, &t->strs_len, &t->strs_cap, s, n, 1, &e->str_off) ||
        !arena_put((void **)&t->raw, &t->raw_len, &t->raw_cap, b->tmp, rl, 0, &e->raw_off))
        return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", b->src);
    e->str_len = (uint32_t)n;
    e->raw_len = (uint32_t)rl;
    e->present = 1;
    uint64_t h = tok_hash_bytes(b->tmp, rl);
    __builtin_prefetch(&t->vmap[(uint32_t)h & t->vmap_mask]);
    b->pv_id[b->npv] = (int32_t)id;
    b->pv_hash[b->npv++] = h;
    if (rl == 1) t->byte_id[b->tmp[0]] = (int32_t)id;
    return b->npv == MERGE_BATCH ? flush_vocab(b, err) : QV_OK;
}

/* inserts the queued vocab entries (their slots were prefetched when queued); refuses duplicates */
static qv_status flush_vocab(builder *b, qv_err *err) {
    qv_tokenizer *t = b->t;
    for (int k = 0; k < b->npv; k++) {
        int32_t id = b->pv_id[k];
        const tok_entry *e = &t->ent[id];
        const uint8_t *raw = t->raw + e->raw_off;
        uint64_t h = b->pv_hash[k];
        uint32_t tag = (uint32_t)(h >> 32), i = (uint32_t)h & t->vmap_mask;
        for (;; i = (i + 1) & t->vmap_mask) {
            const tok_vslot *v = &t->vmap[i];
            if (v->id < 0) break;
            if (v->tag == tag && v->raw_len == e->raw_len && memcmp(t->raw + v->raw_off, raw, e->raw_len) == 0)
                return qv_errf(err, QV_ERR_FORMAT, "%s: vocab token \"%.40s\" appears twice", b->src, t->strs + e->str_off);
        }
        t->vmap[i] = (tok_vslot){tag, id, e->raw_off, e->raw_len};
    }
    b->npv = 0;
    return QV_OK;
}

static qv_status alloc_merges(builder *b, size_t n, qv_err *err) {
    qv_tokenizer *t = b->t;
    uint32_t cap = pow2_at_least((uint64_t)n * 2 + 1);
    t->mmap = malloc((size_t)cap * sizeof *t->mmap);
    if (!t->mmap) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory for %zu merges", b->src, n);
    for (uint32_t i = 0; i < cap; i++) t->mmap[i].key = UINT64_MAX;
    t->mmap_mask = cap - 1;
    return QV_OK;
}

/* Merges are resolved in batches: each needs three vocab lookups and a merge-table insert, all cache
 * misses on large tables, so a batch prefetches every slot before it waits on any. */
static qv_status flush_merges(builder *b, qv_err *err) {
    qv_tokenizer *t = b->t;
    for (int k = 0; k < b->npm; k++) {
        pend_merge *m = &b->pm[k];
        const uint8_t *r = b->pbuf + m->off;
        m->ia = vocab_find_h(t, r, m->la, m->ha);
        m->ic = vocab_find_h(t, r + m->la, m->lc, m->hc);
        m->im = vocab_find_h(t, r, m->la + m->lc, m->hm);
        if (m->ia < 0 || m->ic < 0 || m->im < 0)
            return qv_errf(err, QV_ERR_FORMAT, "%s: merge %u uses a token missing from the vocab (%s)", b->src,
                           m->rank + 1, m->ia < 0 ? "left" : m->ic < 0 ? "right" : "merged");
        m->key = (uint64_t)(uint32_t)m->ia << 32 | (uint32_t)m->ic;
        __builtin_prefetch(&t->mmap[tok_hash_pair(m->key) & t->mmap_mask], 1);
    }
    for (int k = 0; k < b->npm; k++) { /* in rank order: a later duplicate overrides the rank, as in HF */
        const pend_merge *m = &b->pm[k];
        uint32_t i = tok_hash_pair(m->key) & t->mmap_mask;
        while (t->mmap[i].key != UINT64_MAX && t->mmap[i].key != m->key) i = (i + 1) & t->mmap_mask;
        if (t->mmap[i].key == UINT64_MAX) t->n_merges++;
        t->mmap[i].key = m->key;
        t->mmap[i].rank = m->rank;
        t->mmap[i].id = m->im;
    }
    b->npm = 0;
    b->pbuf_len = 0;
    return QV_OK;
}

/* merge number `rank`: a + c (byte-level strings), queued for flush_merges */
static qv_status add_merge(builder *b, const char *a, size_t na, const char *c, size_t nc, uint32_t rank, qv_err *err) {
    qv_tokenizer *t = b->t;
    if (b->pbuf_len + na + nc > b->pbuf_cap) {
        size_t nc2 = b->pbuf_cap ? b->pbuf_cap : 4096;
        while (nc2 < b->pbuf_len + na + nc) nc2 *= 2;
        uint8_t *p = realloc(b->pbuf, nc2);
        if (!p) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", b->src);
        b->pbuf = p, b->pbuf_cap = nc2;
    }
    uint8_t *r = b->pbuf + b->pbuf_len;
    size_t la, lc;
    if (!na || !nc || !bl_to_raw(a, na, r, &la) || !bl_to_raw(c, nc, r + la, &lc))
        return qv_errf(err, QV_ERR_FORMAT, "%s: merge %u (\"%.*s\" \"%.*s\") is not in byte-level form", b->src,
                       rank + 1, (int)(na > 40 ? 40 : na), a, (int)(nc > 40 ? 40 : nc), c);
    pend_merge *m = &b->pm[b->npm++];
    m->off = (uint32_t)b->pbuf_len, m->la = (uint32_t)la, m->lc = (uint32_t)lc, m->rank = rank;
    m->ha = tok_hash_bytes(r, la), m->hc = tok_hash_bytes(r + la, lc), m->hm = tok_hash_bytes(r, la + lc);
    __builtin_prefetch(&t->vmap[(uint32_t)m->ha & t->vmap_mask]);
    __builtin_prefetch(&t->vmap[(uint32_t)m->hc & t->vmap_mask]);
    __builtin_prefetch(&t->vmap[(uint32_t)m->hm & t->vmap_mask]);
    b->pbuf_len += la + lc;
    return b->npm == MERGE_BATCH ? flush_merges(b, err) : QV_OK;
}

/* "a b" with exactly one space (HF convert_merges_to_hashmap) */
static qv_status add_merge_line(builder *b, const char *s, size_t n, uint32_t rank, qv_err *err) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
        return qv_errf(err, QV_ERR_FORMAT, "%s: merge %u (\"%.*s\") is not two tokens separated by one space",
                       b->src, rank + 1, (int)(n > 60 ? 60 : n), s);
    return add_merge(b, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), rank, err);
}

static qv_status add_added(builder *b, const char *s, size_t n, long id, int special, qv_err *err) {
    qv_tokenizer *t = b->t;
    if (id < 0 || id >= t->n_ids) return qv_errf(err, QV_ERR_FORMAT, "%s: added token id %ld out of range", b->src, id);
    if (n == 0) return qv_errf(err, QV_ERR_FORMAT, "%s: added token %ld is empty", b->src, id);
    if (n > 4096) return qv_errf(err, QV_ERR_FORMAT, "%s: added token %ld is too long", b->src, id);
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].id == id) return qv_errf(err, QV_ERR_FORMAT, "%s: added token id %ld appears twice", b->src, id);
        if (t->added[i].len == n && memcmp(t->strs + t->added[i].str_off, s, n) == 0)
            return qv_errf(err, QV_ERR_FORMAT, "%s: added token \"%.40s\" appears twice", b->src, s);
    }
    tok_added *na = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *na);
    if (!na) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", b->src);
    t->added = na;
    tok_entry *e = &t->ent[id];
    /* decoded bytes as HF's ByteLevel decoder: mapped when every character is in the alphabet, else as is */
    if (!tmp_reserve(b, n)) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", b->src);
    size_t rl;
    const void *raw = b->tmp;
    if (!bl_to_raw(s, n, b->tmp, &rl)) raw = s, rl = n;
    if (e->present && !e->added && (e->str_len != n || memcmp(t->strs + e->str_off, s, n) != 0))
        return qv_errf(err, QV_ERR_FORMAT, "%s: added token \"%.40s\" reuses the id %ld of another vocab token", b->src,
                       s, id);
    tok_added *a = &t->added[t->n_added++];
    if (!arena_put((void **)&t->strs, &t->strs_len, &t->strs_cap, s, n, 1, &a->str_off) ||
        !arena_put((void **)&t->raw, &t->raw_len, &t->raw_cap, raw, rl, 0, &e->raw_off))
        return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", b->src);
    a->len = (uint32_t)n;
    a->id = (int32_t)id;
    e->str_off = a->str_off; /* the added content wins for id -> string, as HF */
    e->str_len = (uint32_t)n;
    e->raw_len = (uint32_t)rl;
    e->present = e->added = 1;
    e->special = special ? 1 : 0;
    t->added_first[(uint8_t)s[0]] = 1;
    return QV_OK;
}

static int cmp_added(const void *x, const void *y) {
    const tok_added *a = x, *b = y;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* ---- JSON helpers ---- */
static int json_id(const cJSON *v, long *id) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_IDS) || d != (double)(long)d) return 0;
    *id = (long)d;
    return 1;
}

static int json_flag(const cJSON *o, const char *k) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k)); }

static const char *json_type(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static const char k_qwen2_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

static qv_status check_bytelevel(const cJSON *o, const char *src, const char *what, qv_err *err) {
    if (json_flag(o, "add_prefix_space"))
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: %s ByteLevel with add_prefix_space is not supported", src, what);
    return QV_OK;
}

/* normalizer: NFC (or none); pre_tokenizer: Sequence[Split(Qwen2 pattern, Isolated), ByteLevel(no regex)] */
static qv_status check_pipeline(const cJSON *root, const char *src, qv_err *err) {
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (nm && !cJSON_IsNull(nm)) {
        const char *ty = json_type(nm);
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(nm, "normalizers");
        if (ty && strcmp(ty, "Sequence") == 0 && cJSON_GetArraySize(seq) == 1) ty = json_type(cJSON_GetArrayItem(seq, 0));
        if (!ty || strcmp(ty, "NFC") != 0)
            return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: normalizer type %s is not supported (only NFC)", src,
                           ty ? ty : "(missing)");
    } else {
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: no NFC normalizer (only the Qwen2 pipeline is supported)", src);
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const char *ty = pt ? json_type(pt) : NULL;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    if (!ty || strcmp(ty, "Sequence") != 0 || cJSON_GetArraySize(seq) != 2)
        return qv_errf(err, QV_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer %s is not the Qwen2 one (Sequence of Split and ByteLevel)", src,
                       ty ? ty : "(missing)");
    const cJSON *sp = cJSON_GetArrayItem(seq, 0), *bl = cJSON_GetArrayItem(seq, 1);
    const char *t0 = json_type(sp), *t1 = json_type(bl);
    if (!t0 || strcmp(t0, "Split") != 0 || !t1 || strcmp(t1, "ByteLevel") != 0)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: pre_tokenizer Sequence[%s, %s] is not supported (Split, ByteLevel)",
                       src, t0 ? t0 : "?", t1 ? t1 : "?");
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, "pattern"), "Regex");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(sp, "behavior");
    if (!cJSON_IsString(pat) || strcmp(pat->valuestring, k_qwen2_pattern) != 0)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: the Split pattern is not the Qwen2 pre-tokenizer regex", src);
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0 || json_flag(sp, "invert"))
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: Split must be behavior Isolated, invert false", src);
    qv_status st = check_bytelevel(bl, src, "pre_tokenizer", err);
    if (st) return st;
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(bl, "use_regex");
    if (!cJSON_IsFalse(ur))
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: pre_tokenizer ByteLevel must have use_regex false", src);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec)) {
        const char *dt = json_type(dec);
        if (!dt || strcmp(dt, "ByteLevel") != 0)
            return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: decoder type %s is not supported (ByteLevel)", src,
                           dt ? dt : "(missing)");
    }
    return QV_OK;
}

static qv_status check_added_flags(const cJSON *a, const char *src, long id, qv_err *err) {
    if (json_flag(a, "lstrip") || json_flag(a, "rstrip") || json_flag(a, "single_word"))
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: added token %ld uses lstrip/rstrip/single_word (not supported)", src, id);
    return QV_OK;
}

/* vocab (a JSON object token -> id, scanned in place) and added tokens (tokenizer.json's list of
 * {id, content, special}, or tokenizer_config.json's object "id" -> {content, special}) */
typedef struct {
    const char *vocab;       /* the text of the vocab object */
    size_t vocab_len;
    const cJSON *added;
    const cJSON *added_dec;
} vocab_src;

/* pass 0 counts entries and the largest id, pass 1 adds them */
static qv_status scan_vocab(builder *b, const vocab_src *vs, int pass, long *max_id, size_t *n, qv_err *err) {
    jscan s;
    js_init(&s, vs->vocab, vs->vocab_len);
    s.buf = (char *)b->tmp2, s.cap = b->tmp2_cap; /* reuse the buffer between passes */
    qv_status st = QV_OK;
    int first = 1, r = -1;
    if (!js_eat(&s, '{')) st = qv_errf(err, QV_ERR_FORMAT, "%s: the vocab is not a JSON object", b->src);
    while (!st && (r = js_next(&s, '}', &first)) == 1) {
        long id;
        if (!js_string(&s) || !js_eat(&s, ':') || !js_uint(&s, TOK_MAX_IDS, &id)) {
            st = qv_errf(err, QV_ERR_FORMAT, "%s: bad vocab entry (a token string and an id below %d) near byte %ld of the vocab",
                         b->src, TOK_MAX_IDS, (long)(s.p - vs->vocab));
            break;
        }
        if (pass == 0) {
            if (id > *max_id) *max_id = id;
            ++*n;
        } else {
            st = add_vocab(b, s.buf, s.len, id, err);
        }
    }
    if (!st && r < 0) st = qv_errf(err, QV_ERR_FORMAT, "%s: bad JSON in the vocab near byte %ld", b->src, (long)(s.p - vs->vocab));
    if (!st && pass == 1) st = flush_vocab(b, err);
    if (!st) {
        js_ws(&s);
        if (s.p != s.end) st = qv_errf(err, QV_ERR_FORMAT, "%s: text after the vocab object", b->src);
    }
    b->tmp2 = (uint8_t *)s.buf, b->tmp2_cap = s.cap;
    return st;
}

static qv_status load_vocab(builder *b, const vocab_src *vs, qv_err *err) {
    long max_id = -1;
    size_t n = 0;
    qv_status st = scan_vocab(b, vs, 0, &max_id, &n, err);
    if (st) return st;
    if (n == 0) return qv_errf(err, QV_ERR_FORMAT, "%s: the vocab is empty", b->src);
    const cJSON *c;
    cJSON_ArrayForEach(c, vs->added) {
        long id;
        if (!json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id))
            return qv_errf(err, QV_ERR_FORMAT, "%s: an added token has a bad id", b->src);
        if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(c, vs->added_dec) {
        char *end;
        errno = 0;
        long id = strtol(c->string, &end, 10);
        if (errno || end == c->string || *end || id < 0 || id >= TOK_MAX_IDS)
            return qv_errf(err, QV_ERR_FORMAT, "%s: added_tokens_decoder key \"%.40s\" is not an id", b->src, c->string);
        if (id > max_id) max_id = id;
    }
    if ((st = alloc_ids(b, max_id, n, err)) || (st = scan_vocab(b, vs, 1, &max_id, &n, err))) return st;
    cJSON_ArrayForEach(c, vs->added) {
        long id = (long)cJSON_GetObjectItemCaseSensitive(c, "id")->valuedouble;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (!cJSON_IsString(content)) return qv_errf(err, QV_ERR_FORMAT, "%s: added token %ld has no content", b->src, id);
        if ((st = check_added_flags(c, b->src, id, err))) return st;
        if ((st = add_added(b, content->valuestring, strlen(content->valuestring), id, json_flag(c, "special"), err)))
            return st;
    }
    cJSON_ArrayForEach(c, vs->added_dec) {
        long id = strtol(c->string, NULL, 10);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (!cJSON_IsString(content)) return qv_errf(err, QV_ERR_FORMAT, "%s: added token %ld has no content", b->src, id);
        if ((st = check_added_flags(c, b->src, id, err))) return st;
        if ((st = add_added(b, content->valuestring, strlen(content->valuestring), id, json_flag(c, "special"), err)))
            return st;
    }
    return QV_OK;
}

/* model.merges: a list of "a b" strings or of ["a", "b"] pairs, scanned in place */
static qv_status load_merges(builder *b, const char *p, size_t n, qv_err *err) {
    jscan s;
    size_t count = 0;
    int first = 1, r = -1;
    js_init(&s, p, n);
    if (!js_eat(&s, '[')) return qv_errf(err, QV_ERR_FORMAT, "%s: model.merges is not a list", b->src);
    while ((r = js_next(&s, ']', &first)) == 1 && js_skip(&s)) count++;
    qv_status st = r ? qv_errf(err, QV_ERR_FORMAT, "%s: bad JSON in model.merges", b->src) : alloc_merges(b, count, err);
    js_free(&s);
    js_init(&s, p, n);
    js_eat(&s, '[');
    first = 1;
    uint32_t rank = 0;
    char *a = NULL;
    size_t a_cap = 0;
    while (!st && js_next(&s, ']', &first) == 1) {
        if (js_string(&s)) {
            if (strncmp(s.buf, "#version", 8) != 0) st = add_merge_line(b, s.buf, s.len, rank++, err);
            continue;
        }
        int ok = js_eat(&s, '[') && js_string(&s);
        size_t na = s.len;
        if (ok && na + 1 > a_cap) {
            char *na_buf = realloc(a, na + 1);
            if (!na_buf) {
                st = qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", b->src);
                break;
            }
            a = na_buf, a_cap = na + 1;
        }
        if (ok) memcpy(a, s.buf, na);
        ok = ok && js_eat(&s, ',') && js_string(&s) && js_eat(&s, ']');
        if (!ok) st = qv_errf(err, QV_ERR_FORMAT, "%s: merge %u is neither \"a b\" nor [\"a\", \"b\"]", b->src, rank + 1);
        else st = add_merge(b, a, na, s.buf, s.len, rank++, err);
    }
    if (!st) st = flush_merges(b, err);
    free(a);
    js_free(&s);
    return st;
}

static cJSON *parse_json_file(const char *path, qv_err *err) {
    char *buf;
    size_t len;
    if (qv_read_file(path, &buf, &len, (size_t)1 << 30, err)) return NULL;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        long off = ep && ep >= buf && ep <= buf + len ? (long)(ep - buf) : -1;
        qv_errf(err, QV_ERR_FORMAT, "%s: not valid JSON (near byte %ld)", path, off);
    } else if (!cJSON_IsObject(root)) {
        qv_errf(err, QV_ERR_FORMAT, "%s: not a JSON object", path);
        cJSON_Delete(root);
        root = NULL;
    }
    free(buf);
    return root;
}

/* Reads the members of the object at s into obj with cJSON, except the keys big1/big2, whose value spans
 * are returned; "model" (when want_model) recurses. 0 = ok. */
typedef struct {
    const char *vocab, *merges;
    size_t vocab_len, merges_len;
} big_spans;

static qv_status scan_object(jscan *s, cJSON *obj, int is_model, big_spans *bs, const char *src, const char *base,
                             qv_err *err) {
    int first = 1, r;
    if (!js_eat(s, '{')) return qv_errf(err, QV_ERR_FORMAT, "%s: %s is not a JSON object", src, is_model ? "model" : "the file");
    while ((r = js_next(s, '}', &first)) == 1) {
        if (!js_string(s) || !js_eat(s, ':')) break;
        char *key = strdup(s->buf);
        if (!key) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
        js_ws(s);
        const char *v0 = s->p;
        qv_status st = QV_OK;
        if (!is_model && strcmp(key, "model") == 0) {
            cJSON *m = cJSON_CreateObject();
            if (!m || !cJSON_AddItemToObject(obj, key, m)) cJSON_Delete(m), st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
            else st = scan_object(s, m, 1, bs, src, base, err);
        } else if (!js_skip(s)) {
            st = qv_errf(err, QV_ERR_FORMAT, "%s: not valid JSON (near byte %ld)", src, (long)(s->p - base));
        } else if (is_model && strcmp(key, "vocab") == 0) {
            bs->vocab = v0, bs->vocab_len = (size_t)(s->p - v0);
        } else if (is_model && strcmp(key, "merges") == 0) {
            bs->merges = v0, bs->merges_len = (size_t)(s->p - v0);
        } else {
            cJSON *item = cJSON_ParseWithLength(v0, (size_t)(s->p - v0));
            if (!item) st = qv_errf(err, QV_ERR_FORMAT, "%s: cannot read \"%.40s\" (near byte %ld)", src, key, (long)(v0 - base));
            else if (!cJSON_AddItemToObject(obj, key, item)) cJSON_Delete(item), st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        }
        free(key);
        if (st) return st;
    }
    if (r != 0) return qv_errf(err, QV_ERR_FORMAT, "%s: not valid JSON (near byte %ld)", src, (long)(s->p - base));
    return QV_OK;
}

static qv_status load_tokenizer_json(builder *b, const char *path, qv_err *err) {
    char *buf;
    size_t len;
    qv_status st = qv_read_file(path, &buf, &len, (size_t)1 << 30, err);
    if (st) return st;
    cJSON *root = cJSON_CreateObject();
    big_spans bs = {0};
    jscan s;
    js_init(&s, buf, len);
    if (!root) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    if (!st) st = scan_object(&s, root, 0, &bs, path, buf, err);
    if (!st) {
        js_ws(&s);
        if (s.p != s.end) st = qv_errf(err, QV_ERR_FORMAT, "%s: text after the JSON object (byte %ld)", path, (long)(s.p - buf));
    }
    js_free(&s);
    if (!st) st = check_pipeline(root, path, err);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!st && !cJSON_IsObject(model)) st = qv_errf(err, QV_ERR_FORMAT, "%s: no \"model\" object", path);
    if (!st) {
        const char *ty = json_type(model);
        const cJSON *pfx = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
        const cJSON *sfx = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
        const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
        if (ty && strcmp(ty, "BPE") != 0)
            st = qv_errf(err, QV_ERR_UNSUPPORTED, "%s: model type %s is not supported (BPE)", path, ty);
        else if ((pfx && !cJSON_IsNull(pfx) && !(cJSON_IsString(pfx) && !*pfx->valuestring)) ||
                 (sfx && !cJSON_IsNull(sfx) && !(cJSON_IsString(sfx) && !*sfx->valuestring)))
            st = qv_errf(err, QV_ERR_UNSUPPORTED, "%s: BPE subword prefix/suffix is not supported", path);
        else if (dr && !cJSON_IsNull(dr) && !(cJSON_IsNumber(dr) && dr->valuedouble == 0))
            st = qv_errf(err, QV_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", path);
        else if (json_flag(model, "byte_fallback"))
            st = qv_errf(err, QV_ERR_UNSUPPORTED, "%s: BPE byte_fallback is not supported", path);
        else if (!bs.vocab) st = qv_errf(err, QV_ERR_FORMAT, "%s: no model.vocab", path);
        else if (!bs.merges) st = qv_errf(err, QV_ERR_FORMAT, "%s: no model.merges", path);
    }
    if (!st) {
        b->t->ignore_merges = json_flag(model, "ignore_merges");
        const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
        if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
            st = qv_errf(err, QV_ERR_FORMAT, "%s: \"added_tokens\" is not a list", path);
        vocab_src vs = {bs.vocab, bs.vocab_len, cJSON_IsArray(added) ? added : NULL, NULL};
        if (!st) st = load_vocab(b, &vs, err);
    }
    if (!st) st = load_merges(b, bs.merges, bs.merges_len, err);
    cJSON_Delete(root);
    free(buf);
    return st;
}

static qv_status load_slow_files(builder *b, const char *dir, qv_err *err) {
    char *pv = qv_path_join(dir, "vocab.json"), *pm = qv_path_join(dir, "merges.txt");
    char *pc = qv_path_join(dir, "tokenizer_config.json");
    cJSON *cfg = NULL;
    char *mtext = NULL, *vtext = NULL;
    size_t mlen = 0, vlen = 0;
    qv_status st = QV_OK;
    if (!pv || !pm || !pc) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    if (!st && !qv_file_exists(pv))
        st = qv_errf(err, QV_ERR_IO, "%s: no tokenizer.json, and no vocab.json + merges.txt either", dir);
    if (!st) st = qv_read_file(pv, &vtext, &vlen, (size_t)1 << 30, err);
    if (!st && !(cfg = parse_json_file(pc, err))) st = err ? err->code : QV_ERR_FORMAT;
    if (!st) st = qv_read_file(pm, &mtext, &mlen, (size_t)1 << 30, err);
    if (!st) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class");
        if (cJSON_IsString(cls) && strcmp(cls->valuestring, "Qwen2Tokenizer") != 0 &&
            strcmp(cls->valuestring, "Qwen2TokenizerFast") != 0)
            st = qv_errf(err, QV_ERR_UNSUPPORTED, "%s: tokenizer_class %s is not supported (Qwen2Tokenizer)", pc,
                         cls->valuestring);
    }
    if (!st) {
        const cJSON *ad = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
        if (ad && !cJSON_IsObject(ad)) st = qv_errf(err, QV_ERR_FORMAT, "%s: added_tokens_decoder is not an object", pc);
        vocab_src vs = {vtext, vlen, NULL, cJSON_IsObject(ad) ? ad : NULL};
        b->src = pv;
        if (!st) st = load_vocab(b, &vs, err);
    }
    if (!st) {
        b->src = pm;
        size_t lines = 1;
        for (size_t i = 0; i < mlen; i++) lines += mtext[i] == '\n';
        st = alloc_merges(b, lines, err);
        uint32_t rank = 0;
        for (size_t i = 0, ln = 0; !st && i < mlen; ln++) {
            char *nl = memchr(mtext + i, '\n', mlen - i);
            size_t e = nl ? (size_t)(nl - mtext) : mlen, s = i;
            i = e + 1;
            while (e > s && (mtext[e - 1] == '\r' || mtext[e - 1] == ' ')) e--;
            if (e == s || (ln == 0 && strncmp(mtext + s, "#version", 8) == 0)) continue;
            st = add_merge_line(b, mtext + s, e - s, rank++, err);
        }
        if (!st) st = flush_merges(b, err);
    }
    cJSON_Delete(cfg);
    free(vtext);
    free(mtext);
    free(pv);
    free(pm);
    free(pc);
    return st;
}


qv_status qv_tok_load(qv_tokenizer **out, const char *path, qv_err *err) {
    if (!out || !path) return qv_errf(err, QV_ERR_INVALID, "qv_tok_load: no path");
    *out = NULL;
    pthread_once(&g_once, init_alphabet);
    qv_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    pthread_mutex_init(&t->cache_mu, NULL);
    builder b;
    memset(&b, 0, sizeof b);
    b.t = t, b.src = path;
    struct stat sb;
    qv_status st;
    if (stat(path, &sb) != 0) {
        st = qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        char *tj = qv_path_join(path, "tokenizer.json");
        if (!tj) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        else if (qv_file_exists(tj)) st = load_tokenizer_json(&b, b.src = tj, err);
        else st = load_slow_files(&b, path, err);
        free(tj);
    } else {
        st = load_tokenizer_json(&b, path, err);
    }
    free(b.tmp);
    free(b.tmp2);
    free(b.pbuf);
    if (!st && t->n_added > 1) qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);
    if (!st) {
        t->cache = calloc((size_t)1 << TOK_CACHE_BITS, sizeof *t->cache); /* optional: NULL = no cache */
        *out = t;
    } else {
        qv_tok_free(t);
    }
    return st;
}

void qv_tok_free(qv_tokenizer *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->cache_mu);
    free(t->ent);
    free(t->strs);
    free(t->raw);
    free(t->vmap);
    free(t->mmap);
    free(t->added);
    free(t->cache);
    free(t);
}

int qv_tok_vocab_size(const qv_tokenizer *t) { return t ? t->n_ids : 0; }

int qv_tok_id(const qv_tokenizer *t, const char *token, size_t len) {
    if (!t || !token) return -1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->strs + t->added[i].str_off, token, len) == 0) return t->added[i].id;
    uint8_t buf[1024];
    size_t rl;
    if (len > sizeof buf || !bl_to_raw(token, len, buf, &rl)) return -1;
    return tok_vocab_find(t, buf, rl);
}

const char *qv_tok_str(const qv_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_ids || !t->ent[id].present) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->ent[id].str_len;
    return t->strs + t->ent[id].str_off;
}

int qv_tok_is_special(const qv_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_ids && t->ent[id].special;
}
