/* unit_sample.c — properties of the sampler (lm/sample.c): greedy is argmax, the repetition penalty
 * follows transformers (logit > 0 divided, else multiplied, each seen id once), top-k = 1 is greedy, a
 * seed reproduces its draws, top-p keeps the minimal nucleus, and draw frequencies follow the softmax
 * of the (tempered, filtered) logits. */
#include "test.h"
#include "lm.h"

static qv_sampler *mk(qv_sampler_params p, int vocab) {
    qv_sampler *s = NULL;
    qv_err err;
    if (qv_sampler_create(&s, &p, vocab, &err) != QV_OK) fprintf(stderr, "create: %s\n", err.msg);
    return s;
}

/* empirical frequencies of n draws against expected probabilities; returns max abs difference */
static double freq_err(qv_sampler *s, const float *logits, int V, const double *want, int n) {
    int cnt[16] = {0};
    for (int i = 0; i < n; i++) {
        int id = qv_sample(s, logits, NULL, 0);
        if (id >= 0 && id < V) cnt[id]++;
    }
    double e = 0;
    for (int i = 0; i < V; i++) {
        double d = fabs((double)cnt[i] / n - want[i]);
        if (d > e) e = d;
    }
    return e;
}

static void softmax(double *p, const float *l, int V, double t) {
    double mx = -1e300, s = 0;
    for (int i = 0; i < V; i++) mx = l[i] / t > mx ? l[i] / t : mx;
    for (int i = 0; i < V; i++) s += p[i] = exp(l[i] / t - mx);
    for (int i = 0; i < V; i++) p[i] /= s;
}

int main(void) {
    qv_err err;
    qv_sampler_params g = qv_sampler_default_params();
    CHECK(g.greedy == 1);

    /* greedy = argmax, first index on ties */
    {
        float l[6] = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f, 0.0f};
        qv_sampler *s = mk(g, 6);
        CHECK(qv_sample(s, l, NULL, 0) == 1);
        qv_sampler_free(s);
    }
    /* repetition penalty: positive logits divided, negative multiplied, duplicates in history once */
    {
        qv_sampler_params p = g;
        p.repetition_penalty = 1.2f;
        qv_sampler *s = mk(p, 3);
        float l[3] = {2.0f, 1.9f, -5.0f};
        int32_t hist[3] = {0, 0, 0};
        CHECK(qv_sample(s, l, NULL, 0) == 0);
        CHECK(qv_sample(s, l, hist, 3) == 1);  /* 2.0/1.2 = 1.67 < 1.9, and not 2.0/1.2^3 either way */
        qv_sampler_free(s);
        p.repetition_penalty = 2.0f;
        s = mk(p, 2);
        float n[2] = {-1.0f, -1.1f};
        int32_t h1[1] = {0};
        CHECK(qv_sample(s, n, h1, 1) == 1);    /* -1 * 2 = -2 < -1.1 */
        /* penalty counted once: with 1.05 on id 0 seen twice, 2.0/1.05 = 1.905 > 1.9 (twice: 1.81 < 1.9) */
        p.repetition_penalty = 1.05f;
        qv_sampler_free(s);
        s = mk(p, 3);
        CHECK(qv_sample(s, l, hist, 3) == 0);
        qv_sampler_free(s);
    }
    /* top-k = 1 sampling equals greedy on random logits, whatever the seed and temperature */
    {
        enum { V = 1000 };
        static float l[V];
        uint64_t x = 12345;
        int ok = 1;
        for (int trial = 0; trial < 20; trial++) {
            for (int i = 0; i < V; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                l[i] = (float)((x >> 40) % 10000) / 1000.0f;
            }
            qv_sampler_params p = g;
            p.greedy = 0;
            p.top_k = 1;
            p.temperature = 0.5f + trial * 0.2f;
            p.seed = (uint64_t)trial;
            qv_sampler *a = mk(p, V), *b = mk(g, V);
            for (int k = 0; k < 5; k++) ok &= qv_sample(a, l, NULL, 0) == qv_sample(b, l, NULL, 0);
            qv_sampler_free(a);
            qv_sampler_free(b);
        }
        CHECK(ok);
    }
    /* seeds: same seed, same sequence; another seed, another sequence */
    {
        float l[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        qv_sampler_params p = g;
        p.greedy = 0;
        p.seed = 42;
        qv_sampler *a = mk(p, 8), *b = mk(p, 8);
        p.seed = 43;
        qv_sampler *c = mk(p, 8);
        int eq_ab = 1, eq_ac = 1;
        for (int i = 0; i < 64; i++) {
            int ia = qv_sample(a, l, NULL, 0), ib = qv_sample(b, l, NULL, 0), ic = qv_sample(c, l, NULL, 0);
            eq_ab &= ia == ib;
            eq_ac &= ia == ic;
        }
        CHECK(eq_ab);
        CHECK(!eq_ac);
        qv_sampler_free(a);
        qv_sampler_free(b);
        qv_sampler_free(c);
    }
    /* distribution follows softmax(l / T) */
    {
        float l[5] = {0.5f, -1.0f, 1.5f, 0.0f, 1.0f};
        double want[5];
        qv_sampler_params p = g;
        p.greedy = 0;
        p.seed = 7;
        qv_sampler *s = mk(p, 5);
        softmax(want, l, 5, 1.0);
        double e = freq_err(s, l, 5, want, 200000);
        CHECK_MSG(e < 0.006, "T=1 frequency error %g", e);
        qv_sampler_free(s);
        p.temperature = 2.0f;
        s = mk(p, 5);
        softmax(want, l, 5, 2.0);
        e = freq_err(s, l, 5, want, 200000);
        CHECK_MSG(e < 0.006, "T=2 frequency error %g", e);
        qv_sampler_free(s);
        /* top-k = 2: only ids 2 and 4, in ratio e^1.5 : e^1.0 */
        p.temperature = 1.0f;
        p.top_k = 2;
        s = mk(p, 5);
        double w2[5] = {0, 0, exp(1.5) / (exp(1.5) + exp(1.0)), 0, exp(1.0) / (exp(1.5) + exp(1.0))};
        e = freq_err(s, l, 5, w2, 200000);
        CHECK_MSG(e < 0.006, "top-k 2 frequency error %g", e);
        qv_sampler_free(s);
    }
    /* top-p keeps the minimal nucleus: probabilities 0.5, 0.3, 0.15, 0.05 */
    {
        float l[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
        qv_sampler_params p = g;
        p.greedy = 0;
        p.seed = 3;
        p.top_p = 0.75f;   /* 0.5 < 0.75 <= 0.8: {0, 1} */
        qv_sampler *s = mk(p, 4);
        double w[4] = {0.5 / 0.8, 0.3 / 0.8, 0, 0};
        double e = freq_err(s, l, 4, w, 100000);
        CHECK_MSG(e < 0.008, "top-p 0.75 frequency error %g", e);
        qv_sampler_free(s);
        p.top_p = 0.45f;   /* the top token alone already reaches it */
        s = mk(p, 4);
        double w1[4] = {1, 0, 0, 0};
        CHECK(freq_err(s, l, 4, w1, 2000) == 0);
        qv_sampler_free(s);
        p.top_p = 0.9f;    /* 0.8 < 0.9 <= 0.95: {0, 1, 2} */
        s = mk(p, 4);
        double w3[4] = {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0};
        e = freq_err(s, l, 4, w3, 100000);
        CHECK_MSG(e < 0.008, "top-p 0.9 frequency error %g", e);
        qv_sampler_free(s);
    }
    /* temperature 0 means greedy (issue 13): argmax every draw, whatever the seed */
    {
        float l[6] = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f, 0.0f};
        qv_sampler_params p = g;
        p.greedy = 0;
        p.temperature = 0;
        int ok = 1;
        for (uint64_t seed = 0; seed < 50; seed++) {
            p.seed = seed;
            qv_sampler *s = mk(p, 6);
            ok &= s && qv_sample(s, l, NULL, 0) == 1;
            qv_sampler_free(s);
        }
        CHECK(ok);
        qv_gen_hparams gh;
        memset(&gh, 0, sizeof gh);
        gh.do_sample = 1;
        gh.temperature = 0;
        CHECK(qv_sampler_params_from_gen(&gh).greedy == 1);
    }
    /* bad parameters are refused */
    {
        qv_sampler *s = NULL;
        qv_sampler_params p = g;
        p.greedy = 0;
        p.temperature = -1;
        CHECK(qv_sampler_create(&s, &p, 10, &err) == QV_ERR_INVALID && s == NULL);
        p = g;
        p.top_p = 1.5f;
        CHECK(qv_sampler_create(&s, &p, 10, &err) == QV_ERR_INVALID);
        p = g;
        p.repetition_penalty = 0;
        CHECK(qv_sampler_create(&s, &p, 10, &err) == QV_ERR_INVALID);
        CHECK(qv_sampler_create(&s, &g, 0, &err) == QV_ERR_INVALID);
        qv_sampler_free(NULL);
    }
    /* generation config: do_sample false -> greedy */
    {
        qv_gen_hparams gh;
        memset(&gh, 0, sizeof gh);
        gh.do_sample = 1;
        gh.temperature = 0.7f;
        gh.top_k = 20;
        gh.top_p = 0.8f;
        gh.repetition_penalty = 1.05f;
        qv_sampler_params p = qv_sampler_params_from_gen(&gh);
        CHECK(!p.greedy && p.top_k == 20 && fabsf(p.temperature - 0.7f) < 1e-6f && fabsf(p.top_p - 0.8f) < 1e-6f);
        gh.do_sample = 0;
        CHECK(qv_sampler_params_from_gen(&gh).greedy == 1);
    }
    return test_done();
}
