/* fuzz_common.h — helpers of the libFuzzer targets in tests/fuzz/ (see README "Fuzzing"): a private
 * scratch folder per process and writing the input into a file there, for the APIs that read paths. */
#ifndef QV_FUZZ_COMMON_H
#define QV_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

/* a folder of this process's own, made once (mkdtemp under $TMPDIR or /tmp) */
__attribute__((unused)) static const char *fuzz_dir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/qv-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) abort();
    }
    return dir;
}

/* writes data to fuzz_dir()/name, replacing it; returns the path (static buffer) */
__attribute__((unused)) static const char *fuzz_file(const char *name, const uint8_t *data, size_t size) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

/* a NUL-terminated copy (malloc'd) */
__attribute__((unused)) static char *fuzz_str(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif
