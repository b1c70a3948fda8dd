/* fuzz_config.c — config.json through qv_config_parse: never crashes; an accepted config satisfies the
 * invariants the model code relies on (sizes that divide, the geometry the front end handles). */
#include "config.h"
#include "fuzz_common.h"
#include "preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qv_model_config mc;
    qv_config_defaults(&mc);
    qv_err err = {0};
    if (qv_config_parse(&mc, (const char *)data, size, "config.json", &err) == QV_OK) {
        const qv_text_hparams *t = &mc.text;
        const qv_vision_hparams *v = &mc.vision;
        if (t->n_heads < 1 || t->n_kv_heads < 1 || t->n_heads % t->n_kv_heads || t->hidden % t->n_heads) abort();
        if (t->mrope_section[0] + t->mrope_section[1] + t->mrope_section[2] != t->head_dim / 2) abort();
        if (v->n_heads < 1 || v->embed_dim % v->n_heads || v->head_dim % 4) abort();
        if (v->patch_size != QV_PATCH || v->temporal_patch_size != QV_TEMPORAL_PATCH || v->in_chans != 3 || v->spatial_merge_size != QV_MERGE)
            abort();
    } else if (!err.msg[0]) {
        abort(); /* every refusal says why */
    }
    return 0;
}
