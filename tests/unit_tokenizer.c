/* unit_tokenizer.c — the tokenizer loader against small hand-made tokenizer files (written to $QV_TMP):
 * a valid one (256 byte tokens + a few merges + added tokens) encodes as BPE by rank should, and every
 * hostile variant (bad or truncated JSON, no model, ids out of range, unknown normalizer/pre-tokenizer/
 * model types, bad merges, unsupported added-token flags, deep nesting) fails with a clear error, never a
 * crash. No fixtures needed. */
#include "test.h"
#include "tokenizer.h"

#include <sys/stat.h>

static const char k_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|"
    "\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";

/* byte -> byte-level character, as JSON string text */
static void bl_char(int b, char *out) {
    int direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!direct) {
        int k = 0;
        for (int x = 0; x < b; x++) k += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
        cp = 256 + k;
    }
    if (cp == '"' || cp == '\\') sprintf(out, "\\%c", cp);
    else if (cp < 0x80) sprintf(out, "%c", cp);
    else sprintf(out, "\\u%04x", cp);
}

typedef struct {
    const char *normalizer, *pattern, *model_type, *extra_vocab, *merges, *added;
} spec;

static char *make_json(const spec *s) {
    size_t cap = 1 << 16, n = 0;
    char *j = malloc(cap);
    n += (size_t)snprintf(j + n, cap - n,
                          "{\"version\":\"1.0\",\"added_tokens\":[%s],\"normalizer\":%s,"
                          "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                          "{\"Regex\":\"%s\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                          "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
                          "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"%s\",\"vocab\":{",
                          s->added ? s->added : "", s->normalizer ? s->normalizer : "{\"type\":\"NFC\"}",
                          s->pattern ? s->pattern : k_pattern, s->model_type ? s->model_type : "BPE");
    for (int b = 0; b < 256; b++) {
        char c[16];
        bl_char(b, c);
        n += (size_t)snprintf(j + n, cap - n, "%s\"%s\":%d", b ? "," : "", c, b);
    }
    /* merged tokens: "ab" 256, "abc" 257, "Ġa" 258 (\u0120 = byte-level space) */
    n += (size_t)snprintf(j + n, cap - n, ",\"ab\":256,\"abc\":257,\"\\u0120a\":258%s},\"merges\":%s}}",
                          s->extra_vocab ? s->extra_vocab : "",
                          s->merges ? s->merges : "[\"a b\",[\"ab\",\"c\"],\"\\u0120 a\"]");
    return j;
}

static char *g_path;

static qv_status load_text(const char *text, size_t len, qv_tokenizer **t, qv_err *err) {
    qv_err e2 = {0};
    qv_write_file_atomic(g_path, text, len, &e2);
    *t = NULL;
    memset(err, 0, sizeof *err);
    return qv_tok_load(t, g_path, err);
}

static void expect_fail(const spec *s, qv_status want, const char *needle, const char *what) {
    char *j = make_json(s);
    qv_tokenizer *t;
    qv_err err;
    qv_status st = load_text(j, strlen(j), &t, &err);
    CHECK_MSG(st == want && t == NULL && strstr(err.msg, g_path) && strstr(err.msg, needle),
              "%s: status %d (want %d), message '%s'", what, st, want, err.msg);
    qv_tok_free(t);
    free(j);
}

static int encode_is(const qv_tokenizer *t, const char *text, size_t len, const int32_t *want, size_t nw) {
    int32_t *ids;
    size_t n;
    qv_err err = {0};
    if (qv_tok_encode(t, text, len, &ids, &n, &err) != QV_OK) return 0;
    int ok = n == nw && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!ok) {
        fprintf(stderr, "  '%s' ->", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

int main(void) {
    g_path = test_tmp("tok_unit.json");
    spec ok = {0};
    ok.added = "{\"id\":300,\"content\":\"<x>\",\"special\":true},{\"id\":301,\"content\":\"<x>y\",\"special\":false}";
    char *j = make_json(&ok);
    qv_tokenizer *t;
    qv_err err;
    CHECK_MSG(load_text(j, strlen(j), &t, &err) == QV_OK, "valid file: %s", err.msg);
    if (t) {
        CHECK(qv_tok_vocab_size(t) == 302);
        /* BPE by rank: "abc" -> ab (rank 0) then abc (rank 1); " a" -> Ġa; digits alone */
        CHECK(encode_is(t, "abc", 3, (int32_t[]){257}, 1));
        CHECK(encode_is(t, "abcab a", 7, (int32_t[]){257, 256, 258}, 3));
        /* added tokens: leftmost, longest; special flag only on the special one */
        CHECK(encode_is(t, "a<x>yb<x>", 9, (int32_t[]){'a', 301, 'b', 300}, 4));
        CHECK(qv_tok_is_special(t, 300) && !qv_tok_is_special(t, 301) && qv_tok_id(t, "<x>y", 4) == 301);
        char out[32];
        int32_t ids[] = {256, 300, 301};
        CHECK(qv_tok_decode(t, ids, 3, 0, out, sizeof out) == 9 && strcmp(out, "ab<x><x>y") == 0);
        CHECK(qv_tok_decode(t, ids, 3, 1, out, sizeof out) == 6 && strcmp(out, "ab<x>y") == 0);
        /* the return is the full length; the buffer gets cap-1 bytes and a NUL */
        CHECK(qv_tok_decode(t, ids, 3, 0, out, 4) == 9 && strcmp(out, "ab<") == 0);
        CHECK(qv_tok_decode(t, (int32_t[]){-5, 99999, 256}, 3, 0, out, sizeof out) == 2);
        qv_tok_free(t);
    }
    /* every truncation of the valid file fails cleanly */
    size_t len = strlen(j);
    int trunc_ok = 1;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 40) {
        if (load_text(j, cut, &t, &err) == QV_OK || !err.msg[0]) trunc_ok = 0;
        qv_tok_free(t);
    }
    CHECK_MSG(trunc_ok, "a truncated file loaded or failed without a message");
    free(j);

    spec s;
    s = ok, s.normalizer = "{\"type\":\"NFKC\"}";
    expect_fail(&s, QV_ERR_UNSUPPORTED, "NFKC", "NFKC normalizer");
    s = ok, s.normalizer = "null";
    expect_fail(&s, QV_ERR_UNSUPPORTED, "NFC", "no normalizer");
    s = ok, s.pattern = "\\\\s+";
    expect_fail(&s, QV_ERR_UNSUPPORTED, "pattern", "other pattern");
    s = ok, s.model_type = "WordPiece";
    expect_fail(&s, QV_ERR_UNSUPPORTED, "WordPiece", "model type");
    s = ok, s.extra_vocab = ",\"zz\":99999999";
    expect_fail(&s, QV_ERR_FORMAT, "vocab", "id out of range");
    s = ok, s.extra_vocab = ",\"zz\":-3";
    expect_fail(&s, QV_ERR_FORMAT, "vocab", "negative id");
    s = ok, s.extra_vocab = ",\"zz\":1.5";
    expect_fail(&s, QV_ERR_FORMAT, "vocab", "fractional id");
    s = ok, s.extra_vocab = ",\"zz\":5";
    expect_fail(&s, QV_ERR_FORMAT, "twice", "duplicate id");
    s = ok, s.extra_vocab = ",\"ab\":400";
    expect_fail(&s, QV_ERR_FORMAT, "appears twice", "duplicate token string");
    s = ok, s.extra_vocab = ",\"a b\":400";
    expect_fail(&s, QV_ERR_FORMAT, "byte-level", "non byte-level vocab token");
    s = ok, s.merges = "[\"a q\"]";
    expect_fail(&s, QV_ERR_FORMAT, "missing from the vocab", "merge result not in vocab");
    s = ok, s.merges = "[\"a b c\"]";
    expect_fail(&s, QV_ERR_FORMAT, "merge 1", "three-part merge");
    s = ok, s.merges = "[[\"a\"]]";
    expect_fail(&s, QV_ERR_FORMAT, "merge 1", "one-element pair");
    s = ok, s.merges = "{}";
    expect_fail(&s, QV_ERR_FORMAT, "merges", "merges not a list");
    s = ok, s.added = "{\"id\":300,\"content\":\"<x>\",\"lstrip\":true}";
    expect_fail(&s, QV_ERR_UNSUPPORTED, "lstrip", "lstrip added token");
    s = ok, s.added = "{\"id\":9999999,\"content\":\"<x>\"}";
    expect_fail(&s, QV_ERR_FORMAT, "id", "added id out of range");
    s = ok, s.added = "{\"id\":300}";
    expect_fail(&s, QV_ERR_FORMAT, "content", "added token without content");
    s = ok, s.added = "{\"id\":97,\"content\":\"<x>\"}";
    expect_fail(&s, QV_ERR_FORMAT, "reuses", "added token on a vocab id");

    /* not JSON, no model, deep nesting, a lone surrogate */
    static const char *bad[] = {"", "nonsense", "{\"model\": ", "{\"normalizer\":{\"type\":\"NFC\"}}", "[1,2,3]",
                                "{\"model\":{\"vocab\":{\"\\ud800\":1},\"merges\":[]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qv_status st = load_text(bad[i], strlen(bad[i]), &t, &err);
        CHECK_MSG(st != QV_OK && t == NULL && strstr(err.msg, g_path), "bad file %zu: %d '%s'", i, st, err.msg);
        qv_tok_free(t);
    }
    size_t deep = 100000;
    char *d = malloc(deep * 2 + 16);
    size_t n = (size_t)sprintf(d, "{\"x\":");
    for (size_t i = 0; i < deep; i++) d[n++] = '[';
    for (size_t i = 0; i < deep; i++) d[n++] = ']';
    d[n++] = '}';
    CHECK(load_text(d, n, &t, &err) == QV_ERR_FORMAT && t == NULL);
    free(d);

    /* a folder with neither tokenizer.json nor vocab.json; a missing path */
    char *dir = test_tmp("tok_unit_empty");
    mkdir(dir, 0755);
    t = NULL;
    CHECK(qv_tok_load(&t, dir, &err) == QV_ERR_IO && t == NULL && strstr(err.msg, "vocab.json"));
    CHECK(qv_tok_load(&t, "/nonexistent/tokenizer.json", &err) == QV_ERR_IO && t == NULL);
    free(dir);

    /* NULL-safety */
    qv_tok_free(NULL);
    CHECK(qv_tok_vocab_size(NULL) == 0 && qv_tok_id(NULL, "a", 1) == -1 && !qv_tok_is_special(NULL, 0));
    free(g_path);
    return test_done();
}
