/* model.c — the checkpoint checked against both models' weight tables (model.h). */
#include "model.h"

#include "lm.h"
#include "encoder.h"

qv_status qv_model_open(qv_ckpt **out, const char *dir, qv_err *err) {
    qv_ckpt *ck;
    qv_status rc = qv_ckpt_open(&ck, dir, err);
    if (rc) return rc;
    rc = qv_vision_check(ck, err);
    if (!rc) rc = qv_lm_check(ck, err);
    if (rc) {
        qv_ckpt_free(ck);
        return rc;
    }
    *out = ck;
    return QV_OK;
}

int qv_model_tensor_specs(const qv_model_config *mc, qv_tensor_spec *specs) {
    int n = qv_vision_tensor_specs(&mc->vision, specs);
    return n + qv_lm_tensor_specs(&mc->text, specs ? specs + n : NULL);
}
