/* core.h — status codes, error messages, logging and small file helpers shared by every layer.
 *
 *   qv_err err = {0};
 *   if (qv_something(..., &err) != QV_OK) fprintf(stderr, "qv: %s\n", err.msg);   // only main prints
 *
 * Library code never prints or exits: it fills a qv_err (one line, no trailing newline) and returns the
 * status. A NULL qv_err* is allowed everywhere and means "caller does not want the text".
 * Logging goes through one callback that main installs (progress, verbose notes); default: silent. */
#ifndef QV_CORE_H
#define QV_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

typedef enum {
    QV_OK = 0,
    QV_ERR_IO,          /* a file could not be opened, read or written (disk full included) */
    QV_ERR_FORMAT,      /* an input file is malformed or inconsistent */
    QV_ERR_INVALID,     /* a bad argument or option value */
    QV_ERR_NOMEM,       /* an allocation failed or a size would not fit in memory */
    QV_ERR_UNSUPPORTED, /* valid input this build does not handle */
    QV_ERR_CANCELLED,   /* stopped by the user (Ctrl-C) */
} qv_status;

typedef struct qv_err {
    qv_status code;
    char msg[1024];     /* one line, UTF-8, no trailing newline */
} qv_err;

/* Sets err (when non-NULL) and returns code; message in printf form. */
qv_status qv_errf(qv_err *err, qv_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (for adding the file or tensor name on the way up). */
qv_status qv_err_prefix(qv_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *qv_status_str(qv_status s);

/* Logging: level 0 = error, 1 = info (default shown), 2 = verbose. */
typedef void (*qv_log_fn)(int level, const char *msg, void *user);
void qv_log_set(qv_log_fn fn, void *user, int max_level);
void qv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  qv_log_level(void);

/* Copies text for a terminal into out (cap bytes, always NUL-terminated, cut at a character): control
 * bytes (C0, DEL) become "\xNN" and C1 controls (U+0080..U+009F) "\u00NN", so user text (a job id, a
 * path, a question) printed to stderr can never start an escape sequence. Returns out. */
char *qv_term_safe(const char *s, char *out, size_t cap);

/* Opens a path that must be a regular file (flags: O_RDONLY ...) without ever blocking on it: a FIFO or
 * device is refused with a message, never waited on. Returns the fd (close-on-exec), or -1 with err set.
 * Every path qv reads goes through this (or qv_check_regular where a library opens it). */
int qv_open_regular(const char *path, int flags, qv_err *err);
/* stat(): QV_OK when path is a regular file, else a message (missing, a folder, a FIFO ...). */
qv_status qv_check_regular(const char *path, qv_err *err);
/* Reads a whole regular file into a NUL-terminated malloc'd buffer (size without the NUL in *len).
 * Refuses files larger than max_bytes (0 = 1 GiB) with QV_ERR_FORMAT. */
qv_status qv_read_file(const char *path, char **out, size_t *len, size_t max_bytes, qv_err *err);
/* Temp files: qv writes a file as DIR/.qv-tmp.NAME.PID-N beside DIR/NAME, created by qv_tmp_create with
 * O_CREAT|O_EXCL|O_NOFOLLOW (a planted file or symlink is never written through; N counts up past
 * names in use), then renamed over NAME. Returns the fd and the malloc'd temp path, or -1 with err. */
#define QV_TMP_PREFIX ".qv-tmp."
int qv_tmp_create(const char *path, char **tmp_out, qv_err *err);
/* True when name (a file name, no folder) is a temp name qv_tmp_create makes for base. */
int qv_is_tmp_name(const char *name, const char *base);
/* Writes data to path atomically: qv_tmp_create, write, fsync, rename. Disk full is QV_ERR_IO. */
qv_status qv_write_file_atomic(const char *path, const void *data, size_t len, qv_err *err);
/* The same for a file made of n parts written one after the other (a header and a large payload). */
typedef struct { const void *data; size_t len; } qv_span;
qv_status qv_write_file_atomic_parts(const char *path, const qv_span *parts, int n, qv_err *err);
/* path_join into a malloc'd string ("dir/name"); NULL on OOM. */
char *qv_path_join(const char *dir, const char *name);
int qv_file_exists(const char *path);
/* mkdir -p: creates path and its missing parents (mode 0755). */
qv_status qv_mkdir_p(const char *path, qv_err *err);

/* Overflow-checked size arithmetic: return 0 on overflow. */
static inline int qv_mul_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline int qv_add_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }

/* Monotonic wall clock in seconds. */
double qv_now(void);
/* Peak resident set size of this process in bytes (from getrusage). */
uint64_t qv_peak_rss(void);

/* GCC's per-function -O3 (Debug and sanitizer builds still vectorize the hot loops); clang has no such
 * attribute and warns, so there it expands to nothing */
#if defined(__GNUC__) && !defined(__clang__)
#define QV_O3 __attribute__((optimize("O3")))
#else
#define QV_O3
#endif

#endif
