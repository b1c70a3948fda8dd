/* fixture_genweights.c — qv's weight generator against the reference: the check vectors of
 * golden/formula_vectors.json (7B shapes) and the tiny checkpoint, tensor by tensor, byte for byte. */
#include "checkpoint.h"
#include "genweights.h"
#include "model.h"
#include "safetensors.h"
#include "test.h"

#include <cjson/cJSON.h>

static void check_vectors(void) {
    char *path = test_fixture("golden/formula_vectors.json"), *txt;
    size_t len;
    qv_err err;
    CHECK_MSG(qv_read_file(path, &txt, &len, 0, &err) == QV_OK, "%s", err.msg);
    cJSON *root = cJSON_Parse(txt);
    CHECK(cJSON_IsArray(root));
    int cases = 0;
    for (cJSON *c = root ? root->child : NULL; c; c = c->next) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        cJSON *shape = cJSON_GetObjectItem(c, "shape");
        int64_t sh[8];
        int nd = 0;
        uint64_t n = 1;
        for (cJSON *d = shape->child; d; d = d->next) { sh[nd] = (int64_t)d->valuedouble; n *= (uint64_t)sh[nd++]; }
        char hex[32];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)qv_fnv1a64(name, strlen(name)));
        CHECK_MSG(strcmp(hex, cJSON_GetObjectItem(c, "fnv1a64")->valuestring) == 0, "%s fnv %s", name, hex);
        uint16_t *v = malloc(n * 2);
        qv_gen_bf16(v, name, nd, sh, 0, n);
        int i = 0;
        for (cJSON *h = cJSON_GetObjectItem(c, "first16_bf16_hex")->child; h; h = h->next, i++) {
            snprintf(hex, sizeof hex, "%04x", v[i]);
            CHECK_MSG(strcmp(hex, h->valuestring) == 0, "%s[%d] = %s want %s", name, i, hex, h->valuestring);
        }
        i = 0;
        for (cJSON *h = cJSON_GetObjectItem(c, "last4_bf16_hex")->child; h; h = h->next, i++) {
            snprintf(hex, sizeof hex, "%04x", v[n - 4 + (uint64_t)i]);
            CHECK_MSG(strcmp(hex, h->valuestring) == 0, "%s[-%d] = %s want %s", name, 4 - i, hex, h->valuestring);
        }
        double sum = 0, want = cJSON_GetObjectItem(c, "sum_f64")->valuedouble;
        for (uint64_t k = 0; k < n; k++) sum += (double)qv_bf16_to_f32(v[k]);
        CHECK_MSG(fabs(sum - want) <= 1e-9 * (fabs(want) + 1) + 1e-6, "%s sum %.12g want %.12g", name, sum, want);
        free(v);
        cases++;
    }
    CHECK(cases == 6);
    cJSON_Delete(root);
    free(txt);
    free(path);
}

static void check_tiny(void) {
    char *ref_dir = test_fixture("models/tiny-qwen2vl"), *cfg = test_fixture("models/tiny-qwen2vl/config.json");
    char *out = test_tmp("tiny-gen");
    qv_genweights_params p = qv_genweights_default_params();
    p.tensor_specs = qv_model_tensor_specs;
    p.config_path = cfg;
    p.out_dir = out;
    p.tokenizer_from = ref_dir;
    p.shard_bytes = 4000000; /* several shards: the spread over files may differ from the reference's */
    qv_err err = {0};
    CHECK_MSG(qv_genweights_write(&p, &err) == QV_OK, "%s", err.msg);
    qv_st *ref, *gen;
    CHECK_MSG(qv_st_open(&ref, ref_dir, &err) == QV_OK, "%s", err.msg);
    CHECK_MSG(qv_st_open(&gen, out, &err) == QV_OK, "%s", err.msg);
    CHECK(qv_st_n_shards(gen) >= 2);
    CHECK_MSG(qv_st_count(ref) == qv_st_count(gen), "%d tensors vs %d", qv_st_count(gen), qv_st_count(ref));
    int same = 0;
    for (int i = 0; i < qv_st_count(ref); i++) {
        const qv_tensor *a = qv_st_at(ref, i), *b = qv_st_get(gen, a->name);
        int ok = b && a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes;
        for (int d = 0; ok && d < a->ndim; d++) ok = a->shape[d] == b->shape[d];
        ok = ok && memcmp(a->data, b->data, a->nbytes) == 0;
        CHECK_MSG(ok, "tensor %s differs", a->name);
        same += ok;
    }
    printf("tiny: %d/%d tensors byte-identical over %d shards\n", same, qv_st_count(ref), qv_st_n_shards(gen));
    /* the generated folder is a complete, loadable model */
    qv_ckpt *ck;
    CHECK_MSG(qv_ckpt_open(&ck, out, &err) == QV_OK, "%s", err.msg);
    char *tok = test_tmp("tiny-gen/tokenizer.json");
    CHECK(qv_file_exists(tok));
    qv_ckpt_free(ck);
    qv_st_free(ref);
    qv_st_free(gen);
    free(tok); free(ref_dir); free(cfg); free(out);
}

int main(void) {
    check_vectors();
    check_tiny();
    return test_done();
}
