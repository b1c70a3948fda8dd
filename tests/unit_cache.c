/* unit_cache.c — the cache folder (pipeline/cache.h): round trips (plain and deflated), every kind of bad
 * entry (flipped payload byte, flipped header byte, truncated, other format version, another key's file)
 * warned once and never used, LRU trimming, list/clear, unwritable folders (read-only, file-size limit),
 * two processes racing on one entry, and the file-hash memo. */
#define _GNU_SOURCE
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"

static int n_warn;
static char last_warn[600];
static void warn(void *u, const char *m) {
    (void)u;
    n_warn++;
    snprintf(last_warn, sizeof last_warn, "%s", m);
}

/* streaming: payload = a[] bytes, filled / consumed in the blocks the cache asks for */
typedef struct {
    const unsigned char *src;
    unsigned char *dst;
    uint64_t seen;
} stream_io;
static int fill_fn(void *u, void *buf, uint64_t off, uint64_t len) {
    memcpy(buf, ((stream_io *)u)->src + off, len);
    return 0;
}
static int consume_fn(void *u, const void *buf, uint64_t off, uint64_t len) {
    stream_io *s = u;
    memcpy(s->dst + off, buf, len);
    s->seen += len;
    return 0;
}

static qv_cache *open_cache(const char *dir, uint64_t max) {
    qv_cache_params p = qv_cache_default_params();
    p.dir = dir;
    p.max_bytes = max;
    p.warn = warn;
    qv_cache *c = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_cache_open(&c, &p, &err) == QV_OK, "open %s: %s", dir, err.msg);
    return c;
}

static int put_buf(qv_cache *c, qv_cache_kind k, const char *key, const void *p, uint64_t n, int z) {
    qv_cache_part part = {p, n};
    return qv_cache_put(c, k, key, "desc of it", "meta", 5, &part, 1, z);
}

/* the entry file of the only entry in dir whose name starts with prefix */
static char *entry_path(qv_cache *c, const char *key, qv_cache_kind k) {
    qv_hash h;
    qv_hash_bytes(key, strlen(key), &h);
    char name[64];
    snprintf(name, sizeof name, "%s-%s.qvc", k == QV_CACHE_VISION ? "v" : "k", h.hex);
    return qv_path_join(qv_cache_dir(c), name);
}

static void poke(const char *path, long off, int whence, unsigned char xor_with) {
    int fd = open(path, O_RDWR);
    off_t size = lseek(fd, 0, SEEK_END);
    off_t at = whence == SEEK_END ? size + off : off;
    unsigned char b;
    if (pread(fd, &b, 1, at) == 1) {
        b ^= xor_with;
        if (pwrite(fd, &b, 1, at) != 1) perror("pwrite");
    }
    close(fd);
}

static int hit_equals(qv_cache *c, qv_cache_kind k, const char *key, const void *want, uint64_t n) {
    qv_cache_hit h;
    int r = qv_cache_get(c, k, key, 0, &h);
    int ok = r == 1 && h.len == n && memcmp(h.data, want, n) == 0 && h.meta_len == 5 && !memcmp(h.meta, "meta", 5);
    qv_cache_hit_free(&h);
    return r == 1 ? (ok ? 1 : -1) : 0;
}

int main(void) {
    char *dir = test_tmp("cache");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    enum { N = 100000 };
    float *a = malloc(N * sizeof *a);
    for (int i = 0; i < N; i++) a[i] = sinf((float)i * 0.37f) * 3.f;

    /* round trips, both payload forms; a miss for an unknown key and for the other kind */
    qv_cache *c = open_cache(dir, 0);
    CHECK(put_buf(c, QV_CACHE_VISION, "key one", a, N * sizeof *a, 0) == 0);
    CHECK(hit_equals(c, QV_CACHE_VISION, "key one", a, N * sizeof *a) == 1);
    CHECK(put_buf(c, QV_CACHE_KV, "key two", a, N * sizeof *a, 1) == 0);
    CHECK(hit_equals(c, QV_CACHE_KV, "key two", a, N * sizeof *a) == 1);
    CHECK(hit_equals(c, QV_CACHE_KV, "key one", a, N * sizeof *a) == 0);
    CHECK(hit_equals(c, QV_CACHE_VISION, "key three", a, N * sizeof *a) == 0);
    CHECK(qv_cache_has(c, QV_CACHE_VISION, "key one") == 1);
    CHECK(n_warn == 0);

    /* bad entries: each warned once, deleted, a miss; the next put rebuilds it */
    struct { const char *what; long off; int whence; unsigned char x; } bad[] = {
        {"flipped payload byte", -1000, SEEK_END, 0x10},
        {"flipped header byte", 60, SEEK_SET, 0x01},
        {"other format version", 8, SEEK_SET, 0x02},
        {"flipped compressed byte", -20, SEEK_END, 0x40},
    };
    for (int b = 0; b < 4; b++) {
        qv_cache_kind k = b == 3 ? QV_CACHE_KV : QV_CACHE_VISION;
        const char *key = b == 3 ? "key two" : "key one";
        char *p = entry_path(c, key, k);
        poke(p, bad[b].off, bad[b].whence, bad[b].x);
        int w0 = n_warn;
        CHECK_MSG(hit_equals(c, k, key, a, N * sizeof *a) == 0, "%s: used", bad[b].what);
        CHECK_MSG(n_warn == w0 + 1, "%s: %d warnings", bad[b].what, n_warn - w0);
        CHECK_MSG(!qv_file_exists(p), "%s: not deleted", bad[b].what);
        CHECK(put_buf(c, k, key, a, N * sizeof *a, b == 3) == 0);
        CHECK_MSG(hit_equals(c, k, key, a, N * sizeof *a) == 1, "%s: not rebuilt", bad[b].what);
        free(p);
    }
    {   /* truncated by 1 byte, and cut inside the header */
        char *p = entry_path(c, "key one", QV_CACHE_VISION);
        for (int t = 0; t < 2; t++) {
            CHECK(truncate(p, t == 0 ? (off_t)(N * sizeof *a) : 30) == 0);
            int w0 = n_warn;
            CHECK(hit_equals(c, QV_CACHE_VISION, "key one", a, N * sizeof *a) == 0);
            CHECK(n_warn == w0 + 1);
            CHECK(put_buf(c, QV_CACHE_VISION, "key one", a, N * sizeof *a, 0) == 0);
        }
        /* another key's entry under this key's name: the header's key does not match */
        char *q = entry_path(c, "key zzz", QV_CACHE_VISION);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, q);
        CHECK(system(cmd) == 0);
        int w0 = n_warn;
        CHECK(hit_equals(c, QV_CACHE_VISION, "key zzz", a, N * sizeof *a) == 0);
        CHECK(n_warn == w0 + 1 && strstr(last_warn, "key does not match"));
        free(p);
        free(q);
    }

    {   /* streamed put and get; a flipped byte: consumed, then refused at the end with one warning */
        unsigned char *back = calloc(N, sizeof *a);
        stream_io io = {(const unsigned char *)a, back, 0};
        CHECK(qv_cache_put_stream(c, QV_CACHE_KV, "streamed", "d", "m", 2, N * sizeof *a, fill_fn, &io) == 0);
        CHECK(qv_cache_has(c, QV_CACHE_KV, "streamed") == 1);
        CHECK(qv_cache_get_stream(c, QV_CACHE_KV, "streamed", N * sizeof *a, consume_fn, &io) == 1);
        CHECK(io.seen == N * sizeof *a && memcmp(back, a, N * sizeof *a) == 0);
        CHECK(qv_cache_get_stream(c, QV_CACHE_KV, "streamed", N * sizeof *a - 4, consume_fn, &io) == 0); /* size */
        char *p = entry_path(c, "streamed", QV_CACHE_KV);
        poke(p, -7, SEEK_END, 0x04);
        int w0 = n_warn;
        CHECK(qv_cache_get_stream(c, QV_CACHE_KV, "streamed", N * sizeof *a, consume_fn, &io) == 0);
        CHECK(n_warn == w0 + 1 && !qv_file_exists(p));
        free(p);
        free(back);
    }

    /* list / LRU: three entries of ~400 KB, cap at two: the least recently USED goes */
    qv_cache_entry *ents;
    int n_ent = 0;
    qv_err err = {0};
    CHECK(qv_cache_list(c, &ents, &n_ent, &err) == QV_OK && n_ent == 2);
    CHECK(n_ent > 0 && strcmp(ents[0].desc, "desc of it") == 0 && ents[0].bytes > N * sizeof *a);
    qv_cache_entries_free(ents, n_ent);
    qv_cache_free(c);
    c = open_cache(dir, 2 * N * sizeof *a + 4096);
    struct timespec ts = {0, 20 * 1000 * 1000};
    CHECK(put_buf(c, QV_CACHE_VISION, "lru a", a, N * sizeof *a, 0) == 0); /* trims the older ones already */
    nanosleep(&ts, NULL);
    CHECK(put_buf(c, QV_CACHE_VISION, "lru b", a, N * sizeof *a, 0) == 0);
    nanosleep(&ts, NULL);
    CHECK(hit_equals(c, QV_CACHE_VISION, "lru a", a, N * sizeof *a) == 1); /* a used after b */
    nanosleep(&ts, NULL);
    CHECK(put_buf(c, QV_CACHE_VISION, "lru c", a, N * sizeof *a, 0) == 0);
    CHECK(qv_cache_has(c, QV_CACHE_VISION, "lru a") == 1);
    CHECK(qv_cache_has(c, QV_CACHE_VISION, "lru b") == 0);
    CHECK(qv_cache_has(c, QV_CACHE_VISION, "lru c") == 1);
    int nd = 0;
    uint64_t bytes = 0;
    CHECK(qv_cache_clear(c, &nd, &bytes, &err) == QV_OK && nd == 2 && bytes > 2 * N * sizeof *a);
    CHECK(qv_cache_list(c, &ents, &n_ent, &err) == QV_OK && n_ent == 0);
    qv_cache_entries_free(ents, n_ent);

    /* a file-size limit (a full disk): put fails, one warning for two puts, no temporary file left */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 100000;
    n_warn = 0;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK(put_buf(c, QV_CACHE_VISION, "big", a, N * sizeof *a, 0) == -1);
    CHECK(put_buf(c, QV_CACHE_VISION, "big2", a, N * sizeof *a, 0) == -1);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_MSG(n_warn == 1, "%d warnings", n_warn);
    CHECK(qv_cache_list(c, &ents, &n_ent, &err) == QV_OK && n_ent == 0);
    qv_cache_entries_free(ents, n_ent);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep tmp)\"", dir);
    CHECK(system(cmd) == 0);
    qv_cache_free(c);

    /* a read-only folder (not for root, whom permissions do not stop) */
    if (geteuid() != 0) {
        char *ro = test_tmp("cache-ro");
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && chmod 555 '%s'", ro, ro, ro);
        CHECK(system(cmd) == 0);
        qv_cache *r = open_cache(ro, 0);
        n_warn = 0;
        CHECK(r && put_buf(r, QV_CACHE_VISION, "k", a, 100, 0) == -1 && n_warn == 1);
        CHECK(r && hit_equals(r, QV_CACHE_VISION, "k", a, 100) == 0);
        qv_cache_free(r);
        snprintf(cmd, sizeof cmd, "chmod 755 '%s'", ro);
        CHECK(system(cmd) == 0);
        free(ro);
    }
    {   /* a folder path that is a file: open fails with a message */
        char *f = test_tmp("cache-file");
        FILE *fp = fopen(f, "w");
        if (fp) fclose(fp);
        qv_cache_params p = qv_cache_default_params();
        p.dir = f;
        qv_cache *x = NULL;
        CHECK(qv_cache_open(&x, &p, &err) != QV_OK && x == NULL && err.msg[0]);
        free(f);
    }

    /* two processes writing one entry again and again while a third reads: never a bad entry */
    c = open_cache(dir, 0);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        if ((kids[k] = fork()) == 0) {
            qv_cache *cc = open_cache(dir, 0);
            for (int i = 0; i < 30; i++) put_buf(cc, QV_CACHE_KV, "race", a, N * sizeof *a, k);
            qv_cache_free(cc);
            _exit(0);
        }
    }
    int hits = 0, wrong = 0;
    n_warn = 0;
    int alive = 2, reads = 0;
    while (alive > 0) {
        int r = hit_equals(c, QV_CACHE_KV, "race", a, N * sizeof *a);
        hits += r == 1;
        wrong += r == -1;
        reads++;
        for (int k = 0; k < 2; k++)
            if (kids[k] > 0 && waitpid(kids[k], NULL, WNOHANG) == kids[k]) kids[k] = 0, alive--;
    }
    CHECK_MSG(wrong == 0 && n_warn == 0, "race: %d wrong, %d warnings (%s)", wrong, n_warn, last_warn);
    CHECK(hit_equals(c, QV_CACHE_KV, "race", a, N * sizeof *a) == 1);
    printf("race: %d of %d reads hit while writing\n", hits, reads);

    /* file hashes: content, not name; the memo answers for an unchanged file, a rewrite is seen */
    char *f1 = test_tmp("h1.bin"), *f2 = test_tmp("h2.bin");
    FILE *fp = fopen(f1, "wb");
    fwrite(a, sizeof *a, N, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s'", f1, f2);
    CHECK(system(cmd) == 0);
    qv_hash h1, h2, h3, h4;
    CHECK(qv_hash_file(f1, &h1, &err) == QV_OK && qv_hash_file(f2, &h2, &err) == QV_OK);
    CHECK(strcmp(h1.hex, h2.hex) == 0 && strlen(h1.hex) == 32);
    CHECK(qv_hash_file_memo(c, f1, &h3, &err) == QV_OK && strcmp(h3.hex, h1.hex) == 0);
    CHECK(qv_hash_file_memo(c, f1, &h3, &err) == QV_OK && strcmp(h3.hex, h1.hex) == 0);
    struct stat sb;
    stat(f1, &sb);
    poke(f1, 10, SEEK_SET, 0xff); /* same size; mtime put back: ctime still changes */
    struct timespec tt[2] = {sb.st_atim, sb.st_mtim};
    utimensat(AT_FDCWD, f1, tt, 0);
    CHECK(qv_hash_file_memo(c, f1, &h4, &err) == QV_OK && strcmp(h4.hex, h1.hex) != 0);
    qv_hash_file(f1, &h3, &err);
    CHECK(strcmp(h4.hex, h3.hex) == 0);
    qv_cache_free(c);
    free(f1);
    free(f2);
    free(a);
    free(dir);
    return test_done();
}
