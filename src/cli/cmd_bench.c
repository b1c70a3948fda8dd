/* cmd_bench.c — qv bench: speed measurements.
 *   qv bench kernels [--threads N] [--quick]   qv_linear GFLOP/s (prefill shapes of the 7B) and GB/s of
 *                                               weights read (decode shapes), REF and FAST
 *   qv bench accuracy --model DIR --text F     top-1 / rel L2 of the fast paths against --ref (cmd_bench_accuracy.c)
 *   qv bench model --model DIR [...]            load time, peak RSS, prefill and decode tokens/s, vision
 *                                               encoding time for one 448x448 image and a 16-frame clip
 * Inputs are synthetic (token ids, pixel values): the numbers are about speed, not answers. */
#include "cache.h"
#include "cli.h"
#include "engine_cache.h"
#include "qstore.h"
#include "checkpoint.h"
#include "core.h"
#include "kernels.h"
#include "lm.h"
#include "model.h"
#include "safetensors.h"
#include "tensor.h"
#include "threads.h"
#include "encoder.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the whole process (all threads): on a shared machine, wall time / (cpu / threads)
 * tells how much of the cores the run actually got. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double rss_now_gb(void) {   /* resident pages now (/proc/self/statm), 0 when unknown */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    int ok = f && fscanf(f, "%llu %llu", &size, &res) == 2;
    if (f) fclose(f);
    return ok ? (double)res * 4096 / 1e9 : 0;
}

static void help(void) {
    puts("usage: qv bench kernels [--threads N] [--quick]\n"
         "       qv bench model --model DIR [--prompt-tokens N] [--context N] [--gen N] [--threads N] [--fast|--ref]\n"
         "                      [--q8|--q4] [--no-vision] [--no-warm] [--clip-frames N]\n"
         "       qv bench accuracy --model DIR --text FILE [--tokens N] [--q8] [--q4] [--json]   (--help: its options)\n\n"
         "kernels: GFLOP/s of the linear layer at the 7B prefill shapes (m=512, k=3584, n=3584 and 18944) and\n"
         "  GB/s of bf16 weights read at the decode shapes (m=1, n=18944 and 152064), REF and FAST paths, with\n"
         "  1 thread and with N threads (default: all CPUs), beside the memory's read bandwidth (their bound).\n"
         "model: opens the checkpoint and reports load time, prefill tokens/s for an N-token text prompt\n"
         "  (default 512), decode tokens/s over --gen tokens (default 32), vision encoding time for one\n"
         "  448x448 image (grid 1x32x32) and a 16-frame 448x448 clip (grid 8x32x32), and the peak RSS.\n"
         "  --fast (default) or --ref picks the numeric path; --q8 (--q4) quantizes the language model's\n"
         "  weights to 8 (4) bits at load (page-in + quantization timed, RSS after). Inputs are random: speed\n"
         "  only. Every weight page is read once after loading (reported as page-in) unless --no-warm.\n"
         "  --context N puts N positions of random keys and values into the KV cache first, so prefill and\n"
         "  decode run at that context (a 20-minute video is ~46k tokens: --context 46080); the KV cache\n"
         "  must fit in memory beside the weights (84 KiB per token on the 7B).\n\n"
         "examples:\n"
         "  qv bench kernels --quick\n"
         "  qv gen-weights --config ../shared/fixtures/models/qwen2vl-7b/config.json --out /tmp/qv7b\n"
         "  qv bench model --model /tmp/qv7b --threads 2\n"
         "  qv bench model --model /tmp/qv7b --threads 2 --no-vision --context 16384");
}

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static float frand(void) {   /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

/* ---- kernels ---- */

/* best wall time of reps calls; *cpu gets the process CPU seconds of that call */
static double time_linear(int reps, qv_pool *pool, qv_precision prec, float *Y, const float *X, const uint16_t *W,
                          int m, int n, int k, double *cpu) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = qv_now(), c = cpu_now();
        qv_linear(pool, prec, Y, n, X, W, NULL, m, n, k);
        t = qv_now() - t;
        c = cpu_now() - c;
        if (t < best) best = t, *cpu = c;
    }
    return best;
}

/* the memory's read bandwidth, the bound of a decode: threads sum disjoint parts of a buffer (8 independent
 * sums of 16-byte loads each, so loads, not adds, set the pace; prefetch 8 KiB ahead as the decode kernels) */
enum { READ_SLOTS = 256 };
typedef struct { const uint64_t *p; size_t n; uint64_t sum[READ_SLOTS]; } read_ctx;

static void read_task(void *ctx, int ith, int nth) {
    read_ctx *a = ctx;
    int64_t lo, hi;
    qv_split((int64_t)a->n, ith, nth, 64, &lo, &hi);
    typedef uint64_t v2 __attribute__((vector_size(16)));
    v2 s[8] = {{0}};
    for (int64_t i = lo; i + 16 <= hi; i += 16) {
        __builtin_prefetch(a->p + i + 1024);   /* 8 KiB ahead, as the decode kernels do */
        __builtin_prefetch(a->p + i + 1024 + 8);
        for (int e = 0; e < 8; e++) {
            v2 v;
            memcpy(&v, a->p + i + 2 * e, sizeof v);
            s[e] += v;
        }
    }
    v2 t = s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
    a->sum[ith % READ_SLOTS] = t[0] ^ t[1];
}

static double read_gbs(qv_pool *pool, const void *buf, size_t bytes, int reps) {
    read_ctx a = {.p = buf, .n = bytes / 8};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = qv_now();
        qv_pool_run(pool, read_task, &a);
        t = qv_now() - t;
        if (t < best) best = t;
    }
    return (double)bytes / best / 1e9;
}

static int bench_kernels(int n_threads, int quick) {
    const int k = 3584, vocab = quick ? 37984 : 152064;
    const int shapes[][2] = {{512, 3584}, {512, 18944}, {1, 18944}, {1, vocab}};
    size_t nw = (size_t)vocab * k, nx = (size_t)512 * k, ny = (size_t)512 * 18944;
    uint16_t *W = malloc(nw * sizeof *W);
    float *X = malloc(nx * sizeof *X), *Y = malloc(ny * sizeof *Y);
    if (!W || !X || !Y) {
        free(W); free(X); free(Y);
        return cli_fail("out of memory for the benchmark buffers (%.1f GB)", (nw * 2 + nx * 4 + ny * 4) / 1e9);
    }
    for (size_t i = 0; i < nw; i++) W[i] = qv_f32_to_bf16(frand() * 0.05f);
    for (size_t i = 0; i < nx; i++) X[i] = frand();
    qv_pool *all = qv_pool_create(n_threads);
    printf("kernels: %s, threads 1 and %d\n", qv_kernels_name(), qv_pool_size(all));
    /* the bound for the decode lines below: reading the same buffer without any arithmetic on it */
    printf("memory read (a %.2f GB buffer): %.1f GB/s with 1 thread, %.1f GB/s with %d\n", nw * 2 / 1e9,
           read_gbs(NULL, W, nw * 2, 3), read_gbs(all, W, nw * 2, 3), qv_pool_size(all));
    for (int pass = 0; pass < 2; pass++) {
        qv_pool *pool = pass ? all : NULL;
        if (pass && qv_pool_size(all) == 1) break;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int m = shapes[s][0], n = shapes[s][1];
            for (int p = 0; p < 2; p++) {
                qv_precision prec = p ? QV_PREC_FAST : QV_PREC_REF;
                int reps = m == 1 ? (quick ? 3 : 5) : (quick ? 1 : 2);
                double cpu = 0, t = time_linear(reps, pool, prec, Y, X, W, m, n, k, &cpu);
                double busy = cpu > 0 ? cpu : t;   /* per busy core: what a free core would give */
                if (m == 1)
                    printf("threads %-2d %-4s m=%-3d n=%-6d k=%d %9.2f ms %7.1f GB/s  (%.1f GB/s per busy core)\n",
                           qv_pool_size(pool), p ? "FAST" : "REF", m, n, k, t * 1e3, (double)n * k * 2 / t / 1e9,
                           (double)n * k * 2 / busy / 1e9);
                else
                    printf("threads %-2d %-4s m=%-3d n=%-6d k=%d %9.2f ms %7.1f GFLOP/s  (%.1f per busy core)\n",
                           qv_pool_size(pool), p ? "FAST" : "REF", m, n, k, t * 1e3, 2.0 * m * n * k / t / 1e9,
                           2.0 * m * n * k / busy / 1e9);
                fflush(stdout);
            }
        }
    }
    qv_pool_free(all);
    free(W); free(X); free(Y);
    return 0;
}

/* ---- model ---- */

typedef struct {
    const char *model;
    int prompt_tokens, gen, n_threads, vision, clip_frames, warm;
    int context;         /* --context: tokens already in the KV cache before the prompt */
    qv_precision prec;
    qv_quant quant;      /* --q8 */
} model_opts;

/* reads one byte per page of every tensor, so that the timings below do not include the first page-in
 * of the mapping (reported apart); volatile reads, so none is dropped */
/* reads one byte of every page of [p, p + n), so the page-in is not timed later */
static unsigned touch_pages(const void *p, uint64_t n) {
    const volatile unsigned char *c = p;
    unsigned sum = 0;
    for (uint64_t off = 0; off < n; off += 4096) sum += c[off];
    return sum;
}

static unsigned touch_weights(const qv_ckpt *ck) {
    unsigned sum = 0;
    for (int i = 0; i < qv_st_count(ck->st); i++) sum += touch_pages(qv_st_at(ck->st, i)->data, qv_st_at(ck->st, i)->nbytes);
    return sum;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* encode a t x gh x gw grid of random patches; seconds in *secs */
static qv_status bench_vision(qv_vision *v, qv_pool *pool, qv_precision prec, int t, int g, double *secs,
                              qv_err *err) {
    const int pd = qv_vision_patch_dim(v), D = qv_vision_hparams_of(v)->out_hidden;
    const size_t np = (size_t)g * g;
    float *px = malloc((size_t)t * np * pd * sizeof *px);
    float *out = malloc((size_t)t * (np / 4) * D * sizeof *out);
    qv_vision_ctx *c = NULL;
    qv_status st = QV_OK;
    if (!px || !out) st = qv_errf(err, QV_ERR_NOMEM, "out of memory for %d x %d x %d pixel patches", t, g, g);
    if (!st) st = qv_vision_ctx_create(&c, v, (int)np, err);
    if (!st) {
        for (size_t i = 0; i < (size_t)t * np * pd; i++) px[i] = frand() * 2.0f;
        double t0 = qv_now();
        st = qv_vision_encode(c, pool, prec, px, t, g, g, out, NULL, NULL, err);
        *secs = qv_now() - t0;
    }
    qv_vision_ctx_free(c);
    free(px);
    free(out);
    return st;
}

/* Puts n positions of small random keys and values into ctx's KV cache through the portable layout (lm.h,
 * 32 MiB at a time): the context a long prompt leaves, without computing it (attention's cost does not
 * depend on the values). */
static qv_status fill_context(qv_lm_ctx *ctx, const qv_text_hparams *hp, int n, qv_err *err) {
    const qv_dtype vt = qv_lm_kv_dtype(ctx), kt = vt == QV_BF16 ? QV_BF16 : QV_F32;
    const uint64_t kes = qv_dtype_size(kt), ves = qv_dtype_size(vt);
    const uint64_t seg[2] = {(uint64_t)n * hp->head_dim * kes, (uint64_t)n * hp->head_dim * ves};
    if (qv_lm_kv_bytes(ctx, n) != (uint64_t)hp->n_layers * hp->n_kv_heads * (seg[0] + seg[1]))
        return qv_errf(err, QV_ERR_UNSUPPORTED, "bench: unexpected KV cache layout");
    enum { BUF = 32 << 20 };
    unsigned char *buf = malloc(BUF);
    if (!buf) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    qv_status st = QV_OK;
    uint64_t off = 0;
    for (int s = 0; !st && s < 2 * hp->n_layers * hp->n_kv_heads; s++) {
        const int v = s & 1;
        const qv_dtype dt = v ? vt : kt;
        for (uint64_t done = 0; !st && done < seg[v];) {
            uint64_t len = seg[v] - done < BUF ? seg[v] - done : BUF, es = v ? ves : kes;
            for (uint64_t e = 0; e < len / es; e++) {
                float x = 0.5f * frand();
                if (dt == QV_F32) memcpy(buf + 4 * e, &x, 4);
                else {
                    uint16_t h = dt == QV_F16 ? qv_f32_to_f16(x) : qv_f32_to_bf16(x);
                    memcpy(buf + 2 * e, &h, 2);
                }
            }
            st = qv_lm_kv_write(ctx, n, off, len, buf, err);
            off += len;
            done += len;
        }
    }
    free(buf);
    return st;
}

static int bench_model(const model_opts *o) {
    qv_err err = {0};
    qv_ckpt *ck = NULL;
    qv_lm *lm = NULL;
    qv_lm_ctx *ctx = NULL;
    qv_vision *vis = NULL;
    qv_pool *pool = NULL;
    float *logits = NULL;
    int32_t *ids = NULL;
    int64_t *pos = NULL;
    qv_status st;
    int rc = 1;

    double t0 = qv_now();
    if ((st = qv_model_open(&ck, o->model, &err))) goto done;
    if ((st = qv_lm_create(&lm, ck, &err))) goto done;
    if (o->vision && (st = qv_vision_create(&vis, ck, &err))) goto done;
    double t_load = qv_now() - t0;
    pool = qv_pool_create(o->n_threads);
    if (!pool) { st = qv_errf(&err, QV_ERR_NOMEM, "cannot start the thread pool"); goto done; }
    double t_q8 = 0, c_q8 = 0;
    qv_qmap qmap = {0};
    const char *q_how = "";
    const char *qn = o->quant == QV_QUANT_Q4 ? "q4" : "q8";
    if (o->quant != QV_QUANT_NONE) {   /* quantizing reads every decoder weight once: that is the page-in */
        double tq = qv_now();
        c_q8 = cpu_now();
        /* as the engine does: mapped when stored in the cache folder (qv quantize), else made and stored */
        char *dir = qv_cache_default_dir();
        qv_ec *ec = dir ? qv_ec_create(ck, dir, 0) : NULL;
        if (ec && qv_ec_disk_dir(ec)) (void)qv_ec_fingerprint(ec);   /* made now: hashing the shards (once per */
        tq = qv_now();                                                  /* cache folder) is not the load */
        st = qv_qstore_apply(lm, o->quant, ec, pool, &qmap, &q_how, &err);
        qv_ec_free(ec);
        free(dir);
        if (st) goto done;
        t_q8 = qv_now() - tq;
        c_q8 = cpu_now() - c_q8;
    }

    const qv_text_hparams *hp = qv_lm_hparams(lm);
    const int n = o->prompt_tokens, N = o->context;
    qv_lm_ctx_params cp = qv_lm_ctx_default_params();
    cp.n_ctx = N + n + o->gen + 1;
    cp.prec = o->prec;
    cp.pool = pool;
    if (n > cp.chunk) cp.chunk = n;   /* whole prompt in one pass: the prefill speed of a long prompt */
    if ((st = qv_lm_ctx_create(&ctx, lm, &cp, &err))) goto done;
    logits = malloc((size_t)hp->vocab * sizeof *logits);
    ids = malloc((size_t)n * sizeof *ids);
    pos = malloc((size_t)3 * n * sizeof *pos);
    if (!logits || !ids || !pos) { st = qv_errf(&err, QV_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < n; i++) {   /* ordinary text tokens, text positions */
        ids[i] = 1000 + (int32_t)((g_rng = g_rng * 6364136223846793005ull + 1) >> 33) % 20000;
        if (ids[i] >= hp->vocab) ids[i] %= hp->vocab;
        pos[i] = pos[n + i] = pos[2 * (size_t)n + i] = N + i;
    }
    printf("model: %s (%s path, %d threads, kernels %s%s%s%s%s)\n", o->model, o->prec == QV_PREC_FAST ? "fast" : "ref",
           qv_pool_size(pool), qv_kernels_name(), o->quant ? ", " : "", o->quant ? qn : "",
           o->quant ? " weights " : "", o->quant ? qv_q8_kernels_name() : "");
    printf("load:    %.2f s (checkpoint mapped, weight tables built)\n", t_load);
    if (o->quant != QV_QUANT_NONE)
        printf("%s:      %s %.2f s (cpu %.1f s); load total %.2f s; RSS now %.2f GB\n", qn,
               !strcmp(q_how, "mapped") ? "mapped from the cache folder" : "page-in + quantize", t_q8, c_q8, t_load + t_q8,
               rss_now_gb());
    fflush(stdout);
    if (o->warm && qmap.addr) {   /* mapped weights: page them in now, as the bf16 path below */
        double tw = qv_now();
        (void)touch_pages(qmap.addr, qmap.len);
        printf("page-in: %.2f s (every page of the stored weights read once)\n", qv_now() - tw);
        fflush(stdout);
    }
    if (o->warm && o->quant == QV_QUANT_NONE) {
        double tw = qv_now();
        (void)touch_weights(ck);
        printf("page-in: %.2f s (every weight page read once; --no-warm leaves it to the prefill)\n", qv_now() - tw);
        fflush(stdout);
    }

    const int nth = qv_pool_size(pool);
    if (N > 0) {
        double tf = qv_now();
        if ((st = fill_context(ctx, hp, N, &err))) goto done;
        printf("context: %d tokens of random keys and values in the KV cache (%.2f GB, %.1f s); the prompt follows them\n",
               N, qv_lm_kv_bytes(ctx, N) / 1e9, qv_now() - tf);
        fflush(stdout);
    }
    double t1 = qv_now(), c1 = cpu_now();
    if ((st = qv_lm_prefill(ctx, ids, n, NULL, 0, pos, n, logits, NULL, NULL, &err))) goto done;
    double t_prefill = qv_now() - t1, c_prefill = cpu_now() - c1;
    printf("prefill: %d tokens%s in %.2f s = %.2f tokens/s (cpu %.1f s: %.2f tokens/s with %d free cores)\n", n,
           N ? " after the context" : "", t_prefill, n / t_prefill, c_prefill, n / (c_prefill / nth), nth);
    fflush(stdout);

    double t2 = qv_now(), c2 = cpu_now();
    int gen = 0;
    for (; gen < o->gen; gen++) {
        int32_t id = argmax(logits, hp->vocab);
        if ((st = qv_lm_decode(ctx, id, N + n + gen, logits, &err))) goto done;
    }
    double t_decode = qv_now() - t2, c_decode = cpu_now() - c2;
    if (gen)
        printf("decode:  %d tokens in %.2f s = %.2f tokens/s (cpu %.1f s: %.2f tokens/s with %d free cores)\n", gen,
               t_decode, gen / t_decode, c_decode, gen / (c_decode / nth), nth);
    qv_lm_stats ls;
    qv_lm_ctx_stats(ctx, &ls);
    printf("lm time: linear %.2f s, attention %.2f s, other %.2f s over %lld tokens\n", ls.linear_s, ls.attention_s,
           ls.other_s, (long long)ls.tokens);
    fflush(stdout);
    qv_lm_ctx_free(ctx);
    ctx = NULL;

    if (vis) {
        double ti = 0, tc = 0, c3 = cpu_now();
        if ((st = bench_vision(vis, pool, o->prec, 1, 32, &ti, &err))) goto done;
        printf("vision:  image 448x448 (grid 1x32x32, 256 tokens) %.2f s (cpu %.1f s)\n", ti, cpu_now() - c3);
        fflush(stdout);
        int pairs = (o->clip_frames + 1) / 2;
        if (pairs > 0) {
            double c4 = cpu_now();
            if ((st = bench_vision(vis, pool, o->prec, pairs, 32, &tc, &err))) goto done;
            printf("vision:  clip %d frames 448x448 (grid %dx32x32, %d tokens) %.2f s (cpu %.1f s)\n", o->clip_frames,
                   pairs, pairs * 256, tc, cpu_now() - c4);
        }
    }
    printf("peak RSS: %.2f GB\n", qv_peak_rss() / 1e9);
    rc = 0;
done:
    if (st) rc = cli_fail("%s", err.msg);
    free(logits);
    free(ids);
    free(pos);
    qv_lm_ctx_free(ctx);
    qv_vision_free(vis);
    qv_lm_free(lm);
    qv_qstore_unmap(&qmap);
    qv_ckpt_free(ck);
    qv_pool_free(pool);
    return rc;
}

int qv_cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    if (argc < 2 || cli_is_help(argv[1])) {
        help();
        return argc < 2 ? 2 : 0;
    }
    const char *what = argv[1];
    if (!strcmp(what, "accuracy")) return qv_cmd_bench_accuracy(argc, argv);   /* its own options */
    model_opts o = {cli_default_model(), 512, 32, 0, 1, 16, 1, 0, QV_PREC_FAST, QV_QUANT_NONE};
    int quick = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (cli_is_help(a)) { help(); return 0; }
        else if (!strcmp(a, "--model") && i + 1 < argc) o.model = argv[++i];
        else if (!strcmp(a, "--threads")) { if (!cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 0, 256, &v)) return 2; o.n_threads = (int)v; }
        else if (!strcmp(a, "--prompt-tokens")) { if (!cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 1, 1 << 20, &v)) return 2; o.prompt_tokens = (int)v; }
        else if (!strcmp(a, "--context")) { if (!cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 0, 1 << 20, &v)) return 2; o.context = (int)v; }
        else if (!strcmp(a, "--gen")) { if (!cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 0, 1 << 20, &v)) return 2; o.gen = (int)v; }
        else if (!strcmp(a, "--clip-frames")) { if (!cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 0, 4096, &v)) return 2; o.clip_frames = (int)v; }
        else if (!strcmp(a, "--fast")) o.prec = QV_PREC_FAST;
        else if (!strcmp(a, "--ref")) o.prec = QV_PREC_REF;
        else if (!strcmp(a, "--q8")) o.quant = QV_QUANT_Q8;
        else if (!strcmp(a, "--q4")) o.quant = QV_QUANT_Q4;
        else if (!strcmp(a, "--no-vision")) o.vision = 0;
        else if (!strcmp(a, "--no-warm")) o.warm = 0;
        else if (!strcmp(a, "--quick")) quick = 1;
        else return cli_unknown_option(cmd, a);
    }
    if (!strcmp(what, "kernels")) return bench_kernels(o.n_threads, quick);
    if (!strcmp(what, "model")) {
        if (!o.model) return cli_usage(cmd, "model needs --model DIR (or QV_MODEL in the environment)");
        return bench_model(&o);
    }
    return cli_usage(cmd, "unknown benchmark '%s' (kernels, model or accuracy)", what);
}
