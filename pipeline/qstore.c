/* qstore.c — stored quantized weights (qstore.h). */
#include "qstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { HDR = 4096, HDR_VERSION = 1 };
static const char k_magic[4] = {'Q', 'V', 'Q', 'W'};

static const char *fmt_name(qv_quant q) { return q == QV_QUANT_Q4 ? "q4" : "q8"; }

char *qv_qstore_path(const char *dir, const char *model_id, qv_quant quant) {
    size_t n = strlen(dir) + strlen(model_id) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/weights/%s.%s", dir, model_id, fmt_name(quant));
    return p;
}

static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

qv_status qv_qstore_save(const char *path, const char *key, const void *blob, size_t blob_len, qv_err *err) {
    size_t kl = strlen(key);
    if (kl + 24 > HDR) return qv_errf(err, QV_ERR_INVALID, "qstore: key too long");
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (!dir) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    if (slash) {
        *slash = 0;
        qv_status st = qv_mkdir_p(dir, err);
        if (st) { free(dir); return st; }
    }
    free(dir);
    unsigned char h[HDR] = {0};
    memcpy(h, k_magic, 4);
    put_u32(h + 4, HDR_VERSION);
    put_u64(h + 8, blob_len);
    put_u64(h + 16, kl);
    memcpy(h + 24, key, kl);
    const qv_span parts[2] = {{h, HDR}, {blob, blob_len}};
    return qv_write_file_atomic_parts(path, parts, 2, err);
}

int qv_qstore_map(const char *path, const char *key, size_t blob_len, qv_qmap *map, const void **blob, char *why,
                  size_t why_len) {
    map->addr = NULL;
    map->len = 0;
    *blob = NULL;
    if (why_len) why[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT) snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
        return 0;
    }
    struct stat sb;
    const char *bad = NULL;
    unsigned char h[HDR];
    size_t kl = strlen(key);
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) bad = "not a regular file";
    else if ((uint64_t)sb.st_size != (uint64_t)HDR + blob_len) bad = "wrong size (truncated or another model's)";
    else if (pread(fd, h, HDR, 0) != HDR) bad = "unreadable header";
    else if (memcmp(h, k_magic, 4) || h[4] != HDR_VERSION || h[5] || h[6] || h[7]) bad = "not a qv weights file of this version";
    else if (get_u64(h + 8) != blob_len || get_u64(h + 16) != kl || memcmp(h + 24, key, kl)) bad = "made for another model or format";
    if (bad) {
        snprintf(why, why_len, "%s: %s", path, bad);
        close(fd);
        return 0;
    }
    void *a = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (a == MAP_FAILED) {
        snprintf(why, why_len, "cannot map %s: %s", path, strerror(e));
        return 0;
    }
    map->addr = a;
    map->len = (size_t)sb.st_size;
    *blob = (const char *)a + HDR;
    return 1;
}

void qv_qstore_unmap(qv_qmap *map) {
    if (map && map->addr) munmap(map->addr, map->len);
    if (map) map->addr = NULL, map->len = 0;
}

qv_status qv_qstore_apply(qv_lm *lm, qv_quant quant, qv_ec *ec, qv_pool *pool, qv_qmap *map, const char **how,
                          qv_err *err) {
    map->addr = NULL;
    map->len = 0;
    *how = "made";
    size_t len = qv_lm_quant_bytes(lm, quant);
    /* the fingerprint first: when it cannot be made the engine cache gives up its folder */
    const char *model_id = ec && qv_ec_disk_dir(ec) ? qv_ec_fingerprint(ec) : NULL;
    const char *dir = ec ? qv_ec_disk_dir(ec) : NULL;
    char *path = dir && model_id && len ? qv_qstore_path(dir, model_id, quant) : NULL;
    char key[256];
    snprintf(key, sizeof key, "qv quantized weights %d\nmodel %s\nformat %s\nbytes %zu\n", QV_QSTORE_VERSION,
             model_id ? model_id : "-", fmt_name(quant), len);
    if (path) {
        char why[512];
        const void *blob;
        if (qv_qstore_map(path, key, len, map, &blob, why, sizeof why)) {
            qv_status st = qv_lm_use_quant(lm, quant, blob, len, err);
            if (!st) {
                *how = "mapped";
                free(path);
                return QV_OK;
            }
            qv_qstore_unmap(map);
            qv_log(1, "qv: warning: stored weights %s unusable (%s); quantizing again", path, err ? err->msg : "");
        } else if (why[0]) {
            qv_log(1, "qv: warning: stored weights ignored: %s; quantizing again", why);
        }
    }
    if (path)   /* once per model and format: say what the wait is */
        qv_log(1, "qv: making the %s weights (%.2f GB) from the bf16 ones; stored in %s for later runs", fmt_name(quant),
               len / 1e9, path);
    qv_status st = qv_lm_set_quant(lm, quant, pool, err);
    if (st || !path) {
        free(path);
        return st;
    }
    const void *blob = qv_lm_quant_blob(lm);
    qv_err we = {0};
    if (blob && qv_qstore_save(path, key, blob, len, &we) == QV_OK) *how = "made and stored";
    else qv_log(1, "qv: warning: %s; the %s weights are not stored (quantized again next time)", we.msg, fmt_name(quant));
    free(path);
    return QV_OK;
}
