/* fixture_tokenizer_stream.c — the streaming decoder of the real Qwen2-VL tokenizer: characters split
 * across tokens (byte tokens of 2-, 3- and 4-byte UTF-8; the golden cases' rare CJK and emoji) come out
 * only whole; every piece is valid UTF-8; the concatenated pieces equal the one-shot decode, with and
 * without special tokens; a broken tail becomes U+FFFD at flush; a small output buffer loses nothing. */
#define _GNU_SOURCE /* memmem */
#include "test.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <utf8proc.h>

static int valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0) return 0;
        i += (size_t)l;
    }
    return 1;
}

/* id of the token for one raw byte (byte-level alphabet written out from GPT-2's bytes_to_unicode) */
static int32_t byte_token(const qv_tokenizer *t, int b) {
    int direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    uint32_t cp = b;
    if (!direct) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
        cp = 256 + (uint32_t)k;
    }
    uint8_t s[4];
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, s);
    return qv_tok_id(t, (const char *)s, (size_t)n);
}

/* streams ids with output buffers of `cap` bytes; checks pieces, returns the concatenation */
static size_t stream_all(const qv_tokenizer *t, const int32_t *ids, size_t n, int skip, size_t cap, char *acc,
                         int *pieces_ok) {
    qv_tok_stream *s = qv_tok_stream_create(t, skip);
    char piece[4096];
    size_t na = 0;
    *pieces_ok = s != NULL;
    for (size_t i = 0; s; i++) { /* flushes until empty: they drain what a small buffer held back */
        size_t m = i < n ? qv_tok_stream_push(s, ids[i], piece, cap) : qv_tok_stream_flush(s, piece, cap);
        if (m >= cap || piece[m] != 0 || !valid_utf8(piece, m)) *pieces_ok = 0;
        memcpy(acc + na, piece, m);
        na += m;
        if (i >= n && m == 0) break;
    }
    acc[na] = 0;
    qv_tok_stream_free(s);
    return na;
}

static void check_ids(const qv_tokenizer *t, const int32_t *ids, size_t n, const char *what) {
    static char full[1 << 16], acc[1 << 16];
    for (int skip = 0; skip < 2; skip++) {
        size_t fl = qv_tok_decode(t, ids, n, skip, full, sizeof full);
        size_t caps[] = {1024, 5}; /* 5: room for any one character */
        for (int c = 0; c < 2; c++) {
            int ok;
            size_t al = stream_all(t, ids, n, skip, caps[c], acc, &ok);
            CHECK_MSG(ok, "[%s] pieces not whole UTF-8 (skip=%d cap=%zu)", what, skip, caps[c]);
            CHECK_MSG(al == fl && memcmp(acc, full, fl) == 0, "[%s] stream != decode (skip=%d cap=%zu)", what, skip,
                      caps[c]);
        }
    }
}

int main(void) {
    char *model = test_fixture("models/tiny-qwen2vl");
    qv_tokenizer *t = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_tok_load(&t, model, &err) == QV_OK, "load: %s", err.msg);
    if (!t) return test_done();

    /* a 2-byte character over two byte tokens: nothing after the first, the whole character after the second */
    int32_t c3 = byte_token(t, 0xC3), a9 = byte_token(t, 0xA9), A = byte_token(t, 'A');
    CHECK(c3 >= 0 && a9 >= 0 && A >= 0);
    qv_tok_stream *s = qv_tok_stream_create(t, 0);
    char out[64];
    CHECK(qv_tok_stream_push(s, c3, out, sizeof out) == 0 && out[0] == 0);
    CHECK(qv_tok_stream_push(s, a9, out, sizeof out) == 2 && strcmp(out, "\xc3\xa9") == 0);
    /* a lead byte followed by ASCII: U+FFFD then the letter, at once */
    CHECK(qv_tok_stream_push(s, c3, out, sizeof out) == 0);
    CHECK(qv_tok_stream_push(s, A, out, sizeof out) == 4 && strcmp(out, "\xef\xbf\xbd" "A") == 0);
    /* an unfinished 3-byte sequence at the end: one U+FFFD at flush */
    CHECK(qv_tok_stream_push(s, byte_token(t, 0xE4), out, sizeof out) == 0);
    CHECK(qv_tok_stream_push(s, byte_token(t, 0xB8), out, sizeof out) == 0);
    CHECK(qv_tok_stream_flush(s, out, sizeof out) == 3 && strcmp(out, "\xef\xbf\xbd") == 0);
    CHECK(qv_tok_stream_flush(s, out, sizeof out) == 0);
    /* a 4-byte emoji byte by byte, into a 3-byte buffer: it cannot fit, so nothing is lost or split */
    const uint8_t emo[4] = {0xF0, 0x9F, 0x91, 0x8D};
    for (int i = 0; i < 4; i++) CHECK(qv_tok_stream_push(s, byte_token(t, emo[i]), out, 3) == 0);
    CHECK(qv_tok_stream_flush(s, out, sizeof out) == 4 && memcmp(out, emo, 4) == 0);
    /* specials are dropped with skip_special, kept without */
    qv_tok_stream *s2 = qv_tok_stream_create(t, 1);
    CHECK(qv_tok_stream_push(s2, 151644, out, sizeof out) == 0);
    CHECK(qv_tok_stream_push(s, 151644, out, sizeof out) == 12 && strcmp(out, "<|im_start|>") == 0);
    qv_tok_stream_free(s2);
    qv_tok_stream_free(s);
    qv_tok_stream_free(NULL);

    /* every golden case (their ids, from HF): streamed == decoded, pieces whole */
    char *gpath = test_fixture("golden/tokenizer.json");
    char *buf;
    size_t len;
    if (qv_read_file(gpath, &buf, &len, 0, &err) == QV_OK) {
        cJSON *g = cJSON_ParseWithLength(buf, len);
        const cJSON *c;
        int k = 0, split_seen = 0;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
            int32_t ids[4096];
            size_t n = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, cJSON_GetObjectItem(c, "ids")) ids[n++] = x->valueint;
            char what[32];
            snprintf(what, sizeof what, "golden %d", k++);
            check_ids(t, ids, n, what);
            for (size_t i = 0; i < n; i++) { /* a token that is not whole UTF-8 by itself */
                char one[64];
                size_t m = qv_tok_decode(t, &ids[i], 1, 0, one, sizeof one);
                if (memmem(one, m, "\xef\xbf\xbd", 3)) split_seen++;
            }
        }
        CHECK_MSG(split_seen > 10, "the golden cases split characters across tokens (%d seen)", split_seen);
        cJSON_Delete(g);
        free(buf);
    }
    free(gpath);

    /* random id sequences, byte tokens and specials mixed in */
    uint64_t rng = 12345;
    for (int it = 0; it < 300; it++) {
        int32_t ids[200];
        size_t n = 0;
        for (int i = 0; i < 200; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            uint32_t r = (uint32_t)(rng >> 20);
            if (r % 4 == 0) ids[n++] = byte_token(t, (uint8_t)(0x80 + (r >> 4) % 0x80));
            else if (r % 17 == 1) ids[n++] = 151643 + (int32_t)((r >> 4) % 14);
            else ids[n++] = (int32_t)((r >> 4) % 151643);
        }
        check_ids(t, ids, n, "random");
    }
    qv_tok_free(t);
    free(model);
    return test_done();
}
