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
        if (!j->id) {
            char buf[32];
            snprintf(buf, sizeof buf, "line-%d", line);
            if (!(j->id = strdup(buf))) goto oom;
        }
        if (!(j->file_id = make_file_id(j->id))) goto oom;
        /* ids (and the file names made from them) must be unique */
        for (int k = 0; k < out->n - 1 && !j->error; k++) {
            if (!strcmp(out->jobs[k].id, j->id)) {
                /* report it under "line-N" so it cannot mark the first job as failed or done */
                char b2[64], nid[32];
                snprintf(b2, sizeof b2, "%d", out->jobs[k].line);
                if (!set_error(j, "id already used on line %s", b2)) goto oom;
                snprintf(nid, sizeof nid, "line-%d", line);
                free(j->id);
                free(j->file_id);
                j->file_id = NULL;
                if (!(j->id = strdup(nid)) || !(j->file_id = make_file_id(nid))) goto oom;
            } else if (!strcmp(out->jobs[k].file_id, j->file_id)) {
                if (!set_error(j, "id gives the same file name as the one on an earlier line (%s)", j->file_id))
                    goto oom;
            }
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
                                 double seconds, qv_err *err) {
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
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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

/* ids finished ok (with an existing output file), from every results*.jsonl in dir; sorted for bsearch */
typedef struct {
    char **ids;
    int n, cap;
} idset;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int idset_add(idset *s, const char *id) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        char **n = realloc(s->ids, sizeof(char *) * (size_t)nc);
        if (!n) return 0;
        s->ids = n;
        s->cap = nc;
    }
    if (!(s->ids[s->n] = strdup(id))) return 0;
    s->n++;
    return 1;
}

static int idset_has(const idset *s, const char *id) {
    return s->n && bsearch(&id, s->ids, (size_t)s->n, sizeof(char *), cmp_str) != NULL;
}

static void idset_free(idset *s) {
    for (int i = 0; i < s->n; i++) free(s->ids[i]);
    free(s->ids);
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
            if (cJSON_IsString(id) && cJSON_IsString(status) && !strcmp(status->valuestring, "ok") &&
                cJSON_IsString(out) && !strchr(out->valuestring, '/')) {
                char *op = qv_path_join(dir, out->valuestring);
                if (op && qv_file_exists(op) && !idset_add(done, id->valuestring))
                    st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
                free(op);
            }
            cJSON_Delete(o);
        }
        free(text);
        free(path);
    }
    closedir(d);
    if (!st && done->n) qsort(done->ids, (size_t)done->n, sizeof(char *), cmp_str);
    return st;
}

/* Removes temp files ("ID.EXT.tmp.PID") that a killed run left behind for jobs of this shard. Only this
 * shard writes those jobs (and it holds the status file's lock), so none of them can be in flight. */
static void remove_stale_temps(const char *dir, const qv_joblist *jl, int si, int sn) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *t = strstr(de->d_name, ".tmp.");
        if (!t) continue;
        const char *dot = NULL; /* the "." before EXT */
        for (const char *q = de->d_name; q < t; q++)
            if (*q == '.') dot = q;
        if (!dot) continue;
        size_t idn = (size_t)(dot - de->d_name);
        for (int i = 0; i < jl->n; i++) {
            const qv_job *j = &jl->jobs[i];
            if (j->line % sn != si || strlen(j->file_id) != idn || strncmp(j->file_id, de->d_name, idn)) continue;
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
    int lock_fd = -1;
    char *sname = qv_batch_status_name(si, sn);
    char *spath = sname ? qv_path_join(p->out_dir, sname) : NULL;
    free(sname);
    if (!spath) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    idset done = {0};
    qv_status rc = QV_OK;
    int n_sel = 0, k = 0;
    /* one writer per status file: a second process on the same file (the same shard twice, or two
     * unsharded runs) would duplicate work; the lock goes away with the process, even on SIGKILL */
    lock_fd = open(spath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
        rc = qv_errf(err, QV_ERR_IO, "%s: %s", spath, strerror(errno));
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
        if (idset_has(&done, j->id)) {
            stats->n_skipped++;
            continue;
        }
        if (p->abort_cb && p->abort_cb(p->user)) {
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
        rc = qv_batch_append_status(spath, j, js == QV_OK, js ? jerr.msg : NULL, js ? NULL : name, secs, err);
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
    stats->seconds = qv_now() - t_start;
    idset_free(&done);
    free(spath);
    return rc;
}
