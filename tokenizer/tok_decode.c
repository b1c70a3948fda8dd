/* tok_decode.c — ids -> UTF-8 text, in one go or streamed token by token during generation.
 * As HF's ByteLevel decoder: token strings map back to bytes, and the byte string is made valid UTF-8 the
 * way Rust's String::from_utf8_lossy does it (each maximal invalid subpart becomes one U+FFFD). Unknown ids
 * are skipped; skip_special drops special added tokens. Both paths run the same byte-at-a-time UTF-8
 * machine, so a stream's concatenated output always equals the one-shot decode. */
#include "tok_internal.h"
#include "buf.h"

#include <stdlib.h>
#include <string.h>

/* incremental UTF-8 repair: holds an incomplete but so far valid sequence */
typedef struct {
    uint8_t pend[4];
    int npend, need; /* bytes held, total length of the sequence they start */
} utf8_fix;

typedef struct {
    char *out;
    size_t cap, len; /* len counts every byte produced, written or not */
} sink;

static inline void sink_put(sink *k, const void *p, size_t n) {
    if (k->out && k->len < k->cap) {
        size_t room = k->cap - k->len;
        memcpy(k->out + k->len, p, n < room ? n : room);
    }
    k->len += n;
}

static const uint8_t k_fffd[3] = {0xEF, 0xBF, 0xBD};

/* allowed range of the byte after lead b */
static inline int second_ok(uint8_t lead, uint8_t c) {
    switch (lead) {
    case 0xE0: return c >= 0xA0 && c <= 0xBF;
    case 0xED: return c >= 0x80 && c <= 0x9F;
    case 0xF0: return c >= 0x90 && c <= 0xBF;
    case 0xF4: return c >= 0x80 && c <= 0x8F;
    default: return c >= 0x80 && c <= 0xBF;
    }
}

static void fix_byte(utf8_fix *f, uint8_t b, sink *k) {
    if (f->npend) {
        int ok = f->npend == 1 ? second_ok(f->pend[0], b) : (b & 0xC0) == 0x80;
        if (ok) {
            f->pend[f->npend++] = b;
            if (f->npend == f->need) {
                sink_put(k, f->pend, (size_t)f->need);
                f->npend = 0;
            }
            return;
        }
        sink_put(k, k_fffd, 3); /* the maximal subpart so far; b starts afresh */
        f->npend = 0;
    }
    if (b < 0x80) { sink_put(k, &b, 1); return; }
    int need = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    if (!need) { sink_put(k, k_fffd, 3); return; }
    f->pend[0] = b;
    f->npend = 1;
    f->need = need;
}

static void fix_bytes(utf8_fix *f, const uint8_t *p, size_t n, sink *k) {
    for (size_t i = 0; i < n; i++) {
        if (!f->npend && p[i] < 0x80) { /* run of ASCII */
            size_t j = i;
            while (j < n && p[j] < 0x80) j++;
            sink_put(k, p + i, j - i);
            i = j - 1;
            continue;
        }
        fix_byte(f, p[i], k);
    }
}

static void fix_flush(utf8_fix *f, sink *k) {
    if (f->npend) sink_put(k, k_fffd, 3);
    f->npend = 0;
}

/* the bytes of one id, or NULL when it is skipped */
static const uint8_t *id_bytes(const qv_tokenizer *t, int32_t id, int skip_special, size_t *n) {
    if (id < 0 || id >= t->n_ids || !t->ent[id].present) return NULL;
    const tok_entry *e = &t->ent[id];
    if (skip_special && e->special) return NULL;
    *n = e->raw_len;
    return t->raw + e->raw_off;
}

size_t qv_tok_decode(const qv_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char *out, size_t cap) {
    sink k = {out, cap ? cap - 1 : 0, 0};
    if (!cap) k.out = NULL;
    utf8_fix f = {{0}, 0, 0};
    for (size_t i = 0; t && ids && i < n; i++) {
        size_t m;
        const uint8_t *p = id_bytes(t, ids[i], skip_special, &m);
        if (p) fix_bytes(&f, p, m, &k);
    }
    fix_flush(&f, &k);
    if (out && cap) out[k.len < cap - 1 ? k.len : cap - 1] = 0;
    return k.len;
}

/* ---- streaming ---- */
struct qv_tok_stream {
    const qv_tokenizer *t;
    int skip_special;
    utf8_fix fix;
    char *hold; /* complete text not yet handed out (when a caller's buffer was too small) */
    size_t nhold, caphold;
};

qv_tok_stream *qv_tok_stream_create(const qv_tokenizer *t, int skip_special) {
    if (!t) return NULL;
    qv_tok_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->skip_special = skip_special;
    return s;
}

void qv_tok_stream_free(qv_tok_stream *s) {
    if (!s) return;
    free(s->hold);
    free(s);
}

/* make room for n more bytes in hold; 0 on OOM */
static int hold_reserve(qv_tok_stream *s, size_t n) {
    return qv_grow((void **)&s->hold, &s->caphold, s->nhold + n);
}

/* hands out as much held text as fits in out (cap - 1 bytes), cut at a character boundary */
static size_t hand_out(qv_tok_stream *s, char *out, size_t cap) {
    if (!out || !cap) return 0;
    size_t n = s->nhold < cap - 1 ? s->nhold : cap - 1;
    if (n < s->nhold)
        while (n > 0 && ((uint8_t)s->hold[n] & 0xC0) == 0x80) n--; /* do not split a character */
    if (n) {
        memcpy(out, s->hold, n);
        memmove(s->hold, s->hold + n, s->nhold - n);
    }
    out[n] = 0;
    s->nhold -= n;
    return n;
}

size_t qv_tok_stream_push(qv_tok_stream *s, int32_t id, char *out, size_t cap) {
    if (out && cap) out[0] = 0;
    if (!s) return 0;
    size_t m;
    const uint8_t *p = id_bytes(s->t, id, s->skip_special, &m);
    if (p) {
        /* worst case: each byte plus the held tail becomes U+FFFD */
        if (!hold_reserve(s, 3 * (m + 4))) return hand_out(s, out, cap);
        sink k = {s->hold + s->nhold, 3 * (m + 4), 0};
        fix_bytes(&s->fix, p, m, &k);
        s->nhold += k.len;
    }
    return hand_out(s, out, cap);
}

size_t qv_tok_stream_take(qv_tok_stream *s, char *out, size_t cap) {
    if (out && cap) out[0] = 0;
    return s ? hand_out(s, out, cap) : 0;
}

size_t qv_tok_stream_flush(qv_tok_stream *s, char *out, size_t cap) {
    if (out && cap) out[0] = 0;
    if (!s) return 0;
    if (hold_reserve(s, 3)) {
        sink k = {s->hold + s->nhold, 3, 0};
        fix_flush(&s->fix, &k);
        s->nhold += k.len;
    }
    return hand_out(s, out, cap);
}
