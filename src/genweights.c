/* genweights.c — qv's own weight generator (spec/random-weights.md). Values depend only on the tensor
 * name, shape and element index, so any block of any tensor can be computed independently: threads
 * take 1M-element blocks and pwrite them into preallocated shard files, which keeps memory bounded
 * (a few MB per thread) and the 16.6 GB 7B stand-in at disk speed. Compiled without -ffast-math
 * (the whole project is) so the double arithmetic is the spec's. */
#define _GNU_SOURCE
#include "genweights.h"
#include "checkpoint.h"
#include "safetensors.h"
#include "threads.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint64_t qv_fnv1a64(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The element loop, written so the compiler vectorizes it (z >> 40 fits in 24 bits, so the int32
 * conversion is exact); cloned for AVX-512 and picked at run time, plain x86-64 otherwise. */
__attribute__((target_clones("arch=x86-64-v4", "default"))) QV_O3
static void gen_loop(uint16_t *restrict out, uint64_t seed, uint64_t start, uint64_t count, double scale, double offset) {
    for (uint64_t i = 0; i < count; i++) {
        uint64_t z = seed + start + i;
        z += 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        double u = (double)(int32_t)(z >> 40) * (1.0 / 16777216.0);
        double r = 2.0 * u - 1.0;
        float f = (float)(offset + r * scale);
        uint32_t b;
        memcpy(&b, &f, 4);
        out[i] = (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
    }
}

void qv_gen_bf16(uint16_t *out, const char *name, int ndim, const int64_t *shape, uint64_t start, uint64_t count) {
    size_t nl = strlen(name);
    uint64_t seed = qv_fnv1a64(name, nl), numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (uint64_t)shape[i];
    /* matrices: uniform with variance 1/fan_in; 1-D .bias: r/8; other 1-D (norms): 1 + r/8.
     * offset + r*scale equals the spec's expressions exactly: 0.0 + x == x, and 1.0 + r*0.125 is
     * the spec's own form. */
    double scale = 0.125, offset = 0.0;
    if (ndim >= 2) scale = sqrt(3.0 / (double)(numel / (uint64_t)shape[0]));
    else if (!(nl >= 5 && strcmp(name + nl - 5, ".bias") == 0)) offset = 1.0;
    gen_loop(out, seed, start, count, scale, offset);
}

/* ---- --outliers: "massive activations" (Sun et al. 2024, "Massive Activations in Large Language Models";
 * Bondarenko et al. 2023 for BERT): real LLMs, Qwen2 among them, carry a handful of FIXED hidden channels
 * whose activations (and the RMSNorm weights that scale them) are 10^2-10^4 times the rest, e.g. channels
 * 1415 and 2533 of LLaMA2-7B. The exact channels of Qwen2-VL-7B are not given by a source we can cite, so
 * we pick 5 channels spread over the width (per-mille positions below, 3584 -> 45 766 1641 2569 3249; the
 * tiny fixture's 32 -> 0 6 14 22 29): the measurement of issue 16 used 5 of 3584. What is scaled, by the
 * role the model's weight table gives each tensor (checkpoint.h qv_outlier_role; for the Qwen2 decoder,
 * lm/qwen2.c): every RMSNorm weight x60 on those channels (QV_OUT_CHANNELS), the embedding columns x20
 * (QV_OUT_COLUMNS: every token carries them, as the real ones do), and the rows of the first layer's MLP
 * down projection that write those channels x30 (QV_OUT_ROWS_FIRST_LAYER: where real models grow them). */
static const int outlier_permille[QV_GEN_N_OUTLIERS] = {13, 214, 458, 717, 907};

int qv_gen_outlier_dims(int D, int *dims) {
    int n = 0;
    for (int i = 0; i < QV_GEN_N_OUTLIERS; i++) {
        int d = (int)((int64_t)D * outlier_permille[i] / 1000);
        if (d >= D) d = D - 1;
        if (n == 0 || d > dims[n - 1]) dims[n++] = d;   /* increasing, distinct (tiny D may merge two) */
    }
    return n;
}

static uint16_t bf16_scaled(uint16_t v, float s) {
    uint32_t b = (uint32_t)v << 16;
    float f;
    memcpy(&f, &b, 4);
    f *= s;
    memcpy(&b, &f, 4);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

void qv_gen_outliers(uint16_t *out, const qv_tensor_spec *t, uint64_t start, uint64_t count, int D) {
    int dims[QV_GEN_N_OUTLIERS], nd = qv_gen_outlier_dims(D, dims);
    if (D <= 0) return;
    if (t->outlier == QV_OUT_CHANNELS && t->ndim == 1 && t->shape[0] == D) {
        for (int i = 0; i < nd; i++)
            if ((uint64_t)dims[i] >= start && (uint64_t)dims[i] < start + count) out[dims[i] - start] = bf16_scaled(out[dims[i] - start], 60.0f);
    } else if (t->outlier == QV_OUT_COLUMNS && t->ndim == 2 && t->shape[1] == D) {
        for (uint64_t e = start; e < start + count; e++) {
            int c = (int)(e % (uint64_t)D);
            for (int i = 0; i < nd; i++)
                if (c == dims[i]) out[e - start] = bf16_scaled(out[e - start], 20.0f);
        }
    } else if (t->outlier == QV_OUT_ROWS_FIRST_LAYER && t->ndim == 2 && t->shape[0] == D) {
        uint64_t F = (uint64_t)t->shape[1];
        for (uint64_t e = start; e < start + count; e++) {
            int r = (int)(e / F);
            for (int i = 0; i < nd; i++)
                if (r == dims[i]) out[e - start] = bf16_scaled(out[e - start], 30.0f);
        }
    }
}

qv_genweights_params qv_genweights_default_params(void) {
    qv_genweights_params p;
    memset(&p, 0, sizeof p);
    p.shard_bytes = 4000000000ull;
    return p;
}

#define BLOCK_ELEMS (1u << 20)

typedef struct {
    const qv_tensor_spec *spec;
    int shard, idx;              /* shard number and tensor index inside that shard's writer */
    uint64_t numel;
} gen_tensor;

typedef struct {
    gen_tensor *ts;
    int n_ts;
    uint64_t *block_start;       /* [n_ts + 1]: prefix sums of blocks per tensor */
    qv_st_writer **writers;
    atomic_uint_fast64_t next_block, done_bytes;
    uint64_t total_blocks, total_bytes;
    atomic_int failed;
    int outlier_D;               /* > 0: apply qv_gen_outliers with this hidden size */
    qv_err err;                  /* first failure */
    const qv_genweights_params *p;
} gen_job;

static void gen_task(void *ctx, int ith, int nth) {
    (void)nth;
    gen_job *j = ctx;
    uint16_t *buf = malloc(BLOCK_ELEMS * sizeof *buf);
    if (!buf) {
        if (!atomic_exchange(&j->failed, 1)) qv_errf(&j->err, QV_ERR_NOMEM, "out of memory");
        return;
    }
    int t = 0;
    for (;;) {
        uint64_t b = atomic_fetch_add(&j->next_block, 1);
        if (b >= j->total_blocks || atomic_load(&j->failed) || (j->p->abort_cb && j->p->abort_cb(j->p->user))) break;
        while (j->block_start[t + 1] <= b) t++;
        while (j->block_start[t] > b) t--;
        const gen_tensor *g = &j->ts[t];
        uint64_t start = (b - j->block_start[t]) * BLOCK_ELEMS;
        uint64_t cnt = g->numel - start < BLOCK_ELEMS ? g->numel - start : BLOCK_ELEMS;
        qv_gen_bf16(buf, g->spec->name, g->spec->ndim, g->spec->shape, start, cnt);
        if (j->outlier_D) qv_gen_outliers(buf, g->spec, start, cnt, j->outlier_D);
        qv_err e;
        if (qv_st_writer_put(j->writers[g->shard], g->idx, start * 2, buf, cnt * 2, &e)) {
            if (!atomic_exchange(&j->failed, 1)) j->err = e;
            break;
        }
        uint64_t d = atomic_fetch_add(&j->done_bytes, cnt * 2) + cnt * 2;
        if (ith == 0 && j->p->on_progress) j->p->on_progress(j->p->user, d, j->total_bytes);
    }
    free(buf);
}

static qv_status copy_file(const char *src, const char *dst, qv_err *err) {
    char *data;
    size_t len;
    qv_status rc = qv_read_file(src, &data, &len, 512u << 20, err);
    if (rc) return rc;
    rc = qv_write_file_atomic(dst, data, len, err);
    free(data);
    return rc;
}

/* Copies dir_from/name to out/name when it exists (or always, when required). */
static qv_status copy_named(const char *from_dir, const char *out_dir, const char *name, int required, qv_err *err) {
    char *src = qv_path_join(from_dir, name), *dst = qv_path_join(out_dir, name);
    qv_status rc = QV_OK;
    if (!src || !dst) rc = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    else if (qv_file_exists(src)) rc = copy_file(src, dst, err);
    else if (required) rc = qv_errf(err, QV_ERR_IO, "%s: not found", src);
    free(src);
    free(dst);
    return rc;
}

static char *dir_of(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return strdup(".");
    size_t n = (size_t)(s - path);
    char *d = malloc(n + 2);
    if (!d) return NULL;
    if (n == 0) { strcpy(d, "/"); return d; }
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

static qv_status write_index(const qv_genweights_params *p, gen_tensor *ts, int n, char **shard_names, uint64_t total, qv_err *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
    for (int i = 0; i < n; i++) cJSON_AddStringToObject(wm, ts[i].spec->name, shard_names[ts[i].shard]);
    char *js = cJSON_Print(root);
    cJSON_Delete(root);
    if (!js) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    char *path = qv_path_join(p->out_dir, "model.safetensors.index.json");
    qv_status rc = path ? qv_write_file_atomic(path, js, strlen(js), err) : qv_errf(err, QV_ERR_NOMEM, "out of memory");
    free(path);
    cJSON_free(js);
    return rc;
}

qv_status qv_genweights_write(const qv_genweights_params *p, qv_err *err) {
    qv_model_config mc;
    qv_config_defaults(&mc);
    char *txt = NULL;
    size_t len;
    qv_status rc = qv_read_file(p->config_path, &txt, &len, 16u << 20, err);
    if (rc) return rc;
    rc = qv_config_parse(&mc, txt, len, p->config_path, err);
    free(txt);
    if (rc) return rc;
    rc = qv_mkdir_p(p->out_dir, err);
    if (rc) return rc;

    if (!p->tensor_specs) return qv_errf(err, QV_ERR_INVALID, "gen-weights: no tensor table");
    int n = p->tensor_specs(&mc, NULL);
    qv_tensor_spec *specs = malloc((size_t)n * sizeof *specs);
    gen_tensor *ts = calloc((size_t)n, sizeof *ts);
    gen_job job;
    memset(&job, 0, sizeof job);
    job.block_start = calloc((size_t)n + 1, sizeof *job.block_start);
    char **names = NULL;
    int n_shards = 0;
    if (!specs || !ts || !job.block_start) { rc = qv_errf(err, QV_ERR_NOMEM, "out of memory"); goto out; }
    p->tensor_specs(&mc, specs);
    /* assign shards greedily in order */
    uint64_t cur = 0, total = 0, shard_bytes = p->shard_bytes ? p->shard_bytes : 4000000000ull;
    for (int i = 0; i < n; i++) {
        ts[i].spec = &specs[i];
        ts[i].numel = 1;
        for (int d = 0; d < specs[i].ndim; d++) ts[i].numel *= (uint64_t)specs[i].shape[d];
        uint64_t bytes = ts[i].numel * 2;
        if (n_shards == 0 || (cur > 0 && cur + bytes > shard_bytes)) { n_shards++; cur = 0; }
        ts[i].shard = n_shards - 1;
        cur += bytes;
        total += bytes;
        job.block_start[i + 1] = job.block_start[i] + (ts[i].numel + BLOCK_ELEMS - 1) / BLOCK_ELEMS;
    }
    names = calloc((size_t)n_shards, sizeof *names);
    job.writers = calloc((size_t)n_shards, sizeof *job.writers);
    if (!names || !job.writers) { rc = qv_errf(err, QV_ERR_NOMEM, "out of memory"); goto out; }
    for (int s = 0; s < n_shards && !rc; s++) {
        char nm[64];
        snprintf(nm, sizeof nm, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        names[s] = strdup(nm);
        char *path = qv_path_join(p->out_dir, nm);
        if (!names[s] || !path) rc = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        else rc = qv_st_writer_create(&job.writers[s], path, err);
        free(path);
    }
    for (int i = 0; i < n && !rc; i++) {
        ts[i].idx = qv_st_writer_add(job.writers[ts[i].shard], specs[i].name, QV_BF16, specs[i].ndim, specs[i].shape);
        if (ts[i].idx < 0) rc = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    static const char *const meta[] = {"format", "pt", NULL};
    for (int s = 0; s < n_shards && !rc; s++) rc = qv_st_writer_begin(job.writers[s], meta, err);
    if (rc) goto out;
    job.ts = ts;
    job.n_ts = n;
    job.total_blocks = job.block_start[n];
    job.total_bytes = total;
    job.p = p;
    job.outlier_D = p->outliers ? mc.text.hidden : 0;
    qv_pool *pool = qv_pool_create(p->n_threads);
    qv_pool_run(pool, gen_task, &job);
    qv_pool_free(pool);
    if (atomic_load(&job.failed)) {
        rc = job.err.code ? job.err.code : QV_ERR_IO;
        if (err) *err = job.err;
        goto out;
    }
    if (p->abort_cb && p->abort_cb(p->user)) { rc = qv_errf(err, QV_ERR_CANCELLED, "cancelled"); goto out; }
    for (int s = 0; s < n_shards && !rc; s++) {
        rc = qv_st_writer_finish(job.writers[s], err);
        job.writers[s] = NULL;
    }
    if (!rc) rc = write_index(p, ts, n, names, total, err);
    if (!rc) {
        char *cdir = dir_of(p->config_path), *dst = qv_path_join(p->out_dir, "config.json");
        if (!cdir || !dst) rc = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        else if (strcmp(p->config_path, dst) != 0) rc = copy_file(p->config_path, dst, err);
        if (!rc && strcmp(cdir, p->out_dir) != 0) {
            rc = copy_named(cdir, p->out_dir, "generation_config.json", 0, err);
            if (!rc) rc = copy_named(cdir, p->out_dir, "preprocessor_config.json", 0, err);
        }
        free(cdir);
        free(dst);
    }
    if (!rc && p->tokenizer_from) {
        static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"};
        char *probe = qv_path_join(p->tokenizer_from, "tokenizer.json"), *probe2 = qv_path_join(p->tokenizer_from, "vocab.json");
        if (!qv_file_exists(probe) && !qv_file_exists(probe2))
            rc = qv_errf(err, QV_ERR_IO, "%s: no tokenizer.json or vocab.json to copy", p->tokenizer_from);
        free(probe);
        free(probe2);
        for (int i = 0; i < 4 && !rc; i++) rc = copy_named(p->tokenizer_from, p->out_dir, tok_files[i], 0, err);
    }
out:
    if (job.writers)
        for (int s = 0; s < n_shards; s++) qv_st_writer_abort(job.writers[s]);
    if (names)
        for (int s = 0; s < n_shards; s++) free(names[s]);
    free(names);
    free(job.writers);
    free(job.block_start);
    free(ts);
    free(specs);
    return rc;
}
