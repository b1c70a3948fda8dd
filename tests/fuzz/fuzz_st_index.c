/* fuzz_st_index.c — model.safetensors.index.json through qv_st_open on a folder that holds the index and
 * one small valid shard (model-00001-of-00002.safetensors, from the seed corpus of fuzz_safetensors):
 * never crashes; every refusal has a message. */
#include "fuzz_common.h"
#include "safetensors.h"

/* a valid shard: one F32 tensor [2] named model.layers.0.input_layernorm.weight */
static void write_shard(void) {
    static int done;
    if (done) return;
    const char *hdr = "{\"model.layers.0.input_layernorm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
    uint8_t buf[256] = {0};
    uint64_t n = hl + pad;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', pad);
    fuzz_file("model-00001-of-00002.safetensors", buf, 8 + n + 8);
    done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    write_shard();
    fuzz_file("model.safetensors.index.json", data, size);
    qv_st *st = NULL;
    qv_err err = {0};
    if (qv_st_open(&st, fuzz_dir(), &err) == QV_OK) qv_st_free(st);
    else if (!err.msg[0]) abort();
    return 0;
}
