/* fixture_cache.c — the caches of issue 11 are exact: on the tiny fixture model, runs through the vision
 * cache only, through the KV prefix in memory and from the cache folder, at chunk sizes 1, 7 and whole, on
 * the reference and the fast path, give the same greedy ids and bit-identical logits_last as an engine
 * without a cache folder; every golden case still passes through the cached path (greedy ids as
 * fixtures/README.md asks); a new question on a cached video gets a vision and prefix hit and the same
 * answer as an uncached run; a checkpoint with the same header but one other weight misses. */
#include "test.h"

#include <cjson/cJSON.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fixture_ask_check.h"
#include "lm.h"
#include "engine.h"

static char *model, *fixtures;

static qv_engine *open_engine(int prec, int chunk, const char *cache_dir, const char *model_dir) {
    qv_engine_params ep = qv_engine_default_params();
    ep.model_dir = model_dir ? model_dir : model;
    ep.prec = prec;
    ep.chunk = chunk;
    ep.cache_dir = cache_dir;
    ep.n_threads = 2;
    qv_engine *e = NULL;
    qv_err err = {0};
    if (qv_engine_create(&e, &ep, &err)) fprintf(stderr, "engine: %s\n", err.msg);
    return e;
}

typedef struct {
    int32_t ids[64];
    int n;
    float *logits;
    int vision_cached;
    int64_t reused;
    int from_disk;
} outcome;

static int run(qv_engine *e, const char *prompt, int max_tokens, outcome *o) {
    int V = qv_engine_config(e)->text.vocab;
    memset(o, 0, sizeof *o);
    o->logits = malloc((size_t)V * sizeof(float));
    qv_gen_opts go = qv_engine_default_gen_opts(e);
    go.max_tokens = max_tokens;
    go.use_stop = 0;
    go.sampling.greedy = 1;
    go.media_root = fixtures;
    go.logits_last = o->logits;
    qv_result res;
    qv_err err = {0};
    qv_status st = qv_engine_run_raw(e, prompt, NULL, &go, &res, &err);
    if (st) fprintf(stderr, "run: %s\n", err.msg);
    o->n = res.n_gen < 64 ? res.n_gen : 64;
    memcpy(o->ids, res.gen_ids, (size_t)o->n * sizeof *o->ids);
    o->vision_cached = res.n_vision_cached;
    o->reused = res.n_prefix_reused;
    o->from_disk = res.prefix_from_disk;
    qv_result_free(&res);
    return st == QV_OK;
}

static int same(const outcome *a, const outcome *b, int V) {
    return a->n == b->n && memcmp(a->ids, b->ids, (size_t)a->n * sizeof *a->ids) == 0 &&
           memcmp(a->logits, b->logits, (size_t)V * sizeof(float)) == 0;
}

static void rm_rf(const char *d) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "rm failed\n");
}

static void rm_kind(const char *d, const char *prefix) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/%s-*.qvc", d, prefix);
    if (system(cmd) != 0) fprintf(stderr, "rm failed\n");
}

/* golden greedy ids through the cached path (the 2nd and 3rd runs of an engine with a cache folder) */
static void golden_case(const char *name, int prec, const char *dir) {
    cJSON *g = ac_golden(name);
    if (!g) {
        CHECK_MSG(0, "golden %s missing", name);
        return;
    }
    const char *prompt = cJSON_GetObjectItem(g, "prompt_raw")->valuestring;
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(g, "greedy_ids"));
    rm_rf(dir);
    for (int pass = 0; pass < 2; pass++) { /* pass 1: a new engine, everything from the folder */
        qv_engine *e = open_engine(prec, 0, dir, NULL);
        if (!e) {
            CHECK(0);
            break;
        }
        for (int k = 0; k < 2; k++) {
            outcome o;
            CHECK(run(e, prompt, n, &o));
            cJSON *gen = cJSON_CreateArray();
            for (int i = 0; i < o.n; i++) cJSON_AddItemToArray(gen, cJSON_CreateNumber(o.ids[i]));
            int r = ac_greedy_ok(gen, g, prec == QV_PREC_REF, 0);
            CHECK_MSG(r >= 0, "%s %s pass %d run %d: greedy ids differ from the golden ones", name,
                      prec == QV_PREC_REF ? "ref" : "fast", pass, k);
            cJSON_Delete(gen);
            free(o.logits);
        }
        qv_engine_free(e);
    }
    cJSON_Delete(g);
}

/* lm/: the KV prefix read and written in odd byte ranges (as the cache streams it) equals the whole export,
 * and a context filled that way decodes exactly like the one that prefilled (both numeric paths; a prefix
 * length that ends inside a V tile) */
static void kv_ranges(void) {
    qv_ckpt *ck = NULL;
    qv_lm *m = NULL;
    qv_err err = {0};
    if (qv_ckpt_open(&ck, model, &err) || qv_lm_create(&m, ck, &err)) {
        CHECK_MSG(0, "lm: %s", err.msg);
        qv_ckpt_free(ck);
        return;
    }
    const int n = 300, V = qv_lm_hparams(m)->vocab;
    int32_t *ids = malloc(n * sizeof *ids);
    int64_t *pos = malloc(3 * n * sizeof *pos);
    for (int i = 0; i < n; i++) ids[i] = (i * 7919) % 150000, pos[i] = pos[n + i] = pos[2 * n + i] = i;
    float *la = malloc(V * sizeof *la), *lb = malloc(V * sizeof *lb);
    for (int prec = 0; prec < 2; prec++) {
        qv_lm_ctx_params cp = qv_lm_ctx_default_params();
        cp.n_ctx = n + 8;
        cp.chunk = 64;
        cp.prec = prec ? QV_PREC_FAST : QV_PREC_REF;
        qv_lm_ctx *a = NULL, *b = NULL;
        CHECK(qv_lm_ctx_create(&a, m, &cp, &err) == QV_OK && qv_lm_ctx_create(&b, m, &cp, &err) == QV_OK);
        if (!a || !b) break;
        CHECK(qv_lm_prefill(a, ids, n, NULL, 0, pos, n, NULL, NULL, NULL, &err) == QV_OK);
        uint64_t bytes = qv_lm_kv_bytes(a, n);
        unsigned char *whole = malloc(bytes), *parts = malloc(bytes);
        CHECK(qv_lm_kv_export(a, n, whole, &err) == QV_OK);
        const uint64_t step = 4 * 1001; /* crosses segments at odd places */
        for (uint64_t off = 0; off < bytes; off += step)
            qv_lm_kv_read(a, n, off, bytes - off < step ? bytes - off : step, parts + off, &err);
        CHECK_MSG(memcmp(whole, parts, bytes) == 0, "ranged read differs (prec %d)", prec);
        for (uint64_t off = 0; off < bytes; off += step)
            qv_lm_kv_write(b, n, off, bytes - off < step ? bytes - off : step, whole + off, &err);
        CHECK(qv_lm_n_past(b) == n);
        CHECK(qv_lm_decode(a, 42, n, la, &err) == QV_OK && qv_lm_decode(b, 42, n, lb, &err) == QV_OK);
        CHECK_MSG(memcmp(la, lb, V * sizeof *la) == 0, "decode after a ranged import differs (prec %d)", prec);
        free(whole);
        free(parts);
        qv_lm_ctx_free(a);
        qv_lm_ctx_free(b);
    }
    free(la);
    free(lb);
    free(ids);
    free(pos);
    qv_lm_free(m);
    qv_ckpt_free(ck);
}

int main(void) {
    model = test_fixture("models/tiny-qwen2vl");
    kv_ranges();
    fixtures = test_fixture("");
    char *dir = test_tmp("qvcache");
    cJSON *g = ac_golden("tiny_video");
    if (!g) return test_done();
    const char *prompt = cJSON_GetObjectItem(g, "prompt_raw")->valuestring;
    const char *q = "What is happening in this video?";
    char *prompt2 = strdup(prompt);
    char *at = strstr(prompt2, q);
    memcpy(at, "What colour is the box in it?###", strlen(q)); /* another question, as long */
    const int T = 12;

    int precs[2] = {QV_PREC_REF, QV_PREC_FAST}, chunks[3] = {1, 7, 100000};
    for (int pi = 0; pi < 2; pi++)
        for (int ci = 0; ci < 3; ci++) {
            int prec = precs[pi], chunk = chunks[ci];
            const char *pn = prec == QV_PREC_REF ? "ref" : "fast";
            qv_engine *u = open_engine(prec, chunk, NULL, NULL);
            if (!u) return test_done();
            int V = qv_engine_config(u)->text.vocab;
            outcome base, base2, o;
            CHECK(run(u, prompt, T, &base));
            qv_engine_free(u); /* a fresh engine for the other question: no prefix in memory */
            u = open_engine(prec, chunk, NULL, NULL);
            CHECK(run(u, prompt2, T, &base2));
            qv_engine_free(u);

            rm_rf(dir);
            qv_engine *c = open_engine(prec, chunk, dir, NULL);
            CHECK(run(c, prompt, T, &o)); /* cold: fills the folder */
            CHECK_MSG(same(&o, &base, V) && o.vision_cached == 0 && o.reused == 0, "%s chunk %d: cold run", pn, chunk);
            free(o.logits);
            CHECK(run(c, prompt, T, &o)); /* the prefix in memory */
            CHECK_MSG(same(&o, &base, V) && o.reused > 400 && !o.from_disk, "%s chunk %d: prefix in memory (%lld)", pn,
                      chunk, (long long)o.reused);
            free(o.logits);
            CHECK(run(c, prompt2, T, &o)); /* another question, same prefix in memory */
            CHECK_MSG(same(&o, &base2, V) && o.reused > 400, "%s chunk %d: 2nd question in memory", pn, chunk);
            free(o.logits);
            qv_engine_free(c);

            c = open_engine(prec, chunk, dir, NULL); /* from the folder */
            CHECK(run(c, prompt2, T, &o));
            CHECK_MSG(same(&o, &base2, V) && o.reused > 400 && o.from_disk && o.vision_cached == 1,
                      "%s chunk %d: prefix from disk (reused %lld, disk %d, vision %d)", pn, chunk, (long long)o.reused,
                      o.from_disk, o.vision_cached);
            free(o.logits);
            qv_engine_free(c);

            rm_kind(dir, "k"); /* vision cache only */
            c = open_engine(prec, chunk, dir, NULL);
            CHECK(run(c, prompt, T, &o));
            CHECK_MSG(same(&o, &base, V) && o.reused == 0 && o.vision_cached == 1, "%s chunk %d: vision cache only", pn,
                      chunk);
            free(o.logits);
            qv_engine_free(c);
            free(base.logits);
            free(base2.logits);
        }

    /* golden cases through the cached path */
    golden_case("tiny_video", QV_PREC_REF, dir);
    golden_case("tiny_video", QV_PREC_FAST, dir);
    golden_case("tiny_image", QV_PREC_REF, dir);
    golden_case("tiny_image", QV_PREC_FAST, dir);
    golden_case("tiny_text", QV_PREC_REF, dir);

    /* a checkpoint with the same header and one other weight: neither cache may answer for it */
    char *other = test_tmp("tiny-other");
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && cp -r '%s' '%s' && chmod -R u+w '%s' && "
             "printf '\\001' | dd of='%s/model-00001-of-00002.safetensors' bs=1 seek=$(( $(stat -c %%s "
             "'%s/model-00001-of-00002.safetensors') - 100 )) conv=notrunc status=none",
             other, model, other, other, other, other);
    CHECK(system(cmd) == 0);
    rm_rf(dir);
    qv_engine *c = open_engine(QV_PREC_REF, 0, dir, NULL);
    outcome o;
    CHECK(run(c, prompt, 4, &o)); /* fills the folder for the fixture model */
    free(o.logits);
    qv_engine_free(c);
    c = open_engine(QV_PREC_REF, 0, dir, other);
    CHECK(c && run(c, prompt, 4, &o));
    CHECK_MSG(o.vision_cached == 0 && o.reused == 0, "another model's entries used: vision %d, prefix %lld",
              o.vision_cached, (long long)o.reused);
    free(o.logits);
    qv_engine_free(c);
    c = open_engine(QV_PREC_REF, 0, dir, NULL); /* and the fixture model still hits */
    CHECK(run(c, prompt, 4, &o) && o.reused > 400);
    free(o.logits);
    qv_engine_free(c);

    cJSON_Delete(g);
    free(prompt2);
    free(other);
    free(dir);
    free(model);
    free(fixtures);
    return test_done();
}
