/* fuzz_safetensors.c — a safetensors file (header and data) through qv_st_open: never crashes, and every
 * tensor of an accepted file lies inside the file with as many bytes as its shape needs. */
#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("x.safetensors", data, size);
    qv_st *st = NULL;
    qv_err err = {0};
    if (qv_st_open(&st, path, &err) == QV_OK) {
        for (int i = 0; i < qv_st_count(st); i++) {
            const qv_tensor *t = qv_st_at(st, i);
            const uint8_t *p = t->data;
            uint64_t n = qv_dtype_size(t->dtype);
            for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
            if (t->nbytes != n) abort();
            volatile uint8_t sum = 0; /* touch the first and last byte: ASan catches a tensor outside the map */
            if (n) sum ^= p[0], sum ^= p[n - 1];
            (void)sum;
        }
        qv_st_free(st);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
