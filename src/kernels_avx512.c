/* kernels_avx512.c — placeholder (being written). */
#include "kernels_isa.h"
const qv_ktable *qv_ktable_avx512(void) { return NULL; }
