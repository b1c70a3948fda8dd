/* config.c — config.json (legacy flat form of the released checkpoints, or the nested text_config /
 * vision_config form newer transformers write), generation_config.json, preprocessor_config.json.
 * Defaults are the reference's (transformers' Qwen2VLConfig / Qwen2VLVisionConfig / image processor);
 * every number is range-checked so absurd sizes fail here with a clear message, not later in malloc. */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qv_config_defaults(qv_model_config *mc) {
    memset(mc, 0, sizeof *mc);
    qv_vision_hparams *v = &mc->vision;
    v->depth = 32; v->embed_dim = 1280; v->mlp_dim = 5120; v->n_heads = 16; v->head_dim = 80; v->in_chans = 3;
    v->out_hidden = 3584; v->patch_size = 14; v->spatial_merge_size = 2; v->temporal_patch_size = 2;
    qv_text_hparams *t = &mc->text;
    t->hidden = 3584; t->ffn = 18944; t->n_layers = 28; t->n_heads = 28; t->n_kv_heads = 4; t->head_dim = 128;
    t->vocab = 152064; t->max_pos = 32768; t->rms_eps = 1e-6f; t->rope_theta = 1000000.0;
    t->mrope_section[0] = 16; t->mrope_section[1] = 24; t->mrope_section[2] = 24;
    t->bos_id = 151643; t->eos_id = 151645;
    t->vision_start_id = 151652; t->vision_end_id = 151653; t->vision_token_id = 151654;
    t->image_token_id = 151655; t->video_token_id = 151656;
    qv_gen_hparams *g = &mc->gen;
    g->n_eos = 0; g->bos_id = 151643; g->max_new_tokens = 2048; g->temperature = 1.0f; g->top_p = 1.0f;
    g->repetition_penalty = 1.0f;
    qv_preproc_hparams *p = &mc->pre;
    p->min_pixels = 56 * 56; p->max_pixels = 28 * 28 * 16384; p->patch_size = 14; p->temporal_patch_size = 2;
    p->merge_size = 2;
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memcpy(p->mean, mean, sizeof mean);
    memcpy(p->std, std, sizeof std);
}

/* Looks key up in each object of objs (first hit wins). */
static const cJSON *find(const cJSON *const *objs, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (objs[i]) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(objs[i], key);
            if (v && !cJSON_IsNull(v)) return v;
        }
    return NULL;
}

/* Reads an integer field into *out when present; checks it is a JSON number (true/false are not
 * numbers: `"num_key_value_heads": false` must not become 0), whole and in [lo, hi]. */
static qv_status get_int(const cJSON *const *objs, int n, const char *key, long lo, long hi, int *out, const char *what, qv_err *err) {
    const cJSON *v = find(objs, n, key);
    if (!v) return QV_OK;
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble || v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return qv_errf(err, QV_ERR_FORMAT, "%s: '%s' must be a whole number from %ld to %ld", what, key, lo, hi);
    *out = (int)v->valuedouble;
    return QV_OK;
}

/* Reads a flag: true/false (or the numbers 0/1 some exporters write). */
static qv_status get_bool(const cJSON *const *objs, int n, const char *key, int *out, const char *what, qv_err *err) {
    const cJSON *v = find(objs, n, key);
    if (!v) return QV_OK;
    if (cJSON_IsBool(v)) { *out = cJSON_IsTrue(v); return QV_OK; }
    if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) { *out = (int)v->valuedouble; return QV_OK; }
    return qv_errf(err, QV_ERR_FORMAT, "%s: '%s' must be true or false", what, key);
}

static qv_status get_num(const cJSON *const *objs, int n, const char *key, double lo, double hi, double *out, const char *what, qv_err *err) {
    const cJSON *v = find(objs, n, key);
    if (!v) return QV_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return qv_errf(err, QV_ERR_FORMAT, "%s: '%s' must be a number from %g to %g", what, key, lo, hi);
    *out = v->valuedouble;
    return QV_OK;
}

#define TRY(x) do { qv_status rc_ = (x); if (rc_) { cJSON_Delete(root); return rc_; } } while (0)

qv_status qv_config_parse(qv_model_config *mc, const char *json, size_t len, const char *what, qv_err *err) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qv_errf(err, QV_ERR_FORMAT, "%s: not a JSON object", what);
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    const cJSON *sub[2] = {tc, vc};
    for (int i = 0; i < 2; i++)
        if (sub[i] && !cJSON_IsNull(sub[i]) && !cJSON_IsObject(sub[i])) {
            char m[64];
            snprintf(m, sizeof m, "%s", i ? "vision_config" : "text_config");
            cJSON_Delete(root);
            return qv_errf(err, QV_ERR_FORMAT, "%s: '%s' must be an object", what, m);
        }
    if (tc && !cJSON_IsObject(tc)) tc = NULL;
    if (vc && !cJSON_IsObject(vc)) vc = NULL;
    mc->nested_layout = tc != NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !cJSON_IsNull(mt) && !cJSON_IsString(mt)) {
        cJSON_Delete(root);
        return qv_errf(err, QV_ERR_FORMAT, "%s: 'model_type' must be a string", what);
    }
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "qwen2_vl") != 0 && strcmp(mt->valuestring, "qwen2_vl_text") != 0) {
        char m[64];
        snprintf(m, sizeof m, "%s", mt->valuestring);
        cJSON_Delete(root);
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: model_type '%s' is not qwen2_vl", what, m);
    }
    /* text fields: text_config first, then the top level (legacy flat form) */
    const cJSON *txt[2] = {tc, root};
    qv_text_hparams *t = &mc->text;
    const long BIG = 1L << 20;
    TRY(get_int(txt, 2, "hidden_size", 1, 65536, &t->hidden, what, err));
    TRY(get_int(txt, 2, "intermediate_size", 1, 1L << 18, &t->ffn, what, err));
    TRY(get_int(txt, 2, "num_hidden_layers", 1, 1024, &t->n_layers, what, err));
    TRY(get_int(txt, 2, "num_attention_heads", 1, 1024, &t->n_heads, what, err));
    t->n_kv_heads = t->n_heads;
    TRY(get_int(txt, 2, "num_key_value_heads", 1, 1024, &t->n_kv_heads, what, err));
    TRY(get_int(txt, 2, "vocab_size", 1, 16 * BIG, &t->vocab, what, err));
    TRY(get_int(txt, 2, "max_position_embeddings", 1, 1L << 30, &t->max_pos, what, err));
    TRY(get_bool(txt, 2, "tie_word_embeddings", &t->tie_embeddings, what, err));
    double d = t->rms_eps;
    TRY(get_num(txt, 2, "rms_norm_eps", 0, 1, &d, what, err));
    t->rms_eps = (float)d;
    TRY(get_num(txt, 2, "rope_theta", 1, 1e12, &t->rope_theta, what, err));
    TRY(get_int(txt, 2, "bos_token_id", 0, 16 * BIG, &t->bos_id, what, err));
    TRY(get_int(txt, 2, "eos_token_id", 0, 16 * BIG, &t->eos_id, what, err));
    TRY(get_int(txt, 2, "vision_start_token_id", 0, 16 * BIG, &t->vision_start_id, what, err));
    TRY(get_int(txt, 2, "vision_end_token_id", 0, 16 * BIG, &t->vision_end_id, what, err));
    TRY(get_int(txt, 2, "vision_token_id", 0, 16 * BIG, &t->vision_token_id, what, err));
    TRY(get_int(txt, 2, "image_token_id", 0, 16 * BIG, &t->image_token_id, what, err));
    TRY(get_int(txt, 2, "video_token_id", 0, 16 * BIG, &t->video_token_id, what, err));
    /* rope: rope_scaling (legacy) or rope_parameters (newer), in text_config or at the top */
    const cJSON *rs = NULL;
    const char *rkeys[2] = {"rope_scaling", "rope_parameters"};
    for (int i = 0; i < 2 && !rs; i++)
        for (int k = 0; k < 2 && !rs; k++) {
            const cJSON *o = find(&txt[i], 1, rkeys[k]);
            if (o && !cJSON_IsObject(o)) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: '%s' must be an object", what, rkeys[k]));
            if (cJSON_IsObject(o)) rs = o;
        }
    if (rs) {
        const cJSON *rso[1] = {rs};
        TRY(get_num(rso, 1, "rope_theta", 1, 1e12, &t->rope_theta, what, err));
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(rs, "mrope_section");
        if (ms) {
            if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) != 3) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: mrope_section must be a list of 3 numbers", what));
            int i = 0;
            for (const cJSON *x = ms->child; x; x = x->next, i++) {
                if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 65536 || floor(x->valuedouble) != x->valuedouble)
                    TRY(qv_errf(err, QV_ERR_FORMAT, "%s: mrope_section must be a list of 3 whole numbers", what));
                t->mrope_section[i] = (int)x->valuedouble;
            }
        }
    }
    if (t->hidden % t->n_heads) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", what, t->hidden, t->n_heads));
    t->head_dim = t->hidden / t->n_heads;
    if (t->head_dim % 2) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: head size %d must be even", what, t->head_dim));
    if (t->n_heads % t->n_kv_heads) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", what, t->n_heads, t->n_kv_heads));
    if (t->mrope_section[0] + t->mrope_section[1] + t->mrope_section[2] != t->head_dim / 2)
        TRY(qv_errf(err, QV_ERR_FORMAT, "%s: mrope_section [%d, %d, %d] must add up to head_dim/2 = %d", what, t->mrope_section[0],
                    t->mrope_section[1], t->mrope_section[2], t->head_dim / 2));
    /* vision */
    const cJSON *vis[1] = {vc};
    qv_vision_hparams *v = &mc->vision;
    TRY(get_int(vis, 1, "depth", 1, 1024, &v->depth, what, err));
    TRY(get_int(vis, 1, "embed_dim", 1, 65536, &v->embed_dim, what, err));
    TRY(get_int(vis, 1, "num_heads", 1, 1024, &v->n_heads, what, err));
    TRY(get_int(vis, 1, "in_chans", 1, 16, &v->in_chans, what, err));
    TRY(get_int(vis, 1, "in_channels", 1, 16, &v->in_chans, what, err));
    v->out_hidden = t->hidden;
    TRY(get_int(vis, 1, "hidden_size", 1, 65536, &v->out_hidden, what, err));
    TRY(get_int(vis, 1, "patch_size", 1, 1024, &v->patch_size, what, err));
    TRY(get_int(vis, 1, "spatial_patch_size", 1, 1024, &v->patch_size, what, err));
    TRY(get_int(vis, 1, "spatial_merge_size", 1, 64, &v->spatial_merge_size, what, err));
    TRY(get_int(vis, 1, "temporal_patch_size", 1, 64, &v->temporal_patch_size, what, err));
    double ratio = 4.0;
    TRY(get_num(vis, 1, "mlp_ratio", 0.01, 64, &ratio, what, err));
    v->mlp_dim = (int)(v->embed_dim * ratio);
    if (v->embed_dim % v->n_heads) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: vision embed_dim %d is not a multiple of num_heads %d", what, v->embed_dim, v->n_heads));
    v->head_dim = v->embed_dim / v->n_heads;
    if (v->head_dim % 4) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: vision head size %d must be a multiple of 4", what, v->head_dim));
    if (v->out_hidden != t->hidden)
        TRY(qv_errf(err, QV_ERR_FORMAT, "%s: vision_config.hidden_size %d differs from the text hidden_size %d", what, v->out_hidden, t->hidden));
    /* The front end (vision/preprocess.c) patchifies 3-channel frames into 14x14 patches, 2 frames deep,
     * merged 2x2: a checkpoint with another geometry would be read out of bounds or garbled, so the
     * load refuses it. */
    if (v->patch_size != QV_PATCH || v->temporal_patch_size != QV_TEMPORAL_PATCH || v->in_chans != 3 || v->spatial_merge_size != QV_MERGE)
        TRY(qv_errf(err, QV_ERR_UNSUPPORTED,
                    "%s: vision geometry patch_size %d, temporal_patch_size %d, in_chans %d, spatial_merge_size %d is not supported "
                    "(qv handles %d, %d, 3, %d)", what, v->patch_size, v->temporal_patch_size, v->in_chans, v->spatial_merge_size,
                    QV_PATCH, QV_TEMPORAL_PATCH, QV_MERGE));
    cJSON_Delete(root);
    return QV_OK;
}

static qv_status parse_gen(qv_model_config *mc, const char *json, size_t len, const char *what, qv_err *err) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qv_errf(err, QV_ERR_FORMAT, "%s: not a JSON object", what);
    }
    const cJSON *o[1] = {root};
    qv_gen_hparams *g = &mc->gen;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (eos) {
        g->n_eos = 0;
        const cJSON *it = cJSON_IsArray(eos) ? eos->child : eos;
        for (; it && g->n_eos < 8; it = cJSON_IsArray(eos) ? it->next : NULL) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 16e6 || floor(it->valuedouble) != it->valuedouble) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: eos_token_id must be ids", what));
            g->eos_ids[g->n_eos++] = (int)it->valuedouble;
        }
    }
    TRY(get_int(o, 1, "bos_token_id", 0, 1L << 24, &g->bos_id, what, err));
    TRY(get_int(o, 1, "max_new_tokens", 1, 1L << 24, &g->max_new_tokens, what, err));
    TRY(get_bool(o, 1, "do_sample", &g->do_sample, what, err));
    TRY(get_int(o, 1, "top_k", 0, 1L << 24, &g->top_k, what, err));
    double d;
    d = g->temperature; TRY(get_num(o, 1, "temperature", 0, 100, &d, what, err)); g->temperature = (float)d;
    d = g->top_p; TRY(get_num(o, 1, "top_p", 0, 1, &d, what, err)); g->top_p = (float)d;
    d = g->repetition_penalty; TRY(get_num(o, 1, "repetition_penalty", 0.01, 100, &d, what, err)); g->repetition_penalty = (float)d;
    cJSON_Delete(root);
    return QV_OK;
}

static qv_status parse_pre(qv_model_config *mc, const char *json, size_t len, const char *what, qv_err *err) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qv_errf(err, QV_ERR_FORMAT, "%s: not a JSON object", what);
    }
    qv_preproc_hparams *p = &mc->pre;
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
    const cJSON *o[2] = {root, cJSON_IsObject(size) ? size : NULL};
    TRY(get_int(o, 1, "min_pixels", 1, 1L << 30, &p->min_pixels, what, err));
    TRY(get_int(o, 1, "max_pixels", 1, 1L << 30, &p->max_pixels, what, err));
    TRY(get_int(&o[1], 1, "shortest_edge", 1, 1L << 30, &p->min_pixels, what, err));
    TRY(get_int(&o[1], 1, "longest_edge", 1, 1L << 30, &p->max_pixels, what, err));
    TRY(get_int(o, 1, "patch_size", 1, 1024, &p->patch_size, what, err));
    TRY(get_int(o, 1, "temporal_patch_size", 1, 64, &p->temporal_patch_size, what, err));
    TRY(get_int(o, 1, "merge_size", 1, 64, &p->merge_size, what, err));
    const char *keys[2] = {"image_mean", "image_std"};
    float *dst[2] = {p->mean, p->std};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        if (!a) continue;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: %s must be 3 numbers", what, keys[k]));
        int i = 0;
        for (const cJSON *x = a->child; x; x = x->next, i++) {
            if (!cJSON_IsNumber(x) || (k == 1 && x->valuedouble <= 0)) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: %s must be 3 numbers", what, keys[k]));
            dst[k][i] = (float)x->valuedouble;
        }
    }
    if (p->patch_size != QV_PATCH || p->temporal_patch_size != QV_TEMPORAL_PATCH || p->merge_size != QV_MERGE)
        TRY(qv_errf(err, QV_ERR_UNSUPPORTED, "%s: patch_size %d, temporal_patch_size %d, merge_size %d are not supported (qv handles %d, %d, %d)",
                    what, p->patch_size, p->temporal_patch_size, p->merge_size, QV_PATCH, QV_TEMPORAL_PATCH, QV_MERGE));
    if (p->min_pixels > p->max_pixels) TRY(qv_errf(err, QV_ERR_FORMAT, "%s: min_pixels is larger than max_pixels", what));
    cJSON_Delete(root);
    return QV_OK;
}

typedef qv_status (*parse_fn)(qv_model_config *, const char *, size_t, const char *, qv_err *);

static qv_status load_one(qv_model_config *mc, const char *dir, const char *name, int required, parse_fn fn, qv_err *err) {
    char *path = qv_path_join(dir, name);
    if (!path) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    if (!required && !qv_file_exists(path)) { free(path); return QV_OK; }
    char *txt;
    size_t len;
    qv_status rc = qv_read_file(path, &txt, &len, 16u << 20, err);
    if (!rc) {
        rc = fn(mc, txt, len, path, err);
        free(txt);
    }
    free(path);
    return rc;
}

qv_status qv_config_load_dir(qv_model_config *mc, const char *dir, qv_err *err) {
    qv_config_defaults(mc);
    qv_status rc = load_one(mc, dir, "config.json", 1, qv_config_parse, err);
    if (rc) return rc;
    mc->gen.bos_id = mc->text.bos_id;
    rc = load_one(mc, dir, "generation_config.json", 0, parse_gen, err);
    if (rc) return rc;
    if (mc->gen.n_eos == 0) mc->gen.eos_ids[mc->gen.n_eos++] = mc->text.eos_id;
    rc = load_one(mc, dir, "preprocessor_config.json", 0, parse_pre, err);
    if (rc) return rc;
    mc->pre.patch_size = mc->vision.patch_size;
    return QV_OK;
}
