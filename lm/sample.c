/* sample.c — next-token choice with transformers' generation semantics: the repetition penalty
 * (RepetitionPenaltyLogitsProcessor: over every id seen, logit > 0 -> logit / p, else logit * p), then
 * for sampling TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper (keeps the smallest set of
 * most likely tokens whose probability reaches top_p, at least one), softmax and a multinomial draw.
 * Greedy is argmax after the penalty (first index on ties, like torch.argmax).
 * RNG: xoshiro256** seeded through splitmix64, so a seed gives the same draws on every machine. */
#include "lm.h"

#include <math.h>
#include <stdlib.h>

struct qv_sampler {
    qv_sampler_params p;
    int vocab;
    float *work;       /* [vocab] processed logits, then probabilities */
    int32_t *idx;      /* [vocab] candidate ids, sorted by descending logit */
    uint64_t s[4];     /* xoshiro256** state */
};

qv_sampler_params qv_sampler_default_params(void) {
    qv_sampler_params p = {.greedy = 1, .temperature = 1.0f, .top_k = 0, .top_p = 1.0f,
                           .repetition_penalty = 1.0f, .seed = 0};
    return p;
}

qv_sampler_params qv_sampler_params_from_gen(const qv_gen_hparams *g) {
    qv_sampler_params p = qv_sampler_default_params();
    if (!g) return p;
    p.greedy = !g->do_sample;
    if (g->temperature > 0) p.temperature = g->temperature;
    else if (g->do_sample && g->temperature == 0) p.greedy = 1; /* temperature 0 means greedy */
    if (g->top_k > 0) p.top_k = g->top_k;
    if (g->top_p > 0 && g->top_p <= 1) p.top_p = g->top_p;
    if (g->repetition_penalty > 0) p.repetition_penalty = g->repetition_penalty;
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static double uniform01(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

qv_status qv_sampler_create(qv_sampler **out, const qv_sampler_params *p, int vocab, qv_err *err) {
    *out = NULL;
    qv_sampler_params d = qv_sampler_default_params();
    if (!p) p = &d;
    if (vocab <= 0) return qv_errf(err, QV_ERR_INVALID, "sampler: vocab %d", vocab);
    if (!p->greedy && !(p->temperature >= 0 && isfinite(p->temperature)))
        return qv_errf(err, QV_ERR_INVALID, "sampler: temperature must be >= 0 (got %g)", p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return qv_errf(err, QV_ERR_INVALID, "sampler: top_p must be in (0, 1] (got %g)", p->top_p);
    if (p->top_k < 0) return qv_errf(err, QV_ERR_INVALID, "sampler: top_k must be >= 0 (got %d)", p->top_k);
    if (!(p->repetition_penalty > 0 && isfinite(p->repetition_penalty)))
        return qv_errf(err, QV_ERR_INVALID, "sampler: repetition_penalty must be > 0 (got %g)",
                       p->repetition_penalty);
    qv_sampler *s = calloc(1, sizeof *s);
    if (!s) return qv_errf(err, QV_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    if (s->p.temperature == 0) s->p.greedy = 1; /* temperature 0 means greedy (the usual convention) */
    s->vocab = vocab;
    s->work = malloc((size_t)vocab * sizeof *s->work);
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    if (!s->work || !s->idx) {
        qv_sampler_free(s);
        return qv_errf(err, QV_ERR_NOMEM, "sampler: out of memory for vocab %d", vocab);
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->s[i] = splitmix64(&x);
    *out = s;
    return QV_OK;
}

void qv_sampler_free(qv_sampler *s) {
    if (!s) return;
    free(s->work);
    free(s->idx);
    free(s);
}

/* Sorts idx[0..n) by descending w[idx], ties by ascending id (deterministic). Heap sort: no recursion,
 * no allocation, O(n log n). */
static int before(const float *w, int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); }

static void sift(const float *w, int32_t *h, int64_t i, int64_t n) {
    /* min-heap in "before" order: the root is the element that sorts last */
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(w, h[m], h[l])) m = l;
        if (r < n && before(w, h[m], h[r])) m = r;
        if (m == i) return;
        int32_t t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static void sort_desc(const float *w, int32_t *idx, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift(w, idx, i, n);
    for (int64_t e = n - 1; e > 0; e--) {
        int32_t t = idx[0]; idx[0] = idx[e]; idx[e] = t;
        sift(w, idx, 0, e);
    }
}

/* Keeps the k largest of idx[0..n) in idx[0..k) (unordered), by a bounded heap: O(n log k). */
static void select_top(const float *w, int32_t *idx, int64_t n, int64_t k) {
    /* heap of size k whose root is the current worst of the kept ones */
    for (int64_t i = k / 2 - 1; i >= 0; i--) sift(w, idx, i, k);
    for (int64_t i = k; i < n; i++)
        if (before(w, idx[i], idx[0])) {
            int32_t t = idx[0]; idx[0] = idx[i]; idx[i] = t;
            sift(w, idx, 0, k);
        }
}

int32_t qv_sample(qv_sampler *s, const float *logits, const int32_t *history, int n_history) {
    const int V = s->vocab;
    float *w = s->work;
    for (int i = 0; i < V; i++) w[i] = logits[i];
    float rp = s->p.repetition_penalty;
    if (rp != 1.0f && history) {
        /* each seen id once: the reference gathers, penalizes and scatters (duplicates collapse). Mark
         * visited ids in idx[] (scratch) so a repeated id is not penalized twice. */
        for (int i = 0; i < n_history; i++) {
            int32_t id = history[i];
            if (id >= 0 && id < V) s->idx[id] = -1;
        }
        for (int i = 0; i < n_history; i++) {
            int32_t id = history[i];
            if (id < 0 || id >= V || s->idx[id] != -1) continue;
            s->idx[id] = 0;
            float x = logits[id];
            w[id] = x > 0 ? x / rp : x * rp;
        }
    }
    if (s->p.greedy) {
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (w[i] > w[best]) best = i;
        return best;
    }
    float inv_t = 1.0f / s->p.temperature;
    if (s->p.temperature != 1.0f)
        for (int i = 0; i < V; i++) w[i] *= inv_t;
    int64_t n = 0;
    for (int i = 0; i < V; i++)
        if (!isnan(w[i])) s->idx[n++] = i;
    if (n == 0) return 0;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top(w, s->idx, n, s->p.top_k);
        n = s->p.top_k;
    }
    sort_desc(w, s->idx, n);
    /* softmax over the candidates, in double for the cumulative sums */
    double mx = w[s->idx[0]], sum = 0;
    if (isinf(mx) && mx < 0) return s->idx[0];
    for (int64_t i = 0; i < n; i++) sum += exp((double)w[s->idx[i]] - mx);
    if (s->p.top_p < 1.0f) {
        double cum = 0, target = (double)s->p.top_p * sum;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += exp((double)w[s->idx[i]] - mx);
            if (cum >= target) { keep = i + 1; break; }
        }
        n = keep;
        sum = 0;
        for (int64_t i = 0; i < n; i++) sum += exp((double)w[s->idx[i]] - mx);
    }
    double u = uniform01(s->s) * sum, c = 0;
    for (int64_t i = 0; i < n; i++) {
        c += exp((double)w[s->idx[i]] - mx);
        if (u < c) return s->idx[i];
    }
    return s->idx[n - 1];
}
