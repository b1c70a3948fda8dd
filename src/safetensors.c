/* safetensors.c — mmap'd safetensors shards with a bounds-checked header, the sharded index, and
 * writers (whole-file and streaming). Format: 8-byte little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data.
 * Every number in the header is checked: offsets are exact integers (read from the double cJSON
 * keeps, checked whole and below 2^53), inside the data, not overlapping, and dtype x shape matches. */
#define _GNU_SOURCE
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (256u << 20)
#define MAX_EXACT_DOUBLE 9007199254740992.0 /* 2^53 */

typedef struct {
    char *path;
    int fd;
    void *map;
    uint64_t size;
    cJSON *meta;                 /* __metadata__ (owned), may be NULL */
} shard;

typedef struct {
    qv_tensor t;
    int shard;
    uint64_t begin, end;         /* offsets relative to the data section */
} entry;

struct qv_st {
    shard *shards;
    int n_shards;
    entry *ents;                 /* sorted by name */
    int n_ents, cap_ents;
};

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry *)a)->t.name, ((const entry *)b)->t.name);
}

static int cmp_entry_offset(const void *a, const void *b) {
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* A JSON number that must be a whole number in [0, 2^53]. */
static int exact_u64(const cJSON *n, uint64_t *out) {
    if (!cJSON_IsNumber(n)) return 0;
    double d = n->valuedouble;
    if (!(d >= 0) || d > MAX_EXACT_DOUBLE || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static qv_status parse_shard(qv_st *st, int si, qv_err *err) {
    shard *sh = &st->shards[si];
    const char *fn = base_name(sh->path);
    sh->fd = qv_open_regular(sh->path, O_RDONLY, err);   /* a FIFO is refused, not waited on */
    if (sh->fd < 0) return err ? err->code : QV_ERR_IO;
    struct stat s;
    if (fstat(sh->fd, &s) != 0) return qv_errf(err, QV_ERR_IO, "%s: %s", sh->path, strerror(errno));
    sh->size = (uint64_t)s.st_size;
    if (sh->size < 8) return qv_errf(err, QV_ERR_FORMAT, "%s: too short for a safetensors file (%llu bytes)", fn, (unsigned long long)sh->size);
    sh->map = mmap(NULL, sh->size, PROT_READ, MAP_SHARED, sh->fd, 0);
    if (sh->map == MAP_FAILED) {
        sh->map = NULL;
        return qv_errf(err, QV_ERR_IO, "%s: mmap failed: %s", fn, strerror(errno));
    }
    const unsigned char *p = sh->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > sh->size - 8)
        return qv_errf(err, QV_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)", fn,
                       (unsigned long long)hlen, (unsigned long long)sh->size);
    if (hlen > MAX_HEADER_BYTES) return qv_errf(err, QV_ERR_FORMAT, "%s: header length %llu is absurd", fn, (unsigned long long)hlen);
    uint64_t data_off = 8 + hlen, data_size = sh->size - data_off;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qv_errf(err, QV_ERR_FORMAT, "%s: header is not a JSON object", fn);
    }
    qv_status rc = QV_OK;
    int first = st->n_ents;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string;
        if (!name) { rc = qv_errf(err, QV_ERR_FORMAT, "%s: header entry without a name", fn); break; }
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) { rc = qv_errf(err, QV_ERR_FORMAT, "%s: __metadata__ is not an object", fn); break; }
            if (!sh->meta) sh->meta = cJSON_Duplicate(it, 1);
            continue;
        }
        if (!cJSON_IsObject(it)) { rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': entry is not an object", fn, name); break; }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        qv_dtype dtype;
        if (!cJSON_IsString(dt)) { rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': missing dtype", fn, name); break; }
        if (!qv_dtype_parse(dt->valuestring, &dtype)) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", fn, name, dt->valuestring);
            break;
        }
        if (!cJSON_IsArray(sp) || cJSON_GetArraySize(sp) > QV_MAX_DIMS) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': shape missing or with more than %d dims", fn, name, QV_MAX_DIMS);
            break;
        }
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end]", fn, name);
            break;
        }
        entry e;
        memset(&e, 0, sizeof e);
        e.t.dtype = dtype;
        e.shard = si;
        uint64_t numel = 1;
        int ok = 1;
        for (cJSON *d = sp->child; d; d = d->next) {
            uint64_t v;
            if (!exact_u64(d, &v) || !qv_mul_ok(numel, v, &numel)) { ok = 0; break; }
            e.t.shape[e.t.ndim++] = (int64_t)v;
        }
        uint64_t nbytes;
        if (!ok || !qv_mul_ok(numel, qv_dtype_size(dtype), &nbytes)) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': shape is not a list of sizes or overflows", fn, name);
            break;
        }
        if (!exact_u64(of->child, &e.begin) || !exact_u64(of->child->next, &e.end) || e.begin > e.end) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': data_offsets are not whole numbers with begin <= end", fn, name);
            break;
        }
        if (e.end > data_size) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the data (%llu bytes)", fn, name,
                         (unsigned long long)e.begin, (unsigned long long)e.end, (unsigned long long)data_size);
            break;
        }
        if (e.end - e.begin != nbytes) {
            char sb[160];
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s': %s x %s needs %llu bytes but data_offsets give %llu", fn, name,
                         qv_dtype_name(dtype), qv_shape_str(&e.t, sb, sizeof sb), (unsigned long long)nbytes,
                         (unsigned long long)(e.end - e.begin));
            break;
        }
        /* the kernels read elements in place: a tensor that does not start on a multiple of its element
         * size (odd header length or offset) would be a misaligned load (UB; a fault on some CPUs) */
        if (nbytes && (data_off + e.begin) % qv_dtype_size(dtype)) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s' starts at byte %llu, not aligned to its %d-byte elements", fn, name,
                         (unsigned long long)(data_off + e.begin), (int)qv_dtype_size(dtype));
            break;
        }
        e.t.nbytes = nbytes;
        e.t.data = (const unsigned char *)sh->map + data_off + e.begin;
        e.t.name = strdup(name);
        if (!e.t.name) { rc = qv_errf(err, QV_ERR_NOMEM, "out of memory"); break; }
        if (st->n_ents == st->cap_ents) {
            int nc = st->cap_ents ? st->cap_ents * 2 : 256;
            entry *ne = realloc(st->ents, (size_t)nc * sizeof *ne);
            if (!ne) { free((void *)e.t.name); rc = qv_errf(err, QV_ERR_NOMEM, "out of memory"); break; }
            st->ents = ne;
            st->cap_ents = nc;
        }
        st->ents[st->n_ents++] = e;
    }
    cJSON_Delete(root);
    if (rc) return rc;
    /* overlap check within this shard */
    int n = st->n_ents - first;
    if (n > 1) {
        entry **v = malloc((size_t)n * sizeof *v);
        if (!v) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
        for (int i = 0; i < n; i++) v[i] = &st->ents[first + i];
        qsort(v, (size_t)n, sizeof *v, cmp_entry_offset);
        for (int i = 1; i < n && !rc; i++)
            if (v[i]->begin < v[i - 1]->end && v[i]->end > v[i]->begin)
                rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the file", fn, v[i - 1]->t.name, v[i]->t.name);
        free(v);
    }
    return rc;
}

void qv_st_free(qv_st *st) {
    if (!st) return;
    for (int i = 0; i < st->n_ents; i++) free((void *)st->ents[i].t.name);
    free(st->ents);
    for (int i = 0; i < st->n_shards; i++) {
        shard *sh = &st->shards[i];
        if (sh->map) munmap(sh->map, sh->size);
        if (sh->fd >= 0) close(sh->fd);
        cJSON_Delete(sh->meta);
        free(sh->path);
    }
    free(st->shards);
    free(st);
}

static int add_shard(qv_st *st, const char *path) {
    for (int i = 0; i < st->n_shards; i++)
        if (strcmp(st->shards[i].path, path) == 0) return i;
    shard *ns = realloc(st->shards, (size_t)(st->n_shards + 1) * sizeof *ns);
    if (!ns) return -1;
    st->shards = ns;
    memset(&ns[st->n_shards], 0, sizeof *ns);
    ns[st->n_shards].fd = -1;
    ns[st->n_shards].path = strdup(path);
    if (!ns[st->n_shards].path) return -1;
    return st->n_shards++;
}

/* Reads model.safetensors.index.json: registers the shards and checks every listed tensor afterwards. */
static qv_status open_index(qv_st *st, const char *dir, const char *index_path, cJSON **map_out, qv_err *err) {
    char *txt;
    size_t len;
    qv_status rc = qv_read_file(index_path, &txt, &len, 256u << 20, err);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(txt, len);
    free(txt);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return qv_errf(err, QV_ERR_FORMAT, "%s: not a safetensors index (no weight_map object)", base_name(index_path));
    }
    for (const cJSON *it = wm->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->string || strchr(it->valuestring, '/') || it->valuestring[0] == '.') {
            /* the message names the entry: build it before the JSON that holds the name is freed */
            qv_errf(err, QV_ERR_FORMAT, "%s: entry '%.200s' does not name a shard file in the folder", base_name(index_path),
                    it->string ? it->string : "?");
            cJSON_Delete(root);
            return QV_ERR_FORMAT;
        }
        char *p = qv_path_join(dir, it->valuestring);
        if (!p) { cJSON_Delete(root); return qv_errf(err, QV_ERR_NOMEM, "out of memory"); }
        if (!qv_file_exists(p)) {
            qv_errf(err, QV_ERR_IO, "%s: shard '%s' named in the index (for tensor '%s') is missing", base_name(index_path),
                    it->valuestring, it->string);
            free(p);
            cJSON_Delete(root);
            return QV_ERR_IO;
        }
        int si = add_shard(st, p);
        free(p);
        if (si < 0) { cJSON_Delete(root); return qv_errf(err, QV_ERR_NOMEM, "out of memory"); }
    }
    /* shards in file-name order, so listings and error messages are stable */
    for (int i = 1; i < st->n_shards; i++)
        for (int j = i; j > 0 && strcmp(st->shards[j - 1].path, st->shards[j].path) > 0; j--) {
            shard tmp = st->shards[j];
            st->shards[j] = st->shards[j - 1];
            st->shards[j - 1] = tmp;
        }
    *map_out = root;
    return QV_OK;
}

qv_status qv_st_open(qv_st **out, const char *path, qv_err *err) {
    *out = NULL;
    qv_st *st = calloc(1, sizeof *st);
    if (!st) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    struct stat s;
    qv_status rc = QV_OK;
    cJSON *index = NULL;
    if (stat(path, &s) != 0) {
        rc = qv_errf(err, QV_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(s.st_mode)) {
        char *ip = qv_path_join(path, "model.safetensors.index.json");
        char *sp = qv_path_join(path, "model.safetensors");
        if (!ip || !sp) rc = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        else if (qv_file_exists(ip)) rc = open_index(st, path, ip, &index, err);
        else if (qv_file_exists(sp)) rc = add_shard(st, sp) < 0 ? qv_errf(err, QV_ERR_NOMEM, "out of memory") : QV_OK;
        else rc = qv_errf(err, QV_ERR_IO, "%s: no model.safetensors.index.json or model.safetensors in this folder", path);
        free(ip);
        free(sp);
    } else if (add_shard(st, path) < 0) {
        rc = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < st->n_shards && !rc; i++) rc = parse_shard(st, i, err);
    if (rc) goto done;
    if (st->n_ents > 1) qsort(st->ents, (size_t)st->n_ents, sizeof *st->ents, cmp_entry); /* never qsort(NULL, 0): UB */
    for (int i = 1; i < st->n_ents; i++)
        if (strcmp(st->ents[i].t.name, st->ents[i - 1].t.name) == 0) {
            rc = qv_errf(err, QV_ERR_FORMAT, "%s: tensor '%s' appears twice", base_name(st->shards[st->ents[i].shard].path),
                         st->ents[i].t.name);
            goto done;
        }
    if (index) {
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
        for (const cJSON *it = wm->child; it; it = it->next) {
            const qv_tensor *t = qv_st_get(st, it->string);
            if (!t) {
                rc = qv_errf(err, QV_ERR_FORMAT, "model.safetensors.index.json: tensor '%s' is not in its shard '%s'", it->string,
                             it->valuestring);
                goto done;
            }
            const char *want = it->valuestring, *have = base_name(qv_st_shard_path(st, qv_st_shard_of(st, t)));
            if (strcmp(want, have) != 0) {
                rc = qv_errf(err, QV_ERR_FORMAT, "model.safetensors.index.json: tensor '%s' is listed in '%s' but stored in '%s'",
                             it->string, want, have);
                goto done;
            }
        }
    }
done:
    cJSON_Delete(index);
    if (rc) {
        qv_st_free(st);
        return rc;
    }
    *out = st;
    return QV_OK;
}

const qv_tensor *qv_st_get(const qv_st *st, const char *name) {
    int lo = 0, hi = st->n_ents - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(name, st->ents[mid].t.name);
        if (c == 0) return &st->ents[mid].t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

int qv_st_count(const qv_st *st) { return st->n_ents; }
const qv_tensor *qv_st_at(const qv_st *st, int i) { return &st->ents[i].t; }
int qv_st_n_shards(const qv_st *st) { return st->n_shards; }
const char *qv_st_shard_path(const qv_st *st, int i) { return st->shards[i].path; }
int qv_st_shard_of(const qv_st *st, const qv_tensor *t) { return ((const entry *)(const void *)t)->shard; }

void qv_st_prefetch(const qv_st *st) {
    for (int i = 0; i < st->n_shards; i++)
        if (st->shards[i].map) (void)madvise(st->shards[i].map, st->shards[i].size, MADV_WILLNEED);
}

const char *qv_st_meta(const qv_st *st, int shard_i, const char *key) {
    if (shard_i < 0 || shard_i >= st->n_shards || !st->shards[shard_i].meta) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->shards[shard_i].meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- writing ---- */

struct qv_st_writer {
    char *path, *tmp;
    int fd;
    struct { char *name; qv_dtype dt; int ndim; int64_t shape[QV_MAX_DIMS]; uint64_t nbytes, off; } *ts;
    int n, cap;
    uint64_t data_off, file_size;
};

qv_status qv_st_writer_create(qv_st_writer **out, const char *path, qv_err *err) {
    qv_st_writer *w = calloc(1, sizeof *w);
    if (!w) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    w->fd = -1;
    w->path = strdup(path);
    if (!w->path) { qv_st_writer_abort(w); return qv_errf(err, QV_ERR_NOMEM, "out of memory"); }
    /* w->tmp: made with the file (qv_tmp_create, exclusive) when the header is written */
    *out = w;
    return QV_OK;
}

int qv_st_writer_add(qv_st_writer *w, const char *name, qv_dtype dt, int ndim, const int64_t *shape) {
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 64;
        void *p = realloc(w->ts, (size_t)nc * sizeof *w->ts);
        if (!p) return -1;
        w->ts = p;
        w->cap = nc;
    }
    memset(&w->ts[w->n], 0, sizeof w->ts[w->n]);
    w->ts[w->n].name = strdup(name);
    if (!w->ts[w->n].name) return -1;
    w->ts[w->n].dt = dt;
    w->ts[w->n].ndim = ndim;
    uint64_t nb = qv_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        w->ts[w->n].shape[i] = shape[i];
        if (!qv_mul_ok(nb, (uint64_t)shape[i], &nb)) { free(w->ts[w->n].name); return -1; }
    }
    w->ts[w->n].nbytes = nb;
    return w->n++;
}

uint64_t qv_st_writer_file_size(const qv_st_writer *w) { return w->file_size; }

static qv_status write_all(int fd, const void *data, uint64_t len, uint64_t off, const char *path, qv_err *err) {
    const char *p = data;
    while (len) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n = pwrite(fd, p, chunk, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return qv_errf(err, QV_ERR_IO, "%s: write failed: %s", path, n < 0 ? strerror(errno) : "short write");
        p += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return QV_OK;
}

qv_status qv_st_writer_begin(qv_st_writer *w, const char *const *metadata, qv_err *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    if (metadata && metadata[0]) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; metadata[i] && metadata[i + 1]; i += 2) cJSON_AddStringToObject(m, metadata[i], metadata[i + 1]);
    }
    /* data offsets: tensors with larger elements first (8, 4, 2, 1 bytes), so that with the header padded
     * to 8 bytes every tensor starts aligned to its element size (the reader refuses misaligned ones)
     * and the data stays one buffer without holes, as the safetensors format asks */
    uint64_t off = 0;
    for (size_t es = 8; es >= 1; es /= 2)
        for (int i = 0; i < w->n; i++) {
            size_t d = qv_dtype_size(w->ts[i].dt);
            if (d == es || (es == 1 && d < 1) || (es == 8 && d > 8)) {
                w->ts[i].off = off;
                off += w->ts[i].nbytes;
            }
        }
    for (int i = 0; i < w->n; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, w->ts[i].name);
        cJSON_AddStringToObject(t, "dtype", qv_dtype_name(w->ts[i].dt));
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < w->ts[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)w->ts[i].shape[d]));
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)w->ts[i].off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(w->ts[i].off + w->ts[i].nbytes)));
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!js) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    unsigned char *hdr = malloc(8 + padded);
    if (!hdr) { cJSON_free(js); return qv_errf(err, QV_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < 8; i++) hdr[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(hdr + 8, js, jl);
    memset(hdr + 8 + jl, ' ', padded - jl);
    cJSON_free(js);
    w->data_off = 8 + padded;
    w->file_size = w->data_off + off;
    w->fd = qv_tmp_create(w->path, &w->tmp, err);
    qv_status rc = QV_OK;
    if (w->fd < 0) rc = err ? err->code : QV_ERR_IO;
    else {
        rc = write_all(w->fd, hdr, 8 + padded, 0, w->path, err);
        if (!rc) {
            int e = posix_fallocate(w->fd, 0, (off_t)w->file_size);
            if (e == ENOSPC) rc = qv_errf(err, QV_ERR_IO, "%s: no space left on device (needs %llu bytes)", w->path, (unsigned long long)w->file_size);
            else if (e && ftruncate(w->fd, (off_t)w->file_size) != 0)
                rc = qv_errf(err, QV_ERR_IO, "%s: %s", w->path, strerror(errno));
        }
    }
    free(hdr);
    return rc;
}

qv_status qv_st_writer_put(qv_st_writer *w, int i, uint64_t off, const void *data, uint64_t len, qv_err *err) {
    if (i < 0 || i >= w->n || off > w->ts[i].nbytes || len > w->ts[i].nbytes - off)
        return qv_errf(err, QV_ERR_INVALID, "%s: write outside tensor %d", w->path, i);
    return write_all(w->fd, data, len, w->data_off + w->ts[i].off + off, w->path, err);
}

static void writer_release(qv_st_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->ts[i].name);
    free(w->ts);
    free(w->path);
    free(w->tmp);
    free(w);
}

qv_status qv_st_writer_finish(qv_st_writer *w, qv_err *err) {
    qv_status rc = QV_OK;
    if (fsync(w->fd) != 0 && errno != EINVAL) rc = qv_errf(err, QV_ERR_IO, "%s: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && !rc) rc = qv_errf(err, QV_ERR_IO, "%s: %s", w->path, strerror(errno));
    w->fd = -1;
    if (!rc && rename(w->tmp, w->path) != 0) rc = qv_errf(err, QV_ERR_IO, "%s: %s", w->path, strerror(errno));
    if (rc) unlink(w->tmp);
    writer_release(w);
    return rc;
}

void qv_st_writer_abort(qv_st_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp) unlink(w->tmp);
    writer_release(w);
}

qv_status qv_st_write(const char *path, const qv_tensor *ts, int n, const char *const *metadata, qv_err *err) {
    qv_st_writer *w;
    qv_status rc = qv_st_writer_create(&w, path, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        uint64_t want;
        if (qv_st_writer_add(w, ts[i].name, ts[i].dtype, ts[i].ndim, ts[i].shape) < 0) {
            qv_st_writer_abort(w);
            return qv_errf(err, QV_ERR_NOMEM, "%s: cannot add tensor '%s'", path, ts[i].name);
        }
        want = w->ts[i].nbytes;
        if (ts[i].nbytes != want) {
            qv_st_writer_abort(w);
            return qv_errf(err, QV_ERR_INVALID, "%s: tensor '%s' has %llu bytes, shape needs %llu", path, ts[i].name,
                           (unsigned long long)ts[i].nbytes, (unsigned long long)want);
        }
    }
    rc = qv_st_writer_begin(w, metadata, err);
    for (int i = 0; i < n && !rc; i++) rc = qv_st_writer_put(w, i, 0, ts[i].data, ts[i].nbytes, err);
    if (rc) { qv_st_writer_abort(w); return rc; }
    return qv_st_writer_finish(w, err);
}
