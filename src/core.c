/* core.c — error text, logging callback and file helpers (see core.h). */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

qv_status qv_errf(qv_err *err, qv_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

qv_status qv_err_prefix(qv_err *err, const char *fmt, ...) {
    if (!err) return QV_OK;
    char pre[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%s", err->msg);
    size_t k = strlen(pre);
    if (k + 2 < sizeof err->msg) {
        memcpy(err->msg, pre, k);
        memcpy(err->msg + k, ": ", 2);
        snprintf(err->msg + k + 2, sizeof err->msg - k - 2, "%s", old);
    }
    return err->code;
}

const char *qv_status_str(qv_status s) {
    switch (s) {
    case QV_OK: return "ok";
    case QV_ERR_IO: return "I/O error";
    case QV_ERR_FORMAT: return "bad file format";
    case QV_ERR_INVALID: return "invalid argument";
    case QV_ERR_NOMEM: return "out of memory";
    case QV_ERR_UNSUPPORTED: return "unsupported";
    case QV_ERR_CANCELLED: return "cancelled";
    }
    return "unknown error";
}

static qv_log_fn g_log_fn;
static void *g_log_user;
static int g_log_level = 1;

void qv_log_set(qv_log_fn fn, void *user, int max_level) {
    g_log_fn = fn;
    g_log_user = user;
    g_log_level = max_level;
}
int qv_log_level(void) { return g_log_fn ? g_log_level : -1; }

void qv_log(int level, const char *fmt, ...) {
    if (!g_log_fn || level > g_log_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_log_fn(level, buf, g_log_user);
}

char *qv_term_safe(const char *s, char *out, size_t cap) {
    size_t k = 0;
    if (!cap) return out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t n;
        if (*p < 0x20 || *p == 0x7f) n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
        else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", p[1]), p++;
        else esc[0] = (char)*p, n = 1;
        if (k + n >= cap) break;
        memcpy(out + k, esc, n);
        k += n;
    }
    /* a character cut by the end of out: drop its first bytes */
    size_t i = k;
    while (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0x80) i--;
    if (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0xC0) {
        unsigned char c = (unsigned char)out[i - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (k - (i - 1) < need) k = i - 1;
    }
    out[k] = 0;
    return out;
}

int qv_open_regular(const char *path, int flags, qv_err *err) {
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer forever; it is cleared again for
     * the regular file, where it means nothing anyway */
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st = {0};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int dir = S_ISDIR(st.st_mode);
        close(fd);
        qv_errf(err, QV_ERR_IO, "%s: %s", path, dir ? "is a folder, not a file" : "not a regular file");
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

qv_status qv_check_regular(const char *path, qv_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) return qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return qv_errf(err, QV_ERR_IO, "%s: is a folder, not a file", path);
    if (!S_ISREG(st.st_mode)) return qv_errf(err, QV_ERR_IO, "%s: not a regular file", path);
    return QV_OK;
}

qv_status qv_read_file(const char *path, char **out, size_t *len, size_t max_bytes, qv_err *err) {
    *out = NULL;
    if (len) *len = 0;
    if (!max_bytes) max_bytes = (size_t)1 << 30;
    int fd = qv_open_regular(path, O_RDONLY, err);
    if (fd < 0) return err ? err->code : QV_ERR_IO;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return qv_errf(err, QV_ERR_FORMAT, "%s: file is too large (%lld bytes)", path, (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return qv_errf(err, QV_ERR_IO, "%s: read failed", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return QV_OK;
}

int qv_tmp_create(const char *path, char **tmp_out, qv_err *err) {
    *tmp_out = NULL;
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
    size_t pl = strlen(path) + sizeof QV_TMP_PREFIX + 48;
    char *tmp = malloc(pl);
    if (!tmp) {
        qv_errf(err, QV_ERR_NOMEM, "out of memory");
        return -1;
    }
    for (unsigned n = 0;; n++) {
        snprintf(tmp, pl, "%.*s" QV_TMP_PREFIX "%s.%ld-%u", (int)dl, path, path + dl, (long)getpid(), n);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        if (errno != EEXIST || n >= 1000) {
            qv_errf(err, QV_ERR_IO, "%s: %s", tmp, strerror(errno));
            free(tmp);
            return -1;
        }
    }
}

int qv_is_tmp_name(const char *name, const char *base) {
    size_t k = sizeof QV_TMP_PREFIX - 1, bl = strlen(base);
    if (strncmp(name, QV_TMP_PREFIX, k) || strncmp(name + k, base, bl) || name[k + bl] != '.') return 0;
    const char *p = name + k + bl + 1;
    int dash = 0, digits = 0;
    for (; *p; p++) {
        if (*p == '-' && !dash && digits) dash = 1, digits = 0;
        else if (*p >= '0' && *p <= '9') digits++;
        else return 0;
    }
    return dash && digits;
}

qv_status qv_write_file_atomic_parts(const char *path, const qv_span *parts, int n, qv_err *err) {
    char *tmp;
    int fd = qv_tmp_create(path, &tmp, err);
    if (fd < 0) return err ? err->code : QV_ERR_IO;
    for (int i = 0; i < n; i++) {
        const char *p = parts[i].data;
        size_t left = parts[i].len;
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                qv_errf(err, QV_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "short write");
                close(fd);
                unlink(tmp);
                free(tmp);
                return QV_ERR_IO;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 && errno != EINVAL) {
        qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd); unlink(tmp); free(tmp);
        return QV_ERR_IO;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
        unlink(tmp); free(tmp);
        return QV_ERR_IO;
    }
    free(tmp);
    return QV_OK;
}

qv_status qv_write_file_atomic(const char *path, const void *data, size_t len, qv_err *err) {
    const qv_span one = {data, len};
    return qv_write_file_atomic_parts(path, &one, 1, err);
}

char *qv_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') s[k++] = '/';
    memcpy(s + k, name, b + 1);
    return s;
}

int qv_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

qv_status qv_mkdir_p(const char *path, qv_err *err) {
    char *p = strdup(path);
    if (!p) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                qv_errf(err, QV_ERR_IO, "%s: %s", p, strerror(errno));
                free(p);
                return QV_ERR_IO;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return qv_errf(err, QV_ERR_IO, "%s: not a folder", path);
    return QV_OK;
}

double qv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t qv_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}
