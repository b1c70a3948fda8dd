/* fixture_ask_check.h — shared by the qv ask fixture tests: run the qv binary on a golden case's prompt and
 * compare its --json output and --dump file with fixtures/golden/<case>.{json,safetensors}, using the
 * tolerances of fixtures/README.md. Include after test.h. */
#ifndef QV_FIXTURE_ASK_CHECK_H
#define QV_FIXTURE_ASK_CHECK_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core.h"
#include "safetensors.h"

static cJSON *ac_load_json(const char *path) {
    char *txt = NULL;
    size_t len = 0;
    qv_err err = {0};
    if (qv_read_file(path, &txt, &len, 0, &err)) {
        fprintf(stderr, "cannot read %s: %s\n", path, err.msg);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(txt, len);
    if (!j) fprintf(stderr, "%s: not JSON: %.200s\n", path, txt);
    free(txt);
    return j;
}

/* golden/<name>.json */
static cJSON *ac_golden(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s.json", name);
    char *p = test_fixture(rel);
    cJSON *j = ac_load_json(p);
    free(p);
    return j;
}

/* Writes s to path exactly (prompts end with newlines that a shell would strip). */
static int ac_write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(s, 1, strlen(s), f) == strlen(s);
    return fclose(f) == 0 && ok;
}

/* Runs a shell command, returns its exit status (or -1). */
static int ac_run(const char *cmd) {
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

static const char *ac_bin(void) {
    const char *b = getenv("QV_BIN");
    return b && *b ? b : "build/qv";
}

/* number array of JSON ints equal to the int array in the other json (both cJSON arrays) */
static int ac_ids_equal(const cJSON *a, const cJSON *b) {
    if (!cJSON_IsArray(a) || !cJSON_IsArray(b) || cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
    for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next)
        if (x->valuedouble != y->valuedouble) return 0;
    return 1;
}

/* Greedy ids check. strict: every id equal (reference path). Otherwise (fast path): equal at every step
 * whose reference top1-top2 gap exceeds 0.1, up to the first step where it does not. Returns the number of
 * steps compared, or -1 on a mismatch. */
static int ac_greedy_ok(const cJSON *gen, const cJSON *golden, int strict, int max_steps) {
    const cJSON *want = cJSON_GetObjectItem(golden, "greedy_ids");
    const cJSON *gap = cJSON_GetObjectItem(golden, "greedy_top1_top2_gap");
    int n = cJSON_GetArraySize(want);
    if (max_steps > 0 && n > max_steps) n = max_steps;
    if (cJSON_GetArraySize(gen) < n) return -1;
    for (int k = 0; k < n; k++) {
        if (!strict && cJSON_GetArrayItem(gap, k)->valuedouble <= 0.1) return k;
        if (cJSON_GetArrayItem(gen, k)->valuedouble != cJSON_GetArrayItem(want, k)->valuedouble) {
            fprintf(stderr, "  greedy step %d: got %g, want %g\n", k, cJSON_GetArrayItem(gen, k)->valuedouble,
                    cJSON_GetArrayItem(want, k)->valuedouble);
            return -1;
        }
    }
    return n;
}

/* float view of a tensor as a malloc'd f32 array (NULL for non-float) */
static float *ac_f32(const qv_tensor *t) {
    int64_t n = qv_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof *f + 1);
    if (f && !qv_convert_to_f32(f, t->data, t->dtype, n)) {
        free(f);
        return NULL;
    }
    return f;
}

static int ac_same_shape(const qv_tensor *a, const qv_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int ac_i64_equal(const qv_tensor *a, const qv_tensor *b) {
    return a->dtype == QV_I64 && b->dtype == QV_I64 && ac_same_shape(a, b) && memcmp(a->data, b->data, a->nbytes) == 0;
}

/* rel L2 of the dumped tensor `name` against the golden one (golden "lm.norm.last16" = the last 16 rows of
 * our lm.norm). -1 when absent or shapes differ. */
static double ac_rel(const qv_st *dump, const qv_st *gold, const char *name) {
    const qv_tensor *g = qv_st_get(gold, name);
    const qv_tensor *d = qv_st_get(dump, strcmp(name, "lm.norm.last16") == 0 ? "lm.norm" : name);
    if (!g || !d) {
        fprintf(stderr, "  %s: missing in the %s\n", name, g ? "dump" : "golden file");
        return -1;
    }
    float *a = ac_f32(d), *b = ac_f32(g);
    double r = -1;
    if (a && b) {
        if (strcmp(name, "lm.norm.last16") == 0 && d->ndim == 2 && g->ndim == 2 && d->shape[1] == g->shape[1] &&
            d->shape[0] >= g->shape[0]) {
            int64_t skip = (d->shape[0] - g->shape[0]) * d->shape[1];
            r = test_rel_l2(a + skip, b, (long)qv_tensor_numel(g));
        } else if (ac_same_shape(d, g)) {
            r = test_rel_l2(a, b, (long)qv_tensor_numel(g));
        } else {
            fprintf(stderr, "  %s: shape differs\n", name);
        }
    }
    free(a);
    free(b);
    return r;
}

typedef struct {
    const char *model_dir;   /* the checkpoint folder */
    const char *label;       /* golden case */
    int ref;                 /* 1 --ref, 0 --fast */
    int from_pixel_values;   /* 1: --pixel-values golden file; 0: decode the media */
    int layers;              /* also compare vision.block.K / lm.layer.K / vision.patch_embed */
    const char *extra;       /* more qv options ("" or e.g. "--chunk 7") */
} ac_case;

/* Runs one case and checks everything; returns 1 when the run itself worked (checks counted via CHECK). */
__attribute__((unused)) static int ac_check_case(const ac_case *c) {
    char tag[200], cmd[4096];
    snprintf(tag, sizeof tag, "%s %s %s%s%s", c->label, c->ref ? "ref" : "fast",
             c->from_pixel_values ? "pixel-values" : "media", *c->extra ? " " : "", c->extra);
    fprintf(stderr, "case %s\n", tag);
    cJSON *g = ac_golden(c->label);
    CHECK_MSG(g != NULL, "%s: golden json", tag);
    if (!g) return 0;
    char name[128];
    snprintf(name, sizeof name, "%s_%s_%s.prompt", c->label, c->ref ? "ref" : "fast", c->from_pixel_values ? "pv" : "media");
    char *prompt = test_tmp(name);
    snprintf(name, sizeof name, "%s_%s_%s.json", c->label, c->ref ? "ref" : "fast", c->from_pixel_values ? "pv" : "media");
    char *out = test_tmp(name);
    snprintf(name, sizeof name, "%s_%s_%s.safetensors", c->label, c->ref ? "ref" : "fast", c->from_pixel_values ? "pv" : "media");
    char *dump = test_tmp(name);
    snprintf(name, sizeof name, "golden/%s.safetensors", c->label);
    char *gold_st = test_fixture(name);
    char *root = test_fixture("");
    int ok = ac_write_text(prompt, cJSON_GetObjectItem(g, "prompt_raw")->valuestring);
    int n_greedy = cJSON_GetArraySize(cJSON_GetObjectItem(g, "greedy_ids"));
    char pv[1200] = "";
    if (c->from_pixel_values) snprintf(pv, sizeof pv, "--pixel-values '%s'", gold_st);
    snprintf(cmd, sizeof cmd,
             "'%s' ask --model '%s' --raw-file '%s' --media-root '%s' %s %s --greedy --no-stop --max-tokens %d "
             "--json --dump '%s' %s %s -q > '%s'",
             ac_bin(), c->model_dir, prompt, root, pv, c->ref ? "--ref" : "--fast", n_greedy, dump,
             c->layers ? "--dump-layers" : "", c->extra, out);
    int rc = ok ? ac_run(cmd) : -1;
    CHECK_MSG(rc == 0, "%s: qv ask exited %d: %s", tag, rc, cmd);
    cJSON *r = rc == 0 ? ac_load_json(out) : NULL;
    qv_st *d = NULL, *gs = NULL;
    qv_err err = {0};
    if (r && qv_st_open(&d, dump, &err)) fprintf(stderr, "%s\n", err.msg);
    if (qv_st_open(&gs, gold_st, &err)) fprintf(stderr, "%s\n", err.msg);
    CHECK_MSG(r && d && gs, "%s: outputs readable", tag);
    if (r && d && gs) {
        CHECK_MSG(ac_ids_equal(cJSON_GetObjectItem(r, "prompt_ids"), cJSON_GetObjectItem(g, "input_ids")),
                  "%s: prompt ids equal input_ids", tag);
        const cJSON *rd = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "rope_deltas"), 0);
        CHECK_MSG(rd && cJSON_GetArrayItem(rd, 0)->valuedouble == cJSON_GetObjectItem(r, "rope_delta")->valuedouble,
                  "%s: rope_delta", tag);
        const cJSON *gen = cJSON_GetObjectItem(r, "generated_ids");
        int steps = ac_greedy_ok(gen, g, c->ref, 0);
        CHECK_MSG(steps >= 0, "%s: greedy ids (%s)", tag, c->ref ? "all" : "while the gap > 0.1");
        if (!c->ref) fprintf(stderr, "  fast path: %d greedy steps compared\n", steps);
        CHECK_MSG(ac_i64_equal(qv_st_get(d, "position_ids"), qv_st_get(gs, "position_ids")), "%s: position_ids", tag);
        for (int i = 0; i < qv_st_count(gs); i++) {
            const qv_tensor *t = qv_st_at(gs, i);
            const char *n = t->name;
            if (t->dtype == QV_I64) {
                if (strcmp(n, "image_grid_thw") == 0 || strcmp(n, "video_grid_thw") == 0)
                    CHECK_MSG(qv_st_get(d, n) && ac_i64_equal(qv_st_get(d, n), t), "%s: %s equal", tag, n);
                continue;
            }
            if (strncmp(n, "top5", 4) == 0) continue;
            int layer = strncmp(n, "vision.", 7) == 0 || strncmp(n, "lm.layer.", 9) == 0;
            if (layer && !c->layers) continue;
            double tol;
            if (c->ref) tol = 1e-4;
            else if (strcmp(n, "vision_embeds") == 0 || strncmp(n, "lm.norm", 7) == 0 || strcmp(n, "logits_last") == 0)
                tol = 3e-2;
            else continue;
            double rel = ac_rel(d, gs, n);
            fprintf(stderr, "  %-22s rel L2 %.3g\n", n, rel);
            CHECK_MSG(rel >= 0 && rel < tol, "%s: %s rel L2 %g (tolerance %g)", tag, n, rel, tol);
        }
    }
    qv_st_free(d);
    qv_st_free(gs);
    cJSON_Delete(r);
    cJSON_Delete(g);
    remove(dump);
    free(prompt);
    free(out);
    free(dump);
    free(gold_st);
    free(root);
    return rc == 0;
}

#endif
