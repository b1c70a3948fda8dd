/* cli_cost.c — the cost line printed before the heavy work, and --dry-run (issue 13): frames, resolution,
 * visual tokens and an estimated time on this machine (pipeline/cost.h), with the option that shrinks it.
 * Inputs are probed (frame count, size), never decoded; --dry-run reads config.json only, no weights. */
#include "cli_cost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cost.h"
#include "sampler.h"
#include "tasks.h"

typedef struct {
    int is_image;
    int64_t total;
    double fps, duration;
    int w, h;
} probe;

static qv_status probe_input(const char *path, int is_video, const qv_media_opts *mo, probe *p, qv_err *err) {
    qv_media_opts o = *mo;
    o.start_s = o.end_s = -1;
    o.pool = NULL;
    o.force_image = !is_video;
    qv_media *m = NULL;
    qv_status st = qv_media_open(&m, path, &o, err);
    if (!st) {
        const qv_media_info *mi = qv_media_get_info(m);
        *p = (probe){mi->is_image, mi->total_frames, mi->stream_fps, mi->duration_s, mi->src_w, mi->src_h};
    }
    qv_media_free(m);
    return st;
}

/* adds one input (a video over [a, b], or an image) to c; returns its vision tokens, -1 on error */
static int64_t add_input(qv_cost *c, const qv_model_config *mc, const probe *p, const qv_media_opts *mo, double a,
                         double b, qv_err *err) {
    int t = 1, gh, gw, n = 1;
    if (p->is_image) {
        double minp = mo->min_pixels > 0 ? (double)mo->min_pixels : (double)QV_IMAGE_MIN_PIXELS;
        double maxp = mo->max_pixels > 0 ? (double)mo->max_pixels : (double)QV_IMAGE_MAX_PIXELS;
        int h, w;
        if (qv_smart_resize(&h, &w, p->h, p->w, minp, maxp, err)) return -1;
        gh = h / 14, gw = w / 14;
    } else if (qv_cost_video_grid(p->total, p->fps, p->w, p->h, mo, a, b, &t, &gh, &gw, &n, err)) {
        return -1;
    }
    double span = p->is_image ? 0 : (b >= 0 ? b : p->duration) - (a > 0 ? a : 0);
    int64_t before = c->n_vision_tokens;
    qv_cost_add_vision(c, mc, t, gh, gw, n, span > 0 ? span : 0, p->w, p->h);
    return c->n_vision_tokens - before;
}

/* the whole plan with media options mo */
static int plan_cost(qv_cost *c, const qv_model_config *mc, const cli_cost_plan *pl, const probe *pr,
                     const qv_media_opts *mo, qv_err *err) {
    memset(c, 0, sizeof *c);
    int64_t text = pl->n_text > 0 ? pl->n_text : 30;
    if (!pl->windows && !pl->summary) { /* ask: one run over every input */
        int64_t vis = 0;
        for (int i = 0; i < pl->n_inputs; i++) {
            int64_t v = add_input(c, mc, &pr[i], mo, mo->start_s, mo->end_s, err);
            if (v < 0) return -1;
            vis += v;
        }
        qv_cost_add_run(c, mc, vis, text, pl->ask_tokens);
        return 0;
    }
    const probe *p = &pr[0];
    double t0 = mo->start_s > 0 ? mo->start_s : 0, t1 = mo->end_s >= 0 && mo->end_s < p->duration ? mo->end_s : p->duration;
    if (pl->windows) {
        double win = pl->window_s > 0 ? pl->window_s : qv_task_auto_window(t1 - t0);
        int n = qv_task_windows(t0, t1, win, NULL, 0);
        double (*w)[2] = n > 0 ? malloc(sizeof(double[2]) * (size_t)n) : NULL;
        if (!w) return qv_errf(err, QV_ERR_INVALID, "no windows between %.3f s and %.3f s", t0, t1), -1;
        qv_task_windows(t0, t1, win, w, n);
        for (int i = pl->skip_windows; i < n; i++) {
            int64_t v = add_input(c, mc, p, mo, w[i][0], w[i][1], err);
            if (v < 0) {
                free(w);
                return -1;
            }
            qv_cost_add_run(c, mc, v, text, pl->caption_tokens);
        }
        free(w);
    }
    if (pl->summary) {
        int64_t v = add_input(c, mc, p, mo, mo->start_s, mo->end_s, err);
        if (v < 0) return -1;
        qv_cost_add_run(c, mc, v, text, pl->summary_tokens);
    }
    return 0;
}

int cli_cost_report(const cli_opts *o, const char *cmd, const qv_model_config *mc, qv_pool *pool,
                    cli_cost_plan *pl, int dry_run) {
    if (o->quiet && !dry_run) return 0;
    int n_in = pl->n_inputs > 0 ? pl->n_inputs : 1;
    probe *pr = calloc((size_t)n_in, sizeof *pr);
    if (!pr) return cli_fail("out of memory");
    qv_err err = {0};
    int rc = 0;
    for (int i = 0; i < pl->n_inputs && !rc; i++)
        if (probe_input(pl->inputs[i].path, pl->inputs[i].is_video, &o->media, &pr[i], &err)) rc = 1;
    qv_cost c;
    if (!rc && plan_cost(&c, mc, pl, pr, &o->media, &err)) rc = 1;
    if (rc) {
        free(pr);
        if (dry_run) return cli_fail("%s", err.msg);
        qv_log(2, "no cost estimate: %s", err.msg);
        return 0; /* the run itself will say what is wrong */
    }
    /* the rates of this CPU */
    qv_pool *own = NULL;
    if (!pool) pool = own = qv_pool_create(o->n_threads);
    qv_cpu_speed sp;
    qv_cost_measure(pool, o->prec == QV_PREC_REF ? QV_PREC_REF : QV_PREC_FAST, mc, &sp);
    qv_pool_free(own);
    qv_cost_time(&c, mc, &sp, o->quant ? 1 : 2);
    pl->plan_s[0] = c.s_media + c.s_vision, pl->plan_units[0] = (double)c.n_pairs;
    pl->plan_s[1] = c.s_prefill, pl->plan_units[1] = (double)c.n_prompt;
    pl->plan_s[2] = c.s_generate, pl->plan_units[2] = (double)c.n_gen;

    /* what would shrink it: half the pixels per frame, or half the frame rate */
    qv_media_opts px = o->media, fr = o->media;
    px.max_pixels = (int64_t)c.width * c.height / 2;
    if (px.max_pixels < 784) px.max_pixels = 784;
    int64_t min_now = o->media.min_pixels > 0 ? o->media.min_pixels : QV_VIDEO_MIN_PIXELS;
    if (px.max_pixels < min_now) px.min_pixels = px.max_pixels; /* the floor must come down too */
    fr.fps = o->media.fps / 2;
    qv_cost cp, cf;
    int64_t tok_px = plan_cost(&cp, mc, pl, pr, &px, &err) ? -1 : cp.n_vision_tokens;
    int64_t tok_fr = plan_cost(&cf, mc, pl, pr, &fr, &err) ? -1 : cf.n_vision_tokens;
    free(pr);

    char total[32], vis[32], pre[32], gen[32], hint[256] = "";
    qv_progress_fmt_duration(total, sizeof total, c.s_total);
    qv_progress_fmt_duration(vis, sizeof vis, c.s_vision + c.s_media);
    qv_progress_fmt_duration(pre, sizeof pre, c.s_prefill);
    qv_progress_fmt_duration(gen, sizeof gen, c.s_generate);
    if (c.n_vision_tokens > 0 && tok_px >= 0)
        snprintf(hint, sizeof hint, "; fewer pixels cost less: --max-pixels %lld%s gives %lld visual tokens (or lower "
                 "--total-pixels), --fps %g gives %lld", (long long)px.max_pixels,
                 px.min_pixels == px.max_pixels ? " --min-pixels (same)" : "", (long long)tok_px, fr.fps,
                 (long long)tok_fr);
    char runs[48] = "";
    if (c.n_runs > 1) snprintf(runs, sizeof runs, " over %d runs", c.n_runs);
    fprintf(stderr,
            "qv %s: cost: %lld frames at %dx%d -> %lld visual tokens (%lld prompt tokens%s); estimated %s on this "
            "CPU (%d threads): vision %s, prefill %s, generating up to %lld tokens %s%s\n",
            cmd, (long long)c.n_frames, c.width, c.height, (long long)c.n_vision_tokens, (long long)c.n_prompt, runs,
            total, sp.n_threads, vis, pre, (long long)c.n_gen, gen, hint);
    if (dry_run) {
        /* machine-readable too (tests, scripts/cost_table.sh) */
        printf("{\"frames\": %lld, \"width\": %d, \"height\": %d, \"visual_tokens\": %lld, \"prompt_tokens\": %lld, "
               "\"runs\": %d, \"max_gen_tokens\": %lld, \"estimate_s\": %.3f, \"media_s\": %.3f, \"vision_s\": %.3f, "
               "\"prefill_s\": %.3f, \"generate_s\": %.3f, \"gemm_gflops\": %.1f, \"vision_gflops\": %.1f, "
               "\"decode_gbps\": %.2f, \"attention_gflops\": %.1f, \"threads\": %d, \"measure_s\": %.3f}\n",
               (long long)c.n_frames, c.width, c.height, (long long)c.n_vision_tokens, (long long)c.n_prompt, c.n_runs,
               (long long)c.n_gen, c.s_total, c.s_media, c.s_vision, c.s_prefill, c.s_generate, sp.gemm_gflops,
               sp.vis_gflops, sp.gemv_gbps, sp.attn_gflops, sp.n_threads, sp.seconds);
        fflush(stdout);
    }
    return 0;
}

int cli_cost_dry_run(const cli_opts *o, const char *cmd, cli_cost_plan *pl) {
    if (!o->model) return cli_usage(cmd, "no model: give --model DIR or set QV_MODEL");
    qv_model_config mc;
    qv_err err = {0};
    if (qv_config_load_dir(&mc, o->model, &err)) return cli_fail("%s", err.msg);
    return cli_cost_report(o, cmd, &mc, NULL, pl, 1);
}
