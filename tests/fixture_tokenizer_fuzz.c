/* fixture_tokenizer_fuzz.c — random inputs through the real Qwen2-VL tokenizer (run it under ASan+UBSan too):
 *  - random bytes (biased towards UTF-8 lead/continuation bytes, NUL, newlines, '<', '|', apostrophes) and
 *  - random valid UTF-8 (combining marks, Hangul jamo, CJK, emoji, every kind of space, contractions,
 *    special-token texts and fragments of them).
 * Properties: encode never fails, every id is valid; decode(encode(x)) equals x with each stretch between
 * special tokens NFC-normalized on its own (utf8proc, whole stretch at once — the tokenizer only touches
 * regions around non-quick-check characters) and then made valid UTF-8 with maximal-subpart U+FFFD (a
 * reference written here from the Unicode definition, not the library's). With skip_special the specials
 * drop out. The heap BPE (long words) and the array BPE (short words) give the same ids on every input. */
#include "test.h"
#include "tok_internal.h"
#include "tokenizer.h"

#include <utf8proc.h>

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint32_t rnd(uint32_t n) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)((g_rng >> 11) % n);
}

static const char *k_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                                   "<|vision_end|>", "<|video_pad|>", "<|image_pad|>", "<|box_start|>"};
static const char *k_frags[] = {"<|im_", "|>", "<|", "im_start", "<|endoftext", "<|video_pad", "'s", "'LL", "'ſ",
                                "'re", "'Ve", "don't", "\r\n", "  \n", " \t", "e\xcc\x81", "\xe1\x84\x80\xe1\x85\xa1"};
#define NSPEC (int)(sizeof k_specials / sizeof k_specials[0])
#define NFRAG (int)(sizeof k_frags / sizeof k_frags[0])

/* ---- reference: maximal-subpart lossy UTF-8 (Unicode 3.9, U+FFFD substitution of maximal subparts) ---- */
static int valid_prefix(const uint8_t *p, size_t m) {
    /* is p[0..m) the start of some well-formed sequence? try completions with boundary continuation bytes */
    static const uint8_t fill[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF};
    for (size_t total = m; total <= 4; total++) {
        uint8_t b[4];
        memcpy(b, p, m);
        size_t rest = total - m, combos = 1;
        for (size_t i = 0; i < rest; i++) combos *= 6;
        for (size_t c = 0; c < combos; c++) {
            size_t x = c;
            for (size_t i = 0; i < rest; i++) b[m + i] = fill[x % 6], x /= 6;
            utf8proc_int32_t cp;
            if (utf8proc_iterate(b, (utf8proc_ssize_t)total, &cp) == (utf8proc_ssize_t)total) return 1;
        }
    }
    return 0;
}

static size_t ref_lossy(const uint8_t *s, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l > 0) {
            memcpy(out + o, s + i, (size_t)l);
            o += (size_t)l, i += (size_t)l;
            continue;
        }
        size_t k = 1;
        while (i + k < n && k < 4 && valid_prefix(s + i, k + 1)) k++;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3, i += k;
    }
    return o;
}

/* NFC of each maximal valid run, invalid bytes kept (the tokenizer's documented behaviour) */
static size_t ref_nfc(const uint8_t *s, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        size_t r = i;
        utf8proc_int32_t cp;
        utf8proc_ssize_t l;
        while (r < n && (l = utf8proc_iterate(s + r, (utf8proc_ssize_t)(n - r), &cp)) > 0) r += (size_t)l;
        if (r > i) {
            utf8proc_uint8_t *m = NULL;
            utf8proc_ssize_t ml = utf8proc_map(s + i, (utf8proc_ssize_t)(r - i), &m, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (ml >= 0) memcpy(out + o, m, (size_t)ml), o += (size_t)ml;
            free(m);
        }
        if (r < n) out[o++] = s[r++];
        i = r;
    }
    return o;
}

/* expected decode: stretches NFC'd, specials found leftmost-longest on the raw text */
static size_t expected(const uint8_t *s, size_t n, int skip, uint8_t *tmp, uint8_t *out) {
    size_t o = 0, i = 0;
    while (i <= n) {
        size_t best = n, blen = 0;
        for (int k = 0; k < NSPEC; k++) {
            size_t L = strlen(k_specials[k]);
            for (size_t j = i; j + L <= n && j <= best; j++)
                if (memcmp(s + j, k_specials[k], L) == 0) {
                    if (j < best || L > blen) best = j, blen = L;
                    break;
                }
        }
        o += ref_nfc(s + i, best - i, tmp + o);
        if (best == n) break;
        if (!skip) memcpy(tmp + o, s + best, blen), o += blen;
        i = best + blen;
    }
    return ref_lossy(tmp, o, out);
}

static void append_cp(uint8_t *b, size_t *n, int32_t cp) {
    *n += (size_t)utf8proc_encode_char(cp, b + *n);
}

static int32_t random_cp(void) {
    static const int32_t spaces[] = {' ', '\t', '\n', '\r', 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x2000, 0x2007, 0x200A,
                                     0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x200B, 0xFEFF, 0x180E, 0x1C, 0};
    switch (rnd(14)) {
    case 0: case 1: case 2: return 0x20 + (int32_t)rnd(95);                       /* ASCII */
    case 3: return spaces[rnd(sizeof spaces / sizeof spaces[0])];
    case 4: return 0x300 + (int32_t)rnd(0x70);                                   /* combining marks */
    case 5: return 0xA0 + (int32_t)rnd(0x1E0);                                   /* Latin-1, Latin Extended */
    case 6: {                                                                    /* Hangul jamo L/V/T, syllables */
        static const int32_t base[] = {0x1100, 0x1161, 0x11A8, 0xAC00};
        static const int32_t span[] = {19, 21, 27, 11172};
        int k = (int)rnd(4);
        return base[k] + (int32_t)rnd((uint32_t)span[k]);
    }
    case 7: return 0x4E00 + (int32_t)rnd(0x5200);                                /* CJK */
    case 8: return 0x3040 + (int32_t)rnd(0xC0);                                  /* kana, 3099/309A included */
    case 9: return 0x1F300 + (int32_t)rnd(0x300);                                /* emoji */
    case 10: return 0x370 + (int32_t)rnd(0x100);                                 /* Greek, Cyrillic */
    case 11: return 0x900 + (int32_t)rnd(0x80);                                  /* Devanagari */
    case 12: return 0x2000 + (int32_t)rnd(0x300);                                /* punctuation, symbols */
    default: {                                                                   /* any scalar value */
        int32_t cp;
        do cp = (int32_t)rnd(0x110000); while (cp >= 0xD800 && cp <= 0xDFFF);
        return cp;
    }
    }
}

static size_t gen_bytes(uint8_t *b, size_t max) {
    size_t n = rnd((uint32_t)max);
    static const uint8_t pool[] = {0, '\n', '\r', ' ', '<', '|', '\'', 's', 'a', 0x80, 0xBF, 0xC2, 0xC3, 0xE0, 0xE4,
                                   0xED, 0xF0, 0xF4, 0xF5, 0xFF, 0xA0, 0x9F, 0xCC, 0x81};
    for (size_t i = 0; i < n; i++) b[i] = rnd(3) ? (uint8_t)rnd(256) : pool[rnd(sizeof pool)];
    return n;
}

static size_t gen_utf8(uint8_t *b, size_t max_cps, int specials) {
    size_t n = 0, k = rnd((uint32_t)max_cps);
    for (size_t i = 0; i < k; i++) {
        uint32_t r = rnd(20);
        if (specials && r == 0) {
            const char *s = k_specials[rnd(NSPEC)];
            memcpy(b + n, s, strlen(s)), n += strlen(s);
        } else if (r == 1) {
            const char *s = k_frags[rnd(NFRAG)];
            memcpy(b + n, s, strlen(s)), n += strlen(s);
        } else {
            append_cp(b, &n, random_cp());
        }
    }
    return n;
}

static uint8_t g_in[1 << 16], g_tmp[1 << 17], g_exp[1 << 18];
static char g_out[1 << 18];

static void check_one(const qv_tokenizer *tok, const uint8_t *s, size_t n, const char *what, int iter) {
    int32_t *ids = NULL, *ids2 = NULL;
    size_t nid = 0, nid2 = 0;
    qv_err err = {0};
    int ok = qv_tok_encode(tok, (const char *)s, n, &ids, &nid, &err) == QV_OK;
    CHECK_MSG(ok, "[%s %d] encode failed: %s", what, iter, err.msg);
    if (!ok) return;
    int in_range = 1;
    for (size_t i = 0; i < nid; i++) in_range &= qv_tok_str(tok, ids[i], NULL) != NULL;
    CHECK_MSG(in_range, "[%s %d] an id without a token", what, iter);
    size_t def = tok_bpe_heap_threshold;
    for (int path = 0; path < 2; path++) { /* every word through the heap BPE, then through the array BPE */
        tok_bpe_heap_threshold = path ? SIZE_MAX : 0;
        ok = qv_tok_encode(tok, (const char *)s, n, &ids2, &nid2, &err) == QV_OK;
        CHECK_MSG(ok && nid2 == nid && memcmp(ids, ids2, nid * sizeof *ids) == 0, "[%s %d] %s BPE differs", what, iter,
                  path ? "array" : "heap");
        free(ids2);
        ids2 = NULL;
    }
    tok_bpe_heap_threshold = def;
    for (int skip = 0; skip < 2; skip++) {
        size_t el = expected(s, n, skip, g_tmp, (uint8_t *)g_exp);
        size_t dl = qv_tok_decode(tok, ids, nid, skip, g_out, sizeof g_out);
        int same = dl == el && memcmp(g_out, g_exp, el) == 0;
        CHECK_MSG(same, "[%s %d] decode(encode(x)) (skip=%d) != expected (%zu vs %zu bytes)", what, iter, skip, dl, el);
        if (!same) {
            fprintf(stderr, "  input:");
            for (size_t i = 0; i < n && i < 80; i++) fprintf(stderr, " %02x", s[i]);
            fprintf(stderr, "\n");
        }
    }
    free(ids);
    free(ids2);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1500;
    char *model = test_fixture("models/tiny-qwen2vl");
    qv_tokenizer *tok = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_tok_load(&tok, model, &err) == QV_OK, "load: %s", err.msg);
    if (!tok) return test_done();

    for (int it = 0; it < rounds; it++) check_one(tok, g_in, gen_bytes(g_in, 300), "bytes", it);
    for (int it = 0; it < rounds; it++) check_one(tok, g_in, gen_utf8(g_in, 120, 0), "utf8", it);
    for (int it = 0; it < rounds; it++) check_one(tok, g_in, gen_utf8(g_in, 120, 1), "utf8+specials", it);
    /* long words (the heap BPE by default), long space runs, one long NFC region */
    size_t n = 0;
    for (int i = 0; i < 3000; i++) g_in[n++] = "ab"[rnd(2)];
    check_one(tok, g_in, n, "long latin", 0);
    n = 0;
    for (int i = 0; i < 3000; i++) append_cp(g_in, &n, 0x4E00 + (int32_t)rnd(0x5200));
    check_one(tok, g_in, n, "long CJK", 0);
    n = 0;
    for (int i = 0; i < 4000; i++) g_in[n++] = " \t\n"[rnd(3)];
    check_one(tok, g_in, n, "spaces", 0);
    n = 0;
    for (int i = 0; i < 3000; i++) append_cp(g_in, &n, rnd(2) ? 'e' : 0x301 + (int32_t)rnd(3));
    check_one(tok, g_in, n, "marks", 0);
    /* the sum: random valid UTF-8 without specials: decode(encode(x)) == NFC(x) is one of the cases above;
     * state it once more plainly for a fixed string with NUL and marks */
    static const char nul_text[] = "a\0b e\xcc\x81 \xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8\0";
    check_one(tok, (const uint8_t *)nul_text, sizeof nul_text - 1, "nul", 0);
    qv_tok_free(tok);
    free(model);
    return test_done();
}
