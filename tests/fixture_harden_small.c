/* fixture_harden_small.c — the smaller findings of issue 12 (finding 10), each as its class:
 *  - a token longer than any output buffer streams out whole (qv_tok_stream_take after push/flush; the
 *    engine used to hand out one buffer of it and drop the rest at the end);
 *  - a safetensors file without tensors opens (qsort(NULL, 0) under UBSan), one whose tensor is not
 *    aligned to its element size is refused (misaligned bf16 loads), and the writer aligns every tensor;
 *  - --pixel-values grids whose sizes multiply past the row count are refused without a signed overflow;
 *  - terminal text: control bytes and C1 controls come out escaped. */
#include "test.h"
#include "tokenizer.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

/* a safetensors file from a header text and n data bytes (the header is not padded) */
static void write_st(const char *path, const char *hdr, size_t n_data) {
    size_t hl = strlen(hdr);
    unsigned char *buf = calloc(1, 8 + hl + n_data);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    write_bytes(path, buf, 8 + hl + n_data);
    free(buf);
}

int main(void) {
    qv_err err = {0};
    char *dir = test_tmp("small");
    mkdir(dir, 0755);

    /* a long token: the fixture tokenizer with one added token of 4000 bytes */
    char *tj = test_fixture("models/tiny-qwen2vl/tokenizer.json"), *text = NULL;
    size_t len = 0;
    CHECK(qv_read_file(tj, &text, &len, 0, &err) == QV_OK);
    const char *at = text ? strstr(text, "\"added_tokens\": [") : NULL;
    if (!at && text) at = strstr(text, "\"added_tokens\":[");
    CHECK(at != NULL);
    if (at) {
        const char *open = strchr(at, '[') + 1;
        size_t long_len = 4000;
        char *tok = malloc(long_len + 1);
        for (size_t i = 0; i < long_len; i++) tok[i] = (char)('a' + i % 26);
        tok[long_len] = 0;
        size_t cap = len + long_len + 256;
        char *mod = malloc(cap);
        int k = snprintf(mod, cap, "%.*s{\"id\": 151900, \"content\": \"%s\", \"single_word\": false, \"lstrip\": false, "
                                   "\"rstrip\": false, \"normalized\": false, \"special\": false},%s",
                         (int)(open - text), text, tok, open);
        char *tp = qv_path_join(dir, "tokenizer.json");
        write_bytes(tp, mod, (size_t)k);
        qv_tokenizer *t = NULL;
        CHECK_MSG(qv_tok_load(&t, tp, &err) == QV_OK, "%s", err.msg);
        if (t) {
            qv_tok_stream *s = qv_tok_stream_create(t, 1);
            char piece[1100], *all = calloc(1, 3 * long_len);
            size_t n = 0;
            const int32_t ids[3] = {151900, 151900, 9707};
            for (int i = 0; i < 3; i++)
                for (size_t got = qv_tok_stream_push(s, ids[i], piece, sizeof piece); got; got = qv_tok_stream_take(s, piece, sizeof piece))
                    memcpy(all + n, piece, got), n += got;
            for (size_t got = qv_tok_stream_flush(s, piece, sizeof piece); got; got = qv_tok_stream_take(s, piece, sizeof piece))
                memcpy(all + n, piece, got), n += got;
            size_t ref_len = 0;
            char ref[12000];
            ref_len = qv_tok_decode(t, ids, 3, 1, ref, sizeof ref);
            CHECK_MSG(n == ref_len && n > 2 * long_len && !memcmp(all, ref, n), "streamed %zu bytes, decode gives %zu", n, ref_len);
            qv_tok_stream_free(s);
            free(all);
            qv_tok_free(t);
        }
        free(tp);
        free(mod);
        free(tok);
    }
    free(text);
    free(tj);

    /* safetensors: no tensors (qsort of nothing), a misaligned tensor, and the writer's alignment */
    char *p = qv_path_join(dir, "x.safetensors");
    qv_st *st = NULL;
    write_st(p, "{\"__metadata__\":{\"format\":\"pt\"}}", 0);
    CHECK_MSG(qv_st_open(&st, p, &err) == QV_OK && qv_st_count(st) == 0, "%s", err.msg);
    qv_st_free(st);
    write_st(p, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8); /* 55-byte header: odd start */
    { qv_status r_ = qv_st_open(&st, p, &err); CHECK_MSG(r_ == QV_ERR_FORMAT && strstr(err.msg, "not aligned"), "rc %d n %d: %s", r_, r_ ? -1 : qv_st_count(st), err.msg); }
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} ", 8);   /* odd header length */
    CHECK_MSG(qv_st_open(&st, p, &err) == QV_ERR_FORMAT && strstr(err.msg, "not aligned"), "%s", err.msg);
    uint8_t u8[3] = {1, 2, 3};
    uint16_t b16[3] = {1, 2, 3};
    float f32[3] = {1, 2, 3};
    int64_t i64[1] = {7};
    qv_tensor ts[4] = {
        {.name = "u8", .dtype = QV_U8, .ndim = 1, .shape = {3}, .data = u8, .nbytes = 3},
        {.name = "bf16", .dtype = QV_BF16, .ndim = 1, .shape = {3}, .data = b16, .nbytes = 6},
        {.name = "f32", .dtype = QV_F32, .ndim = 1, .shape = {3}, .data = f32, .nbytes = 12},
        {.name = "i64", .dtype = QV_I64, .ndim = 1, .shape = {1}, .data = i64, .nbytes = 8},
    };
    CHECK_MSG(qv_st_write(p, ts, 4, NULL, &err) == QV_OK, "%s", err.msg);
    CHECK_MSG(qv_st_open(&st, p, &err) == QV_OK, "%s", err.msg);
    if (st) {
        for (int i = 0; i < qv_st_count(st); i++) {
            const qv_tensor *t = qv_st_at(st, i);
            CHECK_MSG((uintptr_t)t->data % qv_dtype_size(t->dtype) == 0, "%s misaligned", t->name);
        }
        const qv_tensor *t = qv_st_get(st, "f32");
        CHECK(t && !memcmp(t->data, f32, 12));
        qv_st_free(st);
    }

    /* --pixel-values: grids whose products add up past int64 (2^20 rows of 2^20 x 2^14 x 2^14) */
    int64_t *grid = malloc(sizeof(int64_t) * 3 * 4096);
    for (int i = 0; i < 4096; i++) grid[3 * i] = 1 << 20, grid[3 * i + 1] = 1 << 14, grid[3 * i + 2] = 1 << 14;
    static float px[4 * 1176];
    qv_tensor pv[2] = {
        {.name = "pixel_values", .dtype = QV_F32, .ndim = 2, .shape = {4, 1176}, .data = px, .nbytes = sizeof px},
        {.name = "image_grid_thw", .dtype = QV_I64, .ndim = 2, .shape = {4096, 3}, .data = grid, .nbytes = sizeof(int64_t) * 3 * 4096},
    };
    char *pvp = qv_path_join(dir, "pv.safetensors");
    CHECK(qv_st_write(pvp, pv, 2, NULL, &err) == QV_OK);
    free(grid);
    char cmd[4096], *model = test_fixture("models/tiny-qwen2vl"), *errp = qv_path_join(dir, "err.txt");
    const char *qv = getenv("QV_BIN") ? getenv("QV_BIN") : "build/qv";
    snprintf(cmd, sizeof cmd, "'%s' ask --model '%s' --pixel-values '%s' --raw '{{image:x.png}}Hi' --max-tokens 1 2>'%s' >/dev/null",
             qv, model, pvp, errp);
    int rc = system(cmd);
    char *msg = test_slurp(errp);
    CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && msg && strstr(msg, "imply more than"), "rc %d: %s", rc, msg ? msg : "");
    free(msg);
    free(errp);
    free(model);
    free(pvp);

    /* terminal text */
    char out[64];
    CHECK(!strcmp(qv_term_safe("a\033[31mb\x07\xc2\x9b" "c\xc3\xa9", out, sizeof out), "a\\x1b[31mb\\x07\\u009bc\xc3\xa9"));
    CHECK(!strcmp(qv_term_safe("\xc3\xa9\xc3\xa9", out, 4), "\xc3\xa9")); /* cut between characters */
    free(p);
    free(dir);
    return test_done();
}
