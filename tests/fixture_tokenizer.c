/* fixture_tokenizer.c — the 122 cases of golden/tokenizer.json (ids, token strings, decoded text with and
 * without special tokens, made by HF tokenizers 0.23.2) against the tiny-qwen2vl tokenizer loaded four ways:
 * (a) its tokenizer.json (folder and file path), (b) that file rewritten here with ["a", "b"] pair merges,
 * (c) vocab.json + merges.txt + tokenizer_config.json only, (d) (a) again with the heap BPE, then the array
 * BPE, forced for every word. */
#include "test.h"
#include "tok_internal.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

static cJSON *load_json(const char *path) {
    char *buf;
    size_t len;
    qv_err err = {0};
    if (qv_read_file(path, &buf, &len, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

static void run_cases(const qv_tokenizer *tok, const cJSON *cases, const char *label) {
    int bad = 0, n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids"), *toks = cJSON_GetObjectItem(c, "tokens");
        const char *dec = cJSON_GetObjectItem(c, "decoded")->valuestring;
        const char *dec_skip = cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring;
        int32_t *ids = NULL;
        size_t nid = 0;
        qv_err err = {0};
        int ok = qv_tok_encode(tok, text, strlen(text), &ids, &nid, &err) == QV_OK;
        ok = ok && nid == (size_t)cJSON_GetArraySize(want);
        for (size_t i = 0; ok && i < nid; i++) {
            ok = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
            size_t sl;
            const char *s = qv_tok_str(tok, ids[i], &sl);
            const char *ws = cJSON_GetArrayItem(toks, (int)i)->valuestring;
            ok = ok && s && sl == strlen(ws) && memcmp(s, ws, sl) == 0 && qv_tok_id(tok, ws, strlen(ws)) == ids[i];
        }
        if (!ok) {
            fprintf(stderr, "[%s] case %d %s: got", label, n, text);
            for (size_t i = 0; i < nid; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n");
        }
        CHECK_MSG(ok, "[%s] encode case %d", label, n);
        /* decode the golden ids (not ours), both ways, and streamed token by token */
        int32_t wid[4096];
        size_t nw = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, want) wid[nw++] = x->valueint;
        for (int skip = 0; skip < 2; skip++) {
            const char *exp = skip ? dec_skip : dec;
            char out[8192];
            size_t need = qv_tok_decode(tok, wid, nw, skip, out, sizeof out);
            CHECK_MSG(need == strlen(exp) && strcmp(out, exp) == 0, "[%s] decode(skip=%d) case %d: '%s' vs '%s'", label,
                      skip, n, out, exp);
            qv_tok_stream *st = qv_tok_stream_create(tok, skip);
            char acc[8192], piece[1024];
            size_t na = 0;
            int whole = 1;
            for (size_t i = 0; i <= nw; i++) {
                size_t m = i < nw ? qv_tok_stream_push(st, wid[i], piece, sizeof piece)
                                  : qv_tok_stream_flush(st, piece, sizeof piece);
                if (m && ((uint8_t)piece[0] & 0xC0) == 0x80) whole = 0;
                memcpy(acc + na, piece, m);
                na += m;
            }
            acc[na] = 0;
            qv_tok_stream_free(st);
            CHECK_MSG(whole && strcmp(acc, exp) == 0, "[%s] stream(skip=%d) case %d", label, skip, n);
        }
        bad += !ok;
        free(ids);
        n++;
    }
    printf("[%s] %d cases, %d encode mismatches\n", label, n, bad);
}

static int copy_file(const char *from, const char *to) {
    char *buf;
    size_t len;
    qv_err err = {0};
    if (qv_read_file(from, &buf, &len, 0, &err)) return 0;
    int ok = qv_write_file_atomic(to, buf, len, &err) == QV_OK;
    free(buf);
    return ok;
}

int main(void) {
    char *golden = test_fixture("golden/tokenizer.json");
    char *model = test_fixture("models/tiny-qwen2vl");
    char *tjson = test_fixture("models/tiny-qwen2vl/tokenizer.json");
    cJSON *g = load_json(golden);
    CHECK(g != NULL);
    if (!g) return test_done();
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    CHECK(cJSON_GetArraySize(cases) == 122);

    qv_tokenizer *tok = NULL;
    qv_err err = {0};
    /* (a) the folder (tokenizer.json) and the file itself */
    double t0 = qv_now();
    CHECK_MSG(qv_tok_load(&tok, model, &err) == QV_OK, "load %s: %s", model, err.msg);
    printf("load tokenizer.json: %.1f ms\n", (qv_now() - t0) * 1e3);
    if (tok) {
        CHECK(qv_tok_vocab_size(tok) == 151657);
        CHECK(qv_tok_id(tok, "<|video_pad|>", 13) == 151656);
        CHECK(qv_tok_is_special(tok, 151656) && !qv_tok_is_special(tok, 9707));
        CHECK(qv_tok_id(tok, "\xc4\xa0world", 7) == 1879 && qv_tok_id(tok, "no such token!", 14) == -1);
        CHECK(qv_tok_str(tok, -1, NULL) == NULL && qv_tok_str(tok, 1 << 30, NULL) == NULL);
        run_cases(tok, cases, "tokenizer.json");
        size_t def = tok_bpe_heap_threshold;
        tok_bpe_heap_threshold = 0;
        run_cases(tok, cases, "heap-bpe");
        tok_bpe_heap_threshold = SIZE_MAX;
        run_cases(tok, cases, "array-bpe");
        tok_bpe_heap_threshold = def;
        qv_tok_free(tok);
    }
    tok = NULL;
    CHECK_MSG(qv_tok_load(&tok, tjson, &err) == QV_OK, "load %s: %s", tjson, err.msg);
    if (tok) run_cases(tok, cases, "file path");
    qv_tok_free(tok);

    /* (b) pair-form merges, written by this test */
    cJSON *tj = load_json(tjson);
    CHECK(tj != NULL);
    if (tj) {
        cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "model"), "merges");
        cJSON *pairs = cJSON_CreateArray();
        const cJSON *m;
        int n = 0;
        cJSON_ArrayForEach(m, merges) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            char a[512];
            snprintf(a, sizeof a, "%.*s", (int)(sp - s), s);
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, cJSON_CreateString(a));
            cJSON_AddItemToArray(p, cJSON_CreateString(sp + 1));
            cJSON_AddItemToArray(pairs, p);
            n++;
        }
        CHECK(n == 151387);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(tj, "model"), "merges", pairs);
        char *txt = cJSON_PrintUnformatted(tj);
        char *ppath = test_tmp("tokenizer_pairs.json");
        CHECK(txt && qv_write_file_atomic(ppath, txt, strlen(txt), &err) == QV_OK);
        CHECK(txt && strstr(txt, "\"merges\":[[\"") != NULL);
        free(txt);
        tok = NULL;
        CHECK_MSG(qv_tok_load(&tok, ppath, &err) == QV_OK, "load %s: %s", ppath, err.msg);
        if (tok) run_cases(tok, cases, "pair merges");
        qv_tok_free(tok);
        free(ppath);
        cJSON_Delete(tj);
    }

    /* (c) the slow files only */
    char *dir = test_tmp("slow");
    mkdir(dir, 0755);
    const char *names[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/tiny-qwen2vl/%s", names[i]);
        char *from = test_fixture(rel), *to = qv_path_join(dir, names[i]);
        CHECK_MSG(copy_file(from, to), "copy %s", from);
        free(from);
        free(to);
    }
    char *tj_slow = qv_path_join(dir, "tokenizer.json");
    remove(tj_slow);
    free(tj_slow);
    tok = NULL;
    CHECK_MSG(qv_tok_load(&tok, dir, &err) == QV_OK, "load %s: %s", dir, err.msg);
    if (tok) {
        CHECK(qv_tok_vocab_size(tok) == 151657 && qv_tok_is_special(tok, 151644));
        run_cases(tok, cases, "vocab+merges");
    }
    qv_tok_free(tok);
    free(dir);

    cJSON_Delete(g);
    free(golden);
    free(model);
    free(tjson);
    return test_done();
}
