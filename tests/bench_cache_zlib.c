/* bench_cache_zlib.c — does zlib pay on cache payloads? For each cache entry file given (qv ask
 * --cache-dir DIR, then the .qvc files in DIR), deflates the payload at levels 1 and 6 and reports the ratio and the
 * speeds against reading it raw. Not run in CI (label bench); the numbers are in the README's cache section.
 *   build/tests/bench_cache_zlib ~/.cache/qv/k-XXXX.qvc */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: bench_cache_zlib ENTRY.qvc ...  (nothing to measure)\n");
        return 0;
    }
    for (int a = 1; a < argc; a++) {
        char *buf;
        size_t len;
        qv_err err = {0};
        if (qv_read_file(argv[a], &buf, &len, 0, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        if (len < 56) continue;
        uint64_t stored = 0;
        for (int i = 0; i < 8; i++) stored |= (uint64_t)(unsigned char)buf[40 + i] << (8 * i);
        if (stored > len) continue;
        const unsigned char *p = (const unsigned char *)buf + len - stored;
        for (int level = 1; level <= 6; level += 5) {
            uLongf zl = compressBound(stored);
            unsigned char *z = malloc(zl), *back = malloc(stored + 1);
            double t0 = qv_now();
            compress2(z, &zl, p, stored, level);
            double tz = qv_now() - t0;
            uLongf bl = stored;
            t0 = qv_now();
            uncompress(back, &bl, z, zl);
            double tu = qv_now() - t0;
            t0 = qv_now();
            uint32_t crc = (uint32_t)crc32(0, p, (uInt)stored);
            double tc = qv_now() - t0;
            printf("%s (%s, %.1f MiB): level %d ratio %.3f, deflate %.0f MiB/s, inflate %.0f MiB/s, crc32 %.0f MiB/s%s\n",
                   strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a], buf[12] == 1 ? "KV" : "vision",
                   stored / 1048576.0, level, (double)zl / stored, stored / 1048576.0 / tz, stored / 1048576.0 / tu,
                   stored / 1048576.0 / tc, bl == stored && !memcmp(back, p, stored) && crc ? "" : " (MISMATCH)");
            free(z);
            free(back);
        }
        free(buf);
    }
    return 0;
}
