/* cache.c — the cache folder (cache.h): entry files with a checked header and a CRC-32'd payload, atomic
 * writes by temporary file + rename, LRU trimming by mtime, and XXH3-128 content hashes with a memo for
 * big files. zlib (crc32, deflate) and libxxhash live here only.
 *
 * Entry file, little-endian:
 *   "QVCACHE\n" | u32 format | u32 kind | u32 key_len | u32 desc_len | u32 meta_len | u32 compressed
 *   | u64 payload_len | u64 stored_len | u32 payload_crc   (fixed part, FIXED bytes)
 *   | key | desc | meta | u32 crc32(fixed part + key + desc + meta) | stored payload (stored_len bytes)
 * The file size must be exactly what the header says (a truncated file is a bad entry). */
#define _GNU_SOURCE
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

enum { FIXED = 8 + 6 * 4 + 2 * 8 + 4, MAX_KEY = 1 << 20, MAX_DESC = 1 << 16, MAX_META = 1 << 20 };
static const char MAGIC[8] = {'Q', 'V', 'C', 'A', 'C', 'H', 'E', '\n'};

struct qv_cache {
    char *dir;
    uint64_t max_bytes;
    void (*warn)(void *, const char *);
    void *warn_user;
    int write_warned;        /* one warning per object for failed writes */
};

qv_cache_params qv_cache_default_params(void) {
    qv_cache_params p;
    memset(&p, 0, sizeof p);
    return p;
}

char *qv_cache_default_dir(void) {
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && *x) return qv_path_join(x, "qv");
    const char *h = getenv("HOME");
    if (!h || !*h) return NULL;
    char *c = qv_path_join(h, ".cache");
    char *d = c ? qv_path_join(c, "qv") : NULL;
    free(c);
    return d;
}

void qv_cache_warn(qv_cache *c, const char *fmt, ...) {
    if (!c || !c->warn) return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->warn(c->warn_user, msg);
}

qv_status qv_cache_open(qv_cache **out, const qv_cache_params *p, qv_err *err) {
    *out = NULL;
    if (!p || !p->dir || !*p->dir) return qv_errf(err, QV_ERR_INVALID, "cache: no folder given");
    qv_status st = qv_mkdir_p(p->dir, err);
    if (st) return st;
    struct stat sb;
    if (stat(p->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qv_errf(err, QV_ERR_IO, "cache: %s is not a folder", p->dir);
    qv_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(p->dir))) {
        free(c);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    c->max_bytes = p->max_bytes ? p->max_bytes : QV_CACHE_DEFAULT_MAX;
    c->warn = p->warn;
    c->warn_user = p->warn_user;
    *out = c;
    return QV_OK;
}

void qv_cache_free(qv_cache *c) {
    if (!c) return;
    free(c->dir);
    free(c);
}

const char *qv_cache_dir(const qv_cache *c) { return c->dir; }

void qv_cache_hit_free(qv_cache_hit *h) {
    if (!h) return;
    free(h->meta);
    free(h->data);
    memset(h, 0, sizeof *h);
}

/* ---- hashes ---- */

static void hash_hex(XXH128_hash_t h, qv_hash *out) {
    snprintf(out->hex, sizeof out->hex, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

void qv_hash_bytes(const void *p, size_t n, qv_hash *out) { hash_hex(XXH3_128bits(p, n), out); }

qv_status qv_hash_file(const char *path, qv_hash *out, qv_err *err) {
    int fd = qv_open_regular(path, O_RDONLY, err);   /* a FIFO or a device is refused, not waited on */
    if (fd < 0) return QV_ERR_IO;
    XXH3_state_t *s = XXH3_createState();
    enum { BLK = 4 << 20 };
    char *buf = malloc(BLK);
    qv_status st = QV_OK;
    if (!s || !buf) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    else {
        XXH3_128bits_reset(s);
        for (;;) {
            ssize_t r = read(fd, buf, BLK);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                st = qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
                break;
            }
            if (r == 0) break;
            XXH3_128bits_update(s, buf, (size_t)r);
        }
        if (!st) hash_hex(XXH3_128bits_digest(s), out);
    }
    free(buf);
    XXH3_freeState(s);
    close(fd);
    return st;
}

qv_status qv_hash_file_memo(qv_cache *c, const char *path, qv_hash *out, qv_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    if (!c) return qv_hash_file(path, out, err);
    char id[160];
    snprintf(id, sizeof id, "%llu %llu %llu %lld.%09ld %lld.%09ld", (unsigned long long)sb.st_dev,
             (unsigned long long)sb.st_ino, (unsigned long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
             sb.st_mtim.tv_nsec, (long long)sb.st_ctim.tv_sec, sb.st_ctim.tv_nsec);
    char *memo = qv_path_join(c->dir, "fingerprints");
    if (!memo) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    char *txt = NULL;
    size_t len = 0;
    if (qv_read_file(memo, &txt, &len, 16u << 20, NULL) == QV_OK) {
        size_t idl = strlen(id);
        for (char *line = txt; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl && (size_t)(nl - line) >= idl + 33 && memcmp(line, id, idl) == 0 && line[idl] == ' ') {
                const char *h = line + idl + 1;
                int ok = 1;
                for (int i = 0; i < 32; i++) ok &= (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
                if (ok && (h[32] == ' ' || h[32] == '\n')) {
                    memcpy(out->hex, h, 32);
                    out->hex[32] = 0;
                    free(txt);
                    free(memo);
                    return QV_OK;
                }
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    free(txt);
    qv_status st = qv_hash_file(path, out, err);
    if (!st) { /* one short O_APPEND write per line: concurrent appends do not interleave */
        char line[1400];
        int n = snprintf(line, sizeof line, "%s %s %.1200s\n", id, out->hex, path);
        int fd = open(memo, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (n > 0 && n < (int)sizeof line && write(fd, line, (size_t)n) != n) { /* memo only: ignore */ }
            close(fd);
        }
    }
    free(memo);
    return st;
}

/* ---- entries ---- */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static char *entry_name(qv_cache_kind kind, const char *key) {
    qv_hash h;
    qv_hash_bytes(key, strlen(key), &h);
    char *s = malloc(48);
    if (s) snprintf(s, 48, "%s-%s.qvc", kind == QV_CACHE_VISION ? "v" : "k", h.hex);
    return s;
}

static int read_full(int fd, void *buf, uint64_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (uint64_t)r;
    }
    return 0;
}

static uint32_t crc_big(uint32_t crc, const void *p, uint64_t n) {
    const unsigned char *b = p;
    while (n > 0) {
        uInt m = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, m);
        b += m;
        n -= m;
    }
    return crc;
}

typedef struct {
    unsigned char fixed[FIXED];
    uint32_t kind, key_len, desc_len, meta_len, compressed, payload_crc;
    uint64_t payload_len, stored_len;
    char *key, *desc;
    void *meta;
} header;

static void header_free(header *h) {
    free(h->key);
    free(h->desc);
    free(h->meta);
}

/* Reads and checks the header; returns NULL on success, else why the entry is bad. */
static const char *read_header(int fd, uint64_t file_size, header *h) {
    memset(h, 0, sizeof *h);
    if (file_size < FIXED + 4 || read_full(fd, h->fixed, FIXED)) return "truncated";
    if (memcmp(h->fixed, MAGIC, 8) != 0) return "not a qv cache entry";
    uint32_t fmt = get_u32(h->fixed + 8);
    if (fmt != QV_CACHE_FORMAT) return "written by another format version";
    h->kind = get_u32(h->fixed + 12);
    h->key_len = get_u32(h->fixed + 16);
    h->desc_len = get_u32(h->fixed + 20);
    h->meta_len = get_u32(h->fixed + 24);
    h->compressed = get_u32(h->fixed + 28);
    h->payload_len = get_u64(h->fixed + 32);
    h->stored_len = get_u64(h->fixed + 40);
    h->payload_crc = get_u32(h->fixed + 48);
    if (h->key_len > MAX_KEY || h->desc_len > MAX_DESC || h->meta_len > MAX_META || h->compressed > 1 ||
        (!h->compressed && h->stored_len != h->payload_len))
        return "bad header";
    uint64_t want = (uint64_t)FIXED + h->key_len + h->desc_len + h->meta_len + 4;
    if (!qv_add_ok(want, h->stored_len, &want) || want != file_size)
        return want > file_size ? "truncated" : "longer than its header says";
    h->key = malloc(h->key_len + 1);
    h->desc = malloc(h->desc_len + 1);
    h->meta = malloc(h->meta_len + 1);
    unsigned char crcb[4];
    if (!h->key || !h->desc || !h->meta) return "out of memory";
    if (read_full(fd, h->key, h->key_len) || read_full(fd, h->desc, h->desc_len) ||
        read_full(fd, h->meta, h->meta_len) || read_full(fd, crcb, 4))
        return "truncated";
    h->key[h->key_len] = 0;
    h->desc[h->desc_len] = 0;
    uint32_t crc = (uint32_t)crc32(0, h->fixed, FIXED);
    crc = crc_big(crc, h->key, h->key_len);
    crc = crc_big(crc, h->desc, h->desc_len);
    crc = crc_big(crc, h->meta, h->meta_len);
    if (crc != get_u32(crcb)) return "header checksum mismatch";
    return NULL;
}

static void bad_entry(qv_cache *c, const char *path, const char *why) {
    qv_cache_warn(c, "cache: ignoring %s (%s); it will be rebuilt", path, why);
    unlink(path);
}

typedef int (*consume_fn)(void *user, const void *buf, uint64_t off, uint64_t len);

/* Streams the payload of an uncompressed entry to consume in blocks, CRC checked at the end. */
static const char *stream_payload(int fd, const header *h, consume_fn consume, void *user, int *stopped) {
    enum { BLK = 32 << 20 };
    unsigned char *buf = malloc(BLK);
    if (!buf) return "out of memory";
    uint32_t crc = 0;
    const char *why = NULL;
    for (uint64_t off = 0; off < h->stored_len && !why && !*stopped;) {
        uint64_t m = h->stored_len - off < BLK ? h->stored_len - off : BLK;
        if (read_full(fd, buf, m)) why = "truncated";
        else {
            crc = (uint32_t)crc32(crc, buf, (uInt)m);
            *stopped = consume(user, buf, off, m) != 0;
            off += m;
        }
    }
    free(buf);
    if (!why && !*stopped && crc != h->payload_crc) why = "payload checksum mismatch";
    return why;
}

/* hit NULL: existence only; meta_only: hit gets the meta, the payload is not read; consume: the payload is
 * streamed to it (hit NULL) */
static int lookup(qv_cache *c, qv_cache_kind kind, const char *key, uint64_t max_len, qv_cache_hit *hit, int meta_only,
                  consume_fn consume, void *cuser) {
    if (hit) memset(hit, 0, sizeof *hit);
    char *name = entry_name(kind, key), *path = name ? qv_path_join(c->dir, name) : NULL;
    free(name);
    if (!path) return 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        free(path);
        return 0;
    }
    struct stat sb;
    header h;
    const char *why = fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ? "not a regular file"
                                                                  : read_header(fd, (uint64_t)sb.st_size, &h);
    if (!why && (h.kind != (uint32_t)kind || strcmp(h.key, key) != 0)) why = "its key does not match";
    if (!why && max_len && h.payload_len > max_len) why = "payload larger than expected";
    int ok = 0, stopped = 0;
    if (!why && consume && !h.compressed) {
        why = stream_payload(fd, &h, consume, cuser, &stopped);
        ok = !why && !stopped;
    } else if (!why && consume) { /* a deflated entry: whole, then one block */
        qv_cache_hit whole;
        close(fd);
        fd = -1;
        header_free(&h);
        free(path);
        if (!lookup(c, kind, key, max_len, &whole, 0, NULL, NULL)) return 0;
        ok = consume(cuser, whole.data, 0, whole.len) == 0;
        qv_cache_hit_free(&whole);
        return ok;
    } else if (!why && hit && meta_only) {
        hit->meta = h.meta;
        hit->meta_len = h.meta_len;
        hit->len = h.payload_len;
        h.meta = NULL;
        ok = 1;
    } else if (!why && hit) {
        void *stored = NULL, *data = NULL;
        size_t al = (size_t)((h.payload_len + 63) / 64 * 64);
        if (h.payload_len > SIZE_MAX - 64 || !(data = aligned_alloc(64, al ? al : 64))) why = "out of memory";
        else if (h.compressed && !(stored = malloc(h.stored_len ? h.stored_len : 1))) why = "out of memory";
        else if (read_full(fd, h.compressed ? stored : data, h.stored_len)) why = "truncated";
        else if (crc_big(0, h.compressed ? stored : data, h.stored_len) != h.payload_crc) why = "payload checksum mismatch";
        else if (h.compressed) {
            z_stream zs;
            memset(&zs, 0, sizeof zs);
            if (inflateInit(&zs) != Z_OK) why = "out of memory";
            else {
                zs.next_in = stored;
                zs.avail_in = (uInt)h.stored_len;
                zs.next_out = data;
                zs.avail_out = (uInt)h.payload_len;
                if (h.stored_len > UINT32_MAX || h.payload_len > UINT32_MAX || inflate(&zs, Z_FINISH) != Z_STREAM_END ||
                    zs.total_out != h.payload_len)
                    why = "payload does not decompress";
                inflateEnd(&zs);
            }
        }
        free(stored);
        if (!why) {
            hit->data = data;
            hit->len = h.payload_len;
            hit->meta = h.meta;
            hit->meta_len = h.meta_len;
            h.meta = NULL;
            ok = 1;
        } else free(data);
    } else if (!why) ok = 1;
    if (fd >= 0) close(fd);
    if (why) {
        if (strcmp(why, "out of memory") == 0) qv_cache_warn(c, "cache: out of memory reading %s", path);
        else bad_entry(c, path, why);
    } else if (ok && (consume || (hit && !meta_only))) utimensat(AT_FDCWD, path, NULL, 0); /* last use, for LRU */
    if (!why || strcmp(why, "not a regular file")) header_free(&h);
    free(path);
    return ok;
}

int qv_cache_get(qv_cache *c, qv_cache_kind kind, const char *key, uint64_t max_len, qv_cache_hit *h) {
    if (!c || !key || !h) return 0;
    return lookup(c, kind, key, max_len, h, 0, NULL, NULL);
}

int qv_cache_get_stream(qv_cache *c, qv_cache_kind kind, const char *key, uint64_t len,
                        int (*consume)(void *user, const void *buf, uint64_t off, uint64_t len), void *user) {
    if (!c || !key || !consume) return 0;
    qv_cache_hit h;
    if (qv_cache_peek(c, kind, key, &h) != 1) return 0;
    uint64_t have = h.len;
    qv_cache_hit_free(&h);
    if (have != len) return 0;
    return lookup(c, kind, key, len, NULL, 0, consume, user);
}

int qv_cache_peek(qv_cache *c, qv_cache_kind kind, const char *key, qv_cache_hit *h) {
    if (!c || !key || !h) return 0;
    return lookup(c, kind, key, 0, h, 1, NULL, NULL);
}

int qv_cache_has(qv_cache *c, qv_cache_kind kind, const char *key) {
    if (!c || !key) return 0;
    return lookup(c, kind, key, 0, NULL, 0, NULL, NULL);
}

static int write_full(int fd, const void *buf, uint64_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = ENOSPC;
            return -1;
        }
        p += r;
        n -= (uint64_t)r;
    }
    return 0;
}

/* Streams the parts through deflate into fd; *stored = bytes written. */
static int write_deflated(int fd, const qv_cache_part *parts, int n_parts, uint64_t *stored) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit(&zs, 1) != Z_OK) return errno = ENOMEM, -1;
    enum { OUT = 1 << 20 };
    unsigned char *out = malloc(OUT);
    int rc = out ? 0 : (errno = ENOMEM, -1);
    *stored = 0;
    for (int i = 0; !rc && i <= n_parts; i++) {
        const unsigned char *p = i < n_parts ? parts[i].p : NULL;
        uint64_t left = i < n_parts ? parts[i].len : 0;
        int last = i == n_parts;
        do {
            uInt m = left > (1u << 30) ? (1u << 30) : (uInt)left;
            zs.next_in = (unsigned char *)p;
            zs.avail_in = m;
            int flush = last ? Z_FINISH : Z_NO_FLUSH, zr;
            do {
                zs.next_out = out;
                zs.avail_out = OUT;
                zr = deflate(&zs, flush);
                uint64_t got = OUT - zs.avail_out;
                if (zr == Z_STREAM_ERROR || write_full(fd, out, got)) {
                    rc = -1;
                    break;
                }
                *stored += got;
            } while (zs.avail_out == 0 || (last && zr != Z_STREAM_END));
            if (p) p += m;
            left -= m;
        } while (!rc && left > 0);
    }
    deflateEnd(&zs);
    free(out);
    return rc;
}

static int put_core(qv_cache *c, qv_cache_kind kind, const char *key, const char *desc, const void *meta,
                    size_t meta_len, const qv_cache_part *parts, int n_parts, int compress, uint64_t fill_len,
                    int (*fill)(void *, void *, uint64_t, uint64_t), void *fill_user);

int qv_cache_put(qv_cache *c, qv_cache_kind kind, const char *key, const char *desc, const void *meta,
                 size_t meta_len, const qv_cache_part *parts, int n_parts, int compress) {
    return put_core(c, kind, key, desc, meta, meta_len, parts, n_parts, compress, 0, NULL, NULL);
}

int qv_cache_put_stream(qv_cache *c, qv_cache_kind kind, const char *key, const char *desc, const void *meta,
                        size_t meta_len, uint64_t len, int (*fill)(void *user, void *buf, uint64_t off, uint64_t len),
                        void *user) {
    if (!fill) return -1;
    return put_core(c, kind, key, desc, meta, meta_len, NULL, 0, 0, len, fill, user);
}

static int put_core(qv_cache *c, qv_cache_kind kind, const char *key, const char *desc, const void *meta,
                    size_t meta_len, const qv_cache_part *parts, int n_parts, int compress, uint64_t fill_len,
                    int (*fill)(void *, void *, uint64_t, uint64_t), void *fill_user) {
    if (!c || !key) return -1;
    if (!desc) desc = "";
    size_t key_len = strlen(key), desc_len = strlen(desc);
    if (key_len > MAX_KEY || desc_len > MAX_DESC || meta_len > MAX_META) return -1;
    char *name = entry_name(kind, key), *path = name ? qv_path_join(c->dir, name) : NULL, *tmp = NULL;
    if (path) {
        tmp = malloc(strlen(c->dir) + 80);
        if (tmp)
            snprintf(tmp, strlen(c->dir) + 80, "%s/.tmp-%s-%ld-%ld", c->dir, name, (long)getpid(),
                     (long)(qv_now() * 1e6) % 1000000000L);
    }
    const char *why = NULL;
    int fd = -1, err_no = 0;
    if (!tmp) why = "out of memory";
    else if ((fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0) err_no = errno, why = "cannot create";
    if (!why) {
        uint64_t payload_len = 0, stored = 0;
        uint32_t crc = 0;
        for (int i = 0; i < n_parts; i++) payload_len += parts[i].len;
        if (fill) payload_len = fill_len;
        unsigned char fixed[FIXED];
        memset(fixed, 0, sizeof fixed);
        size_t pre = FIXED + key_len + desc_len + meta_len + 4;
        /* header first (fixed part rewritten below once the stored size and CRC are known) */
        if (write_full(fd, fixed, FIXED) || write_full(fd, key, key_len) || write_full(fd, desc, desc_len) ||
            write_full(fd, meta, meta_len) || write_full(fd, fixed, 4))
            err_no = errno, why = "cannot write";
        else if (compress) {
            if (write_deflated(fd, parts, n_parts, &stored)) err_no = errno, why = "cannot write";
            else { /* CRC of what is stored: read back (deflate output is not kept) */
                unsigned char *buf = malloc(1 << 20);
                uint64_t left = stored;
                off_t off = (off_t)pre;
                if (!buf) err_no = ENOMEM, why = "cannot write";
                while (!why && left > 0) {
                    size_t m = left > (1 << 20) ? (1 << 20) : (size_t)left;
                    if (pread(fd, buf, m, off) != (ssize_t)m) err_no = errno, why = "cannot read back";
                    else crc = (uint32_t)crc32(crc, buf, (uInt)m);
                    off += (off_t)m;
                    left -= m;
                }
                free(buf);
            }
        } else if (fill) {
            enum { BLK = 32 << 20 };
            unsigned char *buf = malloc(BLK);
            if (!buf) err_no = ENOMEM, why = "cannot write";
            for (uint64_t off = 0; !why && off < fill_len;) {
                uint64_t m = fill_len - off < BLK ? fill_len - off : BLK;
                if (fill(fill_user, buf, off, m)) err_no = 0, why = "cannot fill";
                else if (write_full(fd, buf, m)) err_no = errno, why = "cannot write";
                else crc = (uint32_t)crc32(crc, buf, (uInt)m);
                off += m;
            }
            free(buf);
            stored = payload_len;
        } else {
            for (int i = 0; !why && i < n_parts; i++) {
                if (write_full(fd, parts[i].p, parts[i].len)) err_no = errno, why = "cannot write";
                crc = crc_big(crc, parts[i].p, parts[i].len);
            }
            stored = payload_len;
        }
        if (!why) {
            memcpy(fixed, MAGIC, 8);
            put_u32(fixed + 8, QV_CACHE_FORMAT);
            put_u32(fixed + 12, (uint32_t)kind);
            put_u32(fixed + 16, (uint32_t)key_len);
            put_u32(fixed + 20, (uint32_t)desc_len);
            put_u32(fixed + 24, (uint32_t)meta_len);
            put_u32(fixed + 28, compress ? 1 : 0);
            put_u64(fixed + 32, payload_len);
            put_u64(fixed + 40, stored);
            put_u32(fixed + 48, crc);
            uint32_t hcrc = (uint32_t)crc32(0, fixed, FIXED);
            hcrc = crc_big(hcrc, key, key_len);
            hcrc = crc_big(hcrc, desc, desc_len);
            hcrc = crc_big(hcrc, meta, meta_len);
            unsigned char hb[4];
            put_u32(hb, hcrc);
            if (pwrite(fd, fixed, FIXED, 0) != FIXED || pwrite(fd, hb, 4, (off_t)(pre - 4)) != 4)
                err_no = errno, why = "cannot write";
            else if (fsync(fd) != 0) err_no = errno, why = "cannot sync";
        }
    }
    if (fd >= 0 && close(fd) != 0 && !why) err_no = errno, why = "cannot write";
    if (!why && rename(tmp, path) != 0) err_no = errno, why = "cannot rename";
    if (why && fd >= 0) unlink(tmp);
    if (why && !c->write_warned) {
        c->write_warned = 1;
        qv_cache_warn(c, "cache: %s an entry in %s (%s); going on without caching", why, c->dir,
                      err_no ? strerror(err_no) : "no details");
    }
    if (!why) qv_cache_trim(c, c->max_bytes, name);
    free(name);
    free(path);
    free(tmp);
    return why ? -1 : 0;
}

/* ---- management ---- */

typedef struct {
    char *name;
    uint64_t bytes;
    struct timespec mtime;
} dir_item;

static int by_mtime(const void *a, const void *b) {
    const dir_item *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Entries of the folder, oldest first; stale temporary files (over an hour old, or all with clear_tmp)
 * are deleted on the way. */
static int scan(qv_cache *c, dir_item **out, int clear_tmp) {
    *out = NULL;
    DIR *d = opendir(c->dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    dir_item *v = NULL;
    struct dirent *de;
    time_t now = time(NULL);
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        int tmp = strncmp(nm, ".tmp-", 5) == 0, ent = l > 4 && strcmp(nm + l - 4, ".qvc") == 0;
        if (!tmp && !ent) continue;
        struct stat sb;
        if (fstatat(dirfd(d), nm, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (tmp) {
            if (clear_tmp || now - sb.st_mtime > 3600) unlinkat(dirfd(d), nm, 0);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            dir_item *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        if (!(v[n].name = strdup(nm))) break;
        v[n].bytes = (uint64_t)sb.st_size;
        v[n].mtime = sb.st_mtim;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof *v, by_mtime);
    *out = v;
    return n;
}

static void items_free(dir_item *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].name);
    free(v);
}

void qv_cache_trim(qv_cache *c, uint64_t max_bytes, const char *keep) {
    dir_item *v;
    int n = scan(c, &v, 0);
    if (n < 0) return;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += v[i].bytes;
    for (int i = 0; i < n && total > max_bytes; i++) {
        if (keep && strcmp(v[i].name, keep) == 0) continue;
        char *p = qv_path_join(c->dir, v[i].name);
        if (p && unlink(p) == 0) total -= v[i].bytes;
        free(p);
    }
    items_free(v, n);
}

qv_status qv_cache_list(qv_cache *c, qv_cache_entry **out, int *n_out, qv_err *err) {
    *out = NULL;
    *n_out = 0;
    dir_item *v;
    int n = scan(c, &v, 0);
    if (n < 0) return qv_errf(err, QV_ERR_IO, "%s: %s", c->dir, strerror(errno));
    qv_cache_entry *e = calloc((size_t)n + 1, sizeof *e);
    if (!e) {
        items_free(v, n);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    int k = 0;
    for (int i = n - 1; i >= 0; i--) { /* most recent first */
        char *p = qv_path_join(c->dir, v[i].name);
        int fd = p ? open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
        free(p);
        if (fd < 0) continue;
        header h;
        const char *why = read_header(fd, v[i].bytes, &h);
        close(fd);
        if (!why) {
            e[k].file = strdup(v[i].name);
            e[k].kind = h.kind == QV_CACHE_KV ? QV_CACHE_KV : QV_CACHE_VISION;
            e[k].desc = h.desc;
            h.desc = NULL;
            e[k].bytes = v[i].bytes;
            e[k].last_use = (int64_t)v[i].mtime.tv_sec;
            k++;
        }
        header_free(&h);
    }
    items_free(v, n);
    *out = e;
    *n_out = k;
    return QV_OK;
}

void qv_cache_entries_free(qv_cache_entry *e, int n) {
    for (int i = 0; e && i < n; i++) {
        free(e[i].file);
        free(e[i].desc);
    }
    free(e);
}

qv_status qv_cache_clear(qv_cache *c, int *n_deleted, uint64_t *bytes, qv_err *err) {
    dir_item *v;
    int n = scan(c, &v, 1), k = 0;
    uint64_t b = 0;
    if (n < 0) return qv_errf(err, QV_ERR_IO, "%s: %s", c->dir, strerror(errno));
    qv_status st = QV_OK;
    for (int i = 0; i < n; i++) {
        char *p = qv_path_join(c->dir, v[i].name);
        if (p && unlink(p) == 0) k++, b += v[i].bytes;
        else if (!st) st = qv_errf(err, QV_ERR_IO, "%s: %s", v[i].name, strerror(errno));
        free(p);
    }
    char *memo = qv_path_join(c->dir, "fingerprints");
    if (memo) unlink(memo);
    free(memo);
    items_free(v, n);
    if (n_deleted) *n_deleted = k;
    if (bytes) *bytes = b;
    return st;
}
