/* batch.c — JSONL job file parsing and the resumable, shardable batch runner (see batch.h). */
#define _GNU_SOURCE
#include "batch.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- parsing ---- */

static char *dupn(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

static char *make_file_id(const char *id) {
    size_t n = strlen(id);
    if (n > 100) n = 100;
    char *r = dupn(id, n);
    if (!r) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 (c == '.' && i > 0);
        if (!ok) r[i] = '_';
    }
    if (n == 0 || strcmp(r, ".") == 0) {
        free(r);
        r = strdup("_");
    }
    if (r && strncmp(r, "results", 7) == 0) r[0] = 'R'; /* never clash with the status files */
    return r;
}

/* "line-" followed by digits only: the form of the automatic ids. */
static int is_auto_id(const char *id) {
    if (strncmp(id, "line-", 5) || !id[5]) return 0;
    for (const char *p = id + 5; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

static void job_free(qv_job *j) {
    free(j->id);
    free(j->file_id);
    free(j->task);
    free(j->video);
    free(j->question);
    free(j->format);
    for (int i = 0; i < j->n_opts; i++) {
        free(j->keys[i]);
        free(j->vals[i]);
    }
    free(j->keys);
    free(j->vals);
    free(j->error);
    memset(j, 0, sizeof *j);
}

void qv_jobs_free(qv_joblist *jl) {
    if (!jl) return;
    for (int i = 0; i < jl->n; i++) job_free(&jl->jobs[i]);
    free(jl->jobs);
    jl->jobs = NULL;
    jl->n = 0;
}

static int set_error(qv_job *j, const char *fmt, const char *a) {
    char buf[512];
    char msg[400];
    snprintf(msg, sizeof msg, fmt, a ? a : "");
    snprintf(buf, sizeof buf, "line %d: %s", j->line, msg);
    free(j->error);
    j->error = strdup(buf);
    return j->error != NULL;
}

/* Value of an option as text; NULL and *bad = 1 when it is not a scalar. */
static char *scalar_text(const cJSON *v, int *bad) {
    char buf[64];
    *bad = 0;
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (cJSON_IsBool(v)) return strdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15) snprintf(buf, sizeof buf, "%.0f", d);
        else snprintf(buf, sizeof buf, "%.17g", d);
        return strdup(buf);
    }
    *bad = 1;
    return NULL;
}

/* Fills job j from one line's JSON (j->line set). Returns 0 only on OOM. */
static int parse_job(qv_job *j, const char *s, size_t n) {
    char *copy = dupn(s, n);
    if (!copy) return 0;
    cJSON *o = cJSON_ParseWithOpts(copy, NULL, 1); /* 1: nothing may follow the object */
    free(copy);
    int ok = 1;
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return set_error(j, "not a JSON object%s", "");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string;
        if (!k) continue;
        int bad = 0;
        if (cJSON_IsNull(it)) continue;
        char *v = scalar_text(it, &bad);
        if (bad) {
            ok = set_error(j, "\"%s\" must be a string, a number or true/false", k);
            goto done;
        }
        if (!v) {
            ok = 0;
            goto done;
        }
        char **slot = !strcmp(k, "id") ? &j->id
                      : !strcmp(k, "video") ? &j->video
                      : !strcmp(k, "task") ? &j->task
                      : !strcmp(k, "question") ? &j->question
                      : !strcmp(k, "format") ? &j->format
                                             : NULL;
        if (slot) {
            if (*slot) {
                free(v);
                ok = set_error(j, "\"%s\" given twice", k);
                goto done;
            }
            *slot = v;
            continue;
        }
        char **nk = realloc(j->keys, sizeof(char *) * (size_t)(j->n_opts + 1));
        if (nk) j->keys = nk;
        char **nv = realloc(j->vals, sizeof(char *) * (size_t)(j->n_opts + 1));
        if (nv) j->vals = nv;
        char *kk = strdup(k);
        if (!nk || !nv || !kk) {
            free(v);
            free(kk);
            ok = 0;
            goto done;
        }
        for (char *p = kk; *p; p++)
            if (*p == '_') *p = '-';
        j->keys[j->n_opts] = kk;
        j->vals[j->n_opts] = v;
        j->n_opts++;
    }
    if (!j->task && j->question) j->task = strdup("ask");
    if (!j->video) ok = set_error(j, "missing \"video\"%s", "");
    else if (!j->video[0]) ok = set_error(j, "empty \"video\"%s", "");
    else if (!j->task) ok = set_error(j, "missing \"task\" (ask, subtitles or summarize)%s", "");
    else if (strcmp(j->task, "ask") && strcmp(j->task, "subtitles") && strcmp(j->task, "summarize"))
        ok = set_error(j, "unknown task \"%s\" (ask, subtitles or summarize)", j->task);
    else if (!strcmp(j->task, "ask") && (!j->question || !j->question[0]))
        ok = set_error(j, "task \"ask\" needs a \"question\"%s", "");
done:
    cJSON_Delete(o);
    return ok;
}

qv_status qv_jobs_parse(const char *text, size_t len, qv_joblist *out, qv_err *err) {
    memset(out, 0, sizeof *out);
    int cap = 0, line = 0;
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) i = 3; /* a UTF-8 byte order mark (Windows editors) */
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        line++;
        size_t a = i, b = e;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        i = e + 1;
        if (a == b || text[a] == '#') continue;
        if (out->n == cap) {
            int nc = cap ? cap * 2 : 16;
            qv_job *nj = realloc(out->jobs, sizeof(qv_job) * (size_t)nc);
            if (!nj) goto oom;
            out->jobs = nj;
            cap = nc;
        }
        qv_job *j = &out->jobs[out->n++];
        memset(j, 0, sizeof *j);
        j->line = line;
        if (memchr(text + a, 0, b - a)) {
            if (!set_error(j, "NUL byte in the line%s", "")) goto oom;
        } else if (!parse_job(j, text + a, b - a))
            goto oom;
        if (j->id && is_auto_id(j->id)) {
            /* "line-N" is the automatic id of the job on line N: a typed one could take the id (and the
             * result file) of another job, which would then never run */
            if (!set_error(j, "id \"%s\" is reserved for jobs without an id: choose another", j->id)) goto oom;
            free(j->id);
            j->id = NULL;
        }
        if (!j->id) {
            char buf[32];
            snprintf(buf, sizeof buf, "line-%d", line);
            if (!(j->id = strdup(buf))) goto oom;
        }
        if (!(j->file_id = make_file_id(j->id))) goto oom;
        /* ids (and the file names made from them) must be unique, for failed lines too: a line that fails
         * and repeats an id is reported under its own "line-N", so it can never mark the first job as
         * failed or done (found by tests/fuzz/fuzz_jobs) */
        for (int k = 0; k < out->n - 1; k++) {
            int same_id = !strcmp(out->jobs[k].id, j->id), same_file = !strcmp(out->jobs[k].file_id, j->file_id);
            if (!same_id && !same_file) continue;
            if (!j->error) {
                char b2[64];
                snprintf(b2, sizeof b2, "%d", out->jobs[k].line);
                if (same_id ? !set_error(j, "id already used on line %s", b2)
                            : !set_error(j, "id gives the same file name as the one on an earlier line (%s)", j->file_id))
                    goto oom;
            }
            char nid[32];
            snprintf(nid, sizeof nid, "line-%d", line);
            free(j->id);
            free(j->file_id);
            j->file_id = NULL;
            if (!(j->id = strdup(nid)) || !(j->file_id = make_file_id(nid))) goto oom;
            break;
        }
    }
    if (out->n == 0) return qv_errf(err, QV_ERR_FORMAT, "the job file holds no job (one JSON object per line)");
    return QV_OK;
oom:
    qv_jobs_free(out);
    return qv_errf(err, QV_ERR_NOMEM, "out of memory reading the job file");
}

/* ---- status files ---- */

char *qv_batch_status_name(int shard_i, int shard_n) {
    char buf[64];
    if (shard_n <= 1) snprintf(buf, sizeof buf, "results.jsonl");
    else snprintf(buf, sizeof buf, "results.%d-of-%d.jsonl", shard_i, shard_n);
    return strdup(buf);
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

qv_status qv_batch_append_status(const char *path, const qv_job *job, int ok, const char *error, const char *output,
                                 double seconds, const char *fp, qv_err *err) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(o, "id", job->id);
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "failed");
    if (error) cJSON_AddStringToObject(o, "error", error);
    else cJSON_AddNullToObject(o, "error");
    if (output) cJSON_AddStringToObject(o, "output", output);
    else cJSON_AddNullToObject(o, "output");
    cJSON_AddNumberToObject(o, "seconds", round(seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "line", job->line);
    if (job->task) cJSON_AddStringToObject(o, "task", job->task);
    if (fp) cJSON_AddStringToObject(o, "fp", fp);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    cJSON_AddNumberToObject(o, "at", (double)now.tv_sec + 1e-3 * (double)(now.tv_nsec / 1000000));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    line[n] = '\n';
    line[n + 1] = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0) {
        free(line);
        return qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    }
    qv_status st = QV_OK;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
        char last = '\n';
        if (pread(fd, &last, 1, sb.st_size - 1) == 1 && last != '\n' && !write_all(fd, "\n", 1))
            st = qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (!st && !write_all(fd, line, n + 1)) st = qv_errf(err, QV_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (!st && fsync(fd) != 0 && errno != EINVAL) st = qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    if (close(fd) != 0 && !st) st = qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
    free(line);
    return st;
}

/* The latest "ok" status line of each id (whose output file exists), from every results*.jsonl in dir,
 * with its job fingerprint (NULL in lines written before fingerprints); sorted by id for bsearch. */
typedef struct {
    char *id, *fp;
    double at;     /* when the line was written (0 in older lines); the latest line of an id wins */
    long order;    /* reading order, for lines with equal times (later in a file = later) */
} done_entry;

typedef struct {
    done_entry *e;
    int n, cap;
} idset;

static int cmp_entry(const void *a, const void *b) {
    const done_entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_key(const void *key, const void *b) { return strcmp(key, ((const done_entry *)b)->id); }

static int idset_add(idset *s, const char *id, const char *fp, double at) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        done_entry *n = realloc(s->e, sizeof(done_entry) * (size_t)nc);
        if (!n) return 0;
        s->e = n;
        s->cap = nc;
    }
    done_entry *d = &s->e[s->n];
    d->id = strdup(id);
    d->fp = fp ? strdup(fp) : NULL;
    d->at = at;
    d->order = s->n;
    if (!d->id || (fp && !d->fp)) {
        free(d->id);
        free(d->fp);
        return 0;
    }
    s->n++;
    return 1;
}

/* After sorting: keeps only the latest entry of each id. */
static void idset_latest(idset *s) {
    if (!s->n) return;
    qsort(s->e, (size_t)s->n, sizeof *s->e, cmp_entry);
    int w = 0;
    for (int i = 0; i < s->n; i++) {
        if (i + 1 < s->n && !strcmp(s->e[i].id, s->e[i + 1].id)) {
            free(s->e[i].id);
            free(s->e[i].fp);
            continue;
        }
        s->e[w++] = s->e[i];
    }
    s->n = w;
}

static const done_entry *idset_find(const idset *s, const char *id) {
    return s->n ? bsearch(id, s->e, (size_t)s->n, sizeof *s->e, cmp_key) : NULL;
}

static void idset_free(idset *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->e[i].id);
        free(s->e[i].fp);
    }
    free(s->e);
}

static qv_status load_done(const char *dir, idset *done, qv_err *err) {
    DIR *d = opendir(dir);
    if (!d) return qv_errf(err, QV_ERR_IO, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    qv_status st = QV_OK;
    while (!st && (de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (strncmp(de->d_name, "results", 7) || nl < 13 || strcmp(de->d_name + nl - 6, ".jsonl")) continue;
        char *path = qv_path_join(dir, de->d_name);
        char *text = NULL;
        size_t len = 0;
        if (!path) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        else st = qv_read_file(path, &text, &len, (size_t)1 << 31, err);
        for (size_t i = 0; !st && i < len;) {
            size_t e = i;
            while (e < len && text[e] != '\n') e++;
            cJSON *o = cJSON_ParseWithLength(text + i, e - i);
            i = e + 1;
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
            const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
            const cJSON *out = cJSON_GetObjectItemCaseSensitive(o, "output");
            const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "fp");
            const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "at");
            if (cJSON_IsString(id) && cJSON_IsString(status) && !strcmp(status->valuestring, "ok") &&
                cJSON_IsString(out) && !strchr(out->valuestring, '/')) {
                char *op = qv_path_join(dir, out->valuestring);
                if (op && qv_file_exists(op) &&
                    !idset_add(done, id->valuestring, cJSON_IsString(fp) ? fp->valuestring : NULL,
                               cJSON_IsNumber(at) ? at->valuedouble : 0))
                    st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
                free(op);
            }
            cJSON_Delete(o);
        }
        free(text);
        free(path);
    }
    closedir(d);
    if (!st) idset_latest(done);
    return st;
}

/* Runs sharing a folder at the same time must split the jobs the same way (a run without --shard and a
 * run with --shard 0/2 would both take line 2). Each run holds a shared fcntl lock on byte N of
 * OUTDIR/.qv-batch.lock (N = 1 without shards) and then looks for a lock on any other byte: there is
 * one exactly when a run with another N is active. Locking before looking means two runs starting
 * together with different N cannot both miss each other. The locks go away with the process. */
static qv_status lock_shard_count(const char *dir, int sn, int *fd_out, qv_err *err) {
    char *lp = qv_path_join(dir, ".qv-batch.lock");
    if (!lp) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        qv_errf(err, QV_ERR_IO, "%s: %s", lp, strerror(errno));
        free(lp);
        return QV_ERR_IO;
    }
    free(lp);
    *fd_out = fd;
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = sn, .l_len = 1};
    if (fcntl(fd, F_SETLK, &fl) != 0) return qv_errf(err, QV_ERR_IO, "%s: cannot lock the folder: %s", dir, strerror(errno));
    const off_t ranges[2][2] = {{0, sn}, {sn + 1, 0}}; /* [start, len); len 0 = to the end */
    for (int r = 0; r < 2; r++) {
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = ranges[r][0], .l_len = ranges[r][1]};
        if (r == 0 && sn <= 0) continue;
        if (fcntl(fd, F_GETLK, &q) != 0) return qv_errf(err, QV_ERR_IO, "%s: cannot lock the folder: %s", dir, strerror(errno));
        if (q.l_type != F_UNLCK) {
            char other[64];
            if (q.l_start <= 1) snprintf(other, sizeof other, "without --shard");
            else snprintf(other, sizeof other, "with --shard I/%lld", (long long)q.l_start);
            return qv_errf(err, QV_ERR_INVALID,
                           "%s is in use by a qv batch run %s (pid %ld): runs sharing a folder at the same time must "
                           "use the same shard count",
                           dir, other, (long)q.l_pid);
        }
    }
    return QV_OK;
}

/* Removes temp files a killed run left behind for jobs of this shard: only names qv_tmp_create makes
 * for a job's result (".qv-tmp.ID.EXT.PID-N", EXT one of the result formats), never a user's file.
 * Only this shard writes those jobs (and it holds the status file's lock), so none can be in flight. */
static void remove_stale_temps(const char *dir, const qv_joblist *jl, int si, int sn) {
    DIR *d = opendir(dir);
    if (!d) return;
    static const char *const exts[] = {"txt", "json", "srt", "vtt"};
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, QV_TMP_PREFIX, sizeof QV_TMP_PREFIX - 1)) continue;
        for (int i = 0; i < jl->n; i++) {
            const qv_job *j = &jl->jobs[i];
            if (j->line % sn != si) continue;
            int mine = 0;
            for (int e = 0; e < 4 && !mine; e++) {
                char base[160];
                snprintf(base, sizeof base, "%s.%s", j->file_id, exts[e]);
                mine = qv_is_tmp_name(de->d_name, base);
            }
            if (!mine) continue;
            char *path = qv_path_join(dir, de->d_name);
            if (path) unlink(path);
            free(path);
            break;
        }
    }
    closedir(d);
}

qv_status qv_batch_run(const qv_batch_params *p, const qv_joblist *jl, qv_batch_stats *stats, qv_err *err) {
    qv_batch_stats st0 = {0};
    if (!stats) stats = &st0;
    memset(stats, 0, sizeof *stats);
    double t_start = qv_now();
    int sn = p->shard_n > 1 ? p->shard_n : 1, si = p->shard_n > 1 ? p->shard_i : 0;
    if (si < 0 || si >= sn) return qv_errf(err, QV_ERR_INVALID, "shard %d/%d: I must be from 0 to N-1", si, sn);
    if (qv_mkdir_p(p->out_dir, err) != QV_OK) return qv_err_prefix(err, "cannot create the output folder");
    int lock_fd = -1, dir_fd = -1;
    char *sname = qv_batch_status_name(si, sn);
    char *spath = sname ? qv_path_join(p->out_dir, sname) : NULL;
    free(sname);
    if (!spath) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    idset done = {0};
    qv_status rc = QV_OK;
    int n_sel = 0, k = 0;
    /* one writer per status file: a second process on the same file (the same shard twice, or two
     * unsharded runs) would duplicate work; the lock goes away with the process, even on SIGKILL */
    rc = lock_shard_count(p->out_dir, sn, &dir_fd, err);
    if (rc) goto out;
    /* the status file: never through a planted symlink, never a FIFO or device */
    lock_fd = open(spath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    struct stat lsb;
    if (lock_fd < 0 || fstat(lock_fd, &lsb) != 0 || !S_ISREG(lsb.st_mode)) {
        rc = qv_errf(err, QV_ERR_IO, "%s: %s", spath, lock_fd < 0 ? strerror(errno) : "not a regular file");
        goto out;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = qv_errf(err, QV_ERR_INVALID, "%s is in use by another qv batch (the same shard twice?)", spath);
        goto out;
    }
    rc = load_done(p->out_dir, &done, err);
    if (rc) goto out;
    remove_stale_temps(p->out_dir, jl, si, sn);
    for (int i = 0; i < jl->n; i++)
        if (jl->jobs[i].line % sn == si) n_sel++;
    stats->n_selected = n_sel;
    for (int i = 0; i < jl->n; i++) {
        const qv_job *j = &jl->jobs[i];
        if (j->line % sn != si) continue;
        k++;
        char *fp = p->fingerprint && !j->error ? p->fingerprint(p->user, j) : NULL;
        const done_entry *de = p->force ? NULL : idset_find(&done, j->id);
        if (de && (!de->fp || !fp || !strcmp(de->fp, fp))) {
            stats->n_skipped++;
            free(fp);
            continue;
        }
        if (de) {
            stats->n_changed++;
            if (p->on_job_changed) p->on_job_changed(p->user, k, n_sel, j);
        }
        if (p->abort_cb && p->abort_cb(p->user)) {
            free(fp);
            rc = qv_errf(err, QV_ERR_CANCELLED, "stopped by the user");
            goto out;
        }
        if (p->on_job_start) p->on_job_start(p->user, k, n_sel, j);
        double t0 = qv_now();
        qv_err jerr = {0};
        char *doc = NULL, *name = NULL;
        const char *ext = "txt";
        qv_status js;
        if (j->error) js = qv_errf(&jerr, QV_ERR_FORMAT, "%s", j->error);
        else js = p->run(p->user, j, &doc, &ext, &jerr);
        if (js == QV_ERR_CANCELLED || (js && p->abort_cb && p->abort_cb(p->user))) {
            free(doc);
            free(fp);
            rc = qv_errf(err, QV_ERR_CANCELLED, "stopped by the user during job %s (not recorded; a rerun redoes it)",
                         j->id);
            goto out;
        }
        if (!js) {
            size_t nl = strlen(j->file_id) + strlen(ext) + 2;
            name = malloc(nl);
            char *path = NULL;
            if (name) {
                snprintf(name, nl, "%s.%s", j->file_id, ext);
                path = qv_path_join(p->out_dir, name);
            }
            if (!path) js = qv_errf(&jerr, QV_ERR_NOMEM, "out of memory");
            else js = qv_write_file_atomic(path, doc ? doc : "", doc ? strlen(doc) : 0, &jerr);
            free(path);
        }
        free(doc);
        double secs = qv_now() - t0;
        rc = qv_batch_append_status(spath, j, js == QV_OK, js ? jerr.msg : NULL, js ? NULL : name, secs, fp, err);
        free(fp);
        if (rc) {
            free(name);
            goto out;
        }
        if (js) stats->n_failed++;
        else stats->n_ok++;
        if (p->on_job_done) p->on_job_done(p->user, k, n_sel, j, !js, secs, js ? jerr.msg : name);
        free(name);
    }
out:
    if (lock_fd >= 0) close(lock_fd);
    if (dir_fd >= 0) close(dir_fd);
    stats->seconds = qv_now() - t_start;
    idset_free(&done);
    free(spath);
    return rc;
}
