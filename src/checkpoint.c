/* checkpoint.c — the tensors a Qwen2-VL config implies (released names and shapes, as listed in
 * spec/random-weights.md), and the checked model folder: config + mapped weights. Used by the loader
 * (validation), the weight generator (what to write) and `qv info`. */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void spec(qv_tensor_spec *s, int *n, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e) {
    if (s) {
        qv_tensor_spec *t = &s[*n];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = ndim;
        int64_t v[5] = {a, b, c, d, e};
        for (int i = 0; i < 5; i++) t->shape[i] = i < ndim ? v[i] : 0;
    }
    (*n)++;
}
#define S1(nm, a) spec(specs, &n, nm, 1, a, 0, 0, 0, 0)
#define S2(nm, a, b) spec(specs, &n, nm, 2, a, b, 0, 0, 0)

int qv_ckpt_tensor_specs(const qv_model_config *mc, qv_tensor_spec *specs) {
    const qv_vision_hparams *v = &mc->vision;
    const qv_text_hparams *t = &mc->text;
    int n = 0;
    char nm[96];
    int64_t E = v->embed_dim, M = v->mlp_dim, D = t->hidden, KV = (int64_t)t->n_kv_heads * t->head_dim;
    int64_t ms = v->spatial_merge_size, ME = E * ms * ms;
    spec(specs, &n, "visual.patch_embed.proj.weight", 5, E, v->in_chans, v->temporal_patch_size, v->patch_size, v->patch_size);
    for (int b = 0; b < v->depth; b++) {
#define VB(suffix) (snprintf(nm, sizeof nm, "visual.blocks.%d.%s", b, suffix), nm)
        S1(VB("norm1.weight"), E);
        S1(VB("norm1.bias"), E);
        S1(VB("norm2.weight"), E);
        S1(VB("norm2.bias"), E);
        S2(VB("attn.qkv.weight"), 3 * E, E);
        S1(VB("attn.qkv.bias"), 3 * E);
        S2(VB("attn.proj.weight"), E, E);
        S1(VB("attn.proj.bias"), E);
        S2(VB("mlp.fc1.weight"), M, E);
        S1(VB("mlp.fc1.bias"), M);
        S2(VB("mlp.fc2.weight"), E, M);
        S1(VB("mlp.fc2.bias"), E);
#undef VB
    }
    S1("visual.merger.ln_q.weight", E);
    S1("visual.merger.ln_q.bias", E);
    S2("visual.merger.mlp.0.weight", ME, ME);
    S1("visual.merger.mlp.0.bias", ME);
    S2("visual.merger.mlp.2.weight", D, ME);
    S1("visual.merger.mlp.2.bias", D);
    S2("model.embed_tokens.weight", t->vocab, D);
    for (int l = 0; l < t->n_layers; l++) {
#define LB(suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), nm)
        S1(LB("input_layernorm.weight"), D);
        S1(LB("post_attention_layernorm.weight"), D);
        S2(LB("self_attn.q_proj.weight"), D, D);
        S1(LB("self_attn.q_proj.bias"), D);
        S2(LB("self_attn.k_proj.weight"), KV, D);
        S1(LB("self_attn.k_proj.bias"), KV);
        S2(LB("self_attn.v_proj.weight"), KV, D);
        S1(LB("self_attn.v_proj.bias"), KV);
        S2(LB("self_attn.o_proj.weight"), D, D);
        S2(LB("mlp.gate_proj.weight"), t->ffn, D);
        S2(LB("mlp.up_proj.weight"), t->ffn, D);
        S2(LB("mlp.down_proj.weight"), D, t->ffn);
#undef LB
    }
    S1("model.norm.weight", D);
    if (!t->tie_embeddings) S2("lm_head.weight", t->vocab, D);
    return n;
}

/* released name -> name in a checkpoint re-saved by newer transformers */
static void new_layout_name(const char *name, char *out, size_t n) {
    if (strncmp(name, "visual.", 7) == 0) snprintf(out, n, "model.%s", name);
    else if (strncmp(name, "model.", 6) == 0) snprintf(out, n, "model.language_model.%s", name + 6);
    else snprintf(out, n, "%s", name);
}

const qv_tensor *qv_ckpt_get(const qv_ckpt *ck, const char *name) {
    if (!ck->new_layout) return qv_st_get(ck->st, name);
    char nm[160];
    new_layout_name(name, nm, sizeof nm);
    return qv_st_get(ck->st, nm);
}

void qv_ckpt_free(qv_ckpt *ck) {
    if (!ck) return;
    qv_st_free(ck->st);
    free(ck->dir);
    free(ck);
}

qv_status qv_ckpt_open(qv_ckpt **out, const char *dir, qv_err *err) {
    *out = NULL;
    qv_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->dir = strdup(dir))) {
        free(ck);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    qv_status rc = qv_config_load_dir(&ck->cfg, dir, err);
    if (!rc) rc = qv_st_open(&ck->st, dir, err);
    if (rc) {
        qv_ckpt_free(ck);
        return rc;
    }
    ck->new_layout = qv_st_get(ck->st, "model.visual.patch_embed.proj.weight") != NULL ||
                     qv_st_get(ck->st, "model.language_model.embed_tokens.weight") != NULL;
    int n = qv_ckpt_tensor_specs(&ck->cfg, NULL);
    qv_tensor_spec *specs = malloc((size_t)n * sizeof *specs);
    if (!specs) {
        qv_ckpt_free(ck);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    qv_ckpt_tensor_specs(&ck->cfg, specs);
    for (int i = 0; i < n && !rc; i++) {
        const qv_tensor *t = qv_ckpt_get(ck, specs[i].name);
        if (!t) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s' is missing (the config implies it)", dir, specs[i].name);
            break;
        }
        int same = t->ndim == specs[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == specs[i].shape[d];
        if (!same) {
            char have[160], want[160];
            qv_tensor w = {.ndim = specs[i].ndim};
            memcpy(w.shape, specs[i].shape, sizeof specs[i].shape);
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s' has shape %s but config.json implies %s", dir, t->name,
                         qv_shape_str(t, have, sizeof have), qv_shape_str(&w, want, sizeof want));
            break;
        }
        if (t->dtype != QV_BF16)
            rc = qv_errf(err, QV_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; qv runs bf16 checkpoints (as released)", dir, t->name,
                         qv_dtype_name(t->dtype));
    }
    free(specs);
    if (rc) {
        qv_ckpt_free(ck);
        return rc;
    }
    *out = ck;
    return QV_OK;
}
