/* progress.c — one updating terminal line or plain log lines (see progress.h). */
#include "progress.h"
#include "core.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct qv_progress {
    FILE *f;
    int mode;
    char label[160];
    char step[96];
    char stage[32];
    long done, total;
    double stage_t0;      /* qv_now() when the stage began */
    double last_draw;     /* TTY: last redraw; PLAIN: last interim line */
    int line_shown;       /* TTY: a status line is on screen */
    int stage_ended;      /* the current stage reached done == total and was reported */
    /* the whole run (issue 13): elapsed since creation; with a plan (the cost estimate), the ETA over
     * every stage of every run; with outer counts (batch jobs), the ETA from the jobs done */
    double run_t0;
    int kind;             /* of the current stage: 0 vision (video, image), 1 prefill, 2 generate, -1 other */
    int have_plan;
    double plan_s[3], plan_units[3], done_units[3];
    long outer_done, outer_total;
    double rate[3];       /* smoothed rate per stage kind (units/s), kept from run to run */
    double rate_t, rate_done; /* last sample of the current stage */
    double unit_t;        /* when the current stage's count last moved */
    double (*clock)(void *); /* qv_now unless a test sets its own */
    void *clock_user;
};

static double p_now(const qv_progress *p) { return p->clock ? p->clock(p->clock_user) : qv_now(); }

void qv_progress_set_clock(qv_progress *p, double (*clock)(void *user), void *user) {
    if (!p) return;
    p->clock = clock;
    p->clock_user = user;
    p->run_t0 = p_now(p);
}

qv_progress *qv_progress_create(FILE *f, int mode) {
    qv_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->f = f ? f : stderr;
    if (mode == QV_PROGRESS_AUTO) {
        const char *term = getenv("TERM");
        int tty = isatty(fileno(p->f)) && !(term && strcmp(term, "dumb") == 0);
        mode = tty ? QV_PROGRESS_TTY : QV_PROGRESS_PLAIN;
    }
    p->mode = mode;
    p->run_t0 = qv_now();
    p->kind = -1;
    return p;
}

void qv_progress_set_plan(qv_progress *p, const double seconds[3], const double units[3]) {
    if (!p) return;
    p->have_plan = 0;
    for (int k = 0; k < 3; k++) {
        p->plan_s[k] = seconds[k] > 0 ? seconds[k] : 0;
        p->plan_units[k] = units[k] > 0 ? units[k] : 0;
        p->done_units[k] = 0;
        p->have_plan |= p->plan_s[k] > 0 && p->plan_units[k] > 0;
    }
}

void qv_progress_set_outer(qv_progress *p, long done, long total) {
    if (!p) return;
    p->outer_done = done;
    p->outer_total = total;
}

static int kind_of(const char *stage) {
    if (!strcmp(stage, "video") || !strcmp(stage, "image")) return 0;
    if (!strcmp(stage, "prefill")) return 1;
    if (!strcmp(stage, "generate")) return 2;
    return -1;
}

/* the planned seconds done so far: finished stages whole, the current one by its count, plus the part of
 * the unit in progress that the stage's rate says is done (pairs are long: the ETA must not stand still) */
static double plan_done_s(const qv_progress *p, double now) {
    double d = 0;
    for (int k = 0; k < 3; k++) {
        if (!(p->plan_units[k] > 0)) continue;
        double part = 0;
        if (p->kind == k && p->rate[k] > 0 && (p->total <= 0 || p->done < p->total)) {
            part = (now - p->unit_t) * p->rate[k];
            if (part > 0.95) part = 0.95;
        }
        double u = p->done_units[k] + (p->kind == k ? (double)p->done + part : 0);
        d += p->plan_s[k] * (u < p->plan_units[k] ? u / p->plan_units[k] : 1.0);
    }
    return d;
}

/* the whole run's remaining seconds, -1 when unknown: the plan's remaining seconds scaled by how the run
 * has gone against the plan so far (trusted in proportion to the part done, so it cannot jump at the start) */
static double whole_eta(const qv_progress *p, double now) {
    double el = now - p->run_t0;
    if (p->have_plan) {
        double total = p->plan_s[0] + p->plan_s[1] + p->plan_s[2], done = plan_done_s(p, now);
        if (!(total > 0)) return -1;
        double frac = done / total, ratio = done > 0 ? el / done : 1.0;
        double w = frac < 0.25 ? frac / 0.25 : 1.0;
        return (total - done) * (w * ratio + (1 - w));
    }
    if (p->outer_total > 0 && p->outer_done > 0 && p->outer_done < p->outer_total)
        return el / p->outer_done * (p->outer_total - p->outer_done);
    return -1;
}

int qv_progress_mode(const qv_progress *p) { return p ? p->mode : QV_PROGRESS_QUIET; }

void qv_progress_clear(qv_progress *p) {
    if (!p || p->mode != QV_PROGRESS_TTY || !p->line_shown) return;
    fputs("\r\033[K", p->f);
    fflush(p->f);
    p->line_shown = 0;
}

void qv_progress_free(qv_progress *p) {
    if (!p) return;
    qv_progress_clear(p);
    free(p);
}

void qv_progress_set_label(qv_progress *p, const char *label) {
    if (!p) return;
    qv_term_safe(label ? label : "", p->label, sizeof p->label); /* a job id may hold escape sequences */
}

void qv_progress_set_step(qv_progress *p, const char *step) {
    if (!p) return;
    snprintf(p->step, sizeof p->step, "%s", step ? step : "");
}

void qv_progress_fmt_duration(char *out, size_t cap, double s) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(out, cap, "?");
        return;
    }
    if (s < 60) snprintf(out, cap, "%.1fs", s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static const char *unit_of(const char *stage) {
    if (!strcmp(stage, "prefill") || !strcmp(stage, "generate")) return "tok";
    if (!strcmp(stage, "video")) return "pairs";
    if (!strcmp(stage, "image")) return "images";
    return "";
}

/* "[label] stage done/total unit  rate unit/s  ETA x" into buf */
static void describe(const qv_progress *p, double now, int final, char *buf, size_t cap) {
    double el = now - p->stage_t0;
    const char *u = unit_of(p->stage);
    int n = 0;
    if (p->label[0] && p->step[0]) n += snprintf(buf + n, cap - (size_t)n, "[%s | %s] ", p->label, p->step);
    else if (p->label[0] || p->step[0]) n += snprintf(buf + n, cap - (size_t)n, "[%s] ", p->label[0] ? p->label : p->step);
    if (n >= (int)cap) return;
    if (p->total > 0) n += snprintf(buf + n, cap - (size_t)n, "%s %ld/%ld%s%s", p->stage, p->done, p->total, *u ? " " : "", u);
    else n += snprintf(buf + n, cap - (size_t)n, "%s %ld%s%s", p->stage, p->done, *u ? " " : "", u);
    if (n >= (int)cap) return;
    char d[32];
    if (final) {
        qv_progress_fmt_duration(d, sizeof d, el);
        n += snprintf(buf + n, cap - (size_t)n, " in %s", d);
        if (n < (int)cap && el > 0 && p->done > 0)
            n += snprintf(buf + n, cap - (size_t)n, " (%.1f %s/s)", p->done / el, *u ? u : "it");
    }
    double rate = final ? 0 : p->kind >= 0 ? p->rate[p->kind] : (el > 0.2 && p->done > 0 ? p->done / el : 0);
    if (rate > 0) {
        n += snprintf(buf + n, cap - (size_t)n, "  %.1f %s/s", rate, *u ? u : "it");
        if (n < (int)cap && p->total > p->done) {
            qv_progress_fmt_duration(d, sizeof d, (p->total - p->done) / rate);
            n += snprintf(buf + n, cap - (size_t)n, "  ETA %s", d);
        }
    }
    if (n >= (int)cap) return;
    /* the whole run: elapsed, and the ETA over every stage, window and job left */
    char e[32];
    qv_progress_fmt_duration(e, sizeof e, now - p->run_t0);
    double all = whole_eta(p, now);
    if (all >= 0) {
        qv_progress_fmt_duration(d, sizeof d, all);
        snprintf(buf + n, cap - (size_t)n, "  | all: %s elapsed, ETA %s", e, d);
    } else {
        snprintf(buf + n, cap - (size_t)n, "  | all: %s elapsed", e);
    }
}

/* the stage's rate, smoothed (time constant ~3 s) and carried over from the same stage of the previous
 * run, so it does not jump when a stage starts or a chunk lands */
static void sample_rate(qv_progress *p, double now) {
    if (p->kind < 0) return;
    double dt = now - p->rate_t, du = (double)p->done - p->rate_done;
    if (dt < 0.25 || du <= 0) return; /* sampled when the count moves: a long pair does not drag it to 0 */
    double r = du / dt, a = 1.0 - exp(-dt / 3.0);
    double *s = &p->rate[p->kind];
    *s = *s > 0 ? *s + a * (r - *s) : r;
    p->rate_t = now;
    p->rate_done = (double)p->done;
}

static void draw_tty(qv_progress *p, double now) {
    char buf[512];
    describe(p, now, 0, buf, sizeof buf);
    /* a line longer than the terminal would wrap, and "\r + erase" clears only its last row */
    struct winsize ws;
    if (ioctl(fileno(p->f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 8) {
        size_t cols = (size_t)ws.ws_col - 1, chars = 0, i = 0;
        for (; buf[i]; i++) {
            if (((unsigned char)buf[i] & 0xC0) != 0x80 && chars++ == cols) break;
        }
        buf[i] = 0;
    }
    fprintf(p->f, "\r\033[K%s", buf);
    fflush(p->f);
    p->line_shown = 1;
    p->last_draw = now;
}

void qv_progress_update(qv_progress *p, const char *stage, long done, long total) {
    if (!p || p->mode == QV_PROGRESS_QUIET || !stage) return;
    double now = p_now(p);
    if (strcmp(stage, p->stage) != 0 || done < p->done) {
        /* the stage that ends counts whole in the plan (a generation that stopped early needs no more) */
        if (p->kind >= 0) p->done_units[p->kind] += (double)(p->total > 0 ? p->total : p->done);
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        p->kind = kind_of(stage);
        p->rate_t = now;
        p->rate_done = 0;
        p->done = 0;
        p->unit_t = now;
        p->stage_t0 = now;
        p->stage_ended = 0;
        p->last_draw = p->mode == QV_PROGRESS_PLAIN ? now : 0;
    }
    if (done != p->done || p->unit_t == 0) p->unit_t = now;
    p->done = done;
    p->total = total;
    sample_rate(p, now);
    int final = total > 0 && done >= total;
    if (p->mode == QV_PROGRESS_TTY) {
        if (final || now - p->last_draw >= 0.1) draw_tty(p, now);
        return;
    }
    /* plain: one line per finished stage that took a second or more, and an interim one every 10 s */
    if (final && !p->stage_ended && now - p->stage_t0 >= 1.0) { /* quick stages make no line */
        char buf[512];
        describe(p, now, 1, buf, sizeof buf);
        fprintf(p->f, "qv: %s\n", buf);
        fflush(p->f);
        p->stage_ended = 1;
    } else if (!final && now - p->last_draw >= 10.0) {
        char buf[512];
        describe(p, now, 0, buf, sizeof buf);
        fprintf(p->f, "qv: %s\n", buf);
        fflush(p->f);
        p->last_draw = now;
    }
}

void qv_progress_cb(void *user, const char *stage, long done, long total) {
    qv_progress_update((qv_progress *)user, stage, done, total);
}

void qv_progress_step_cb(void *user, const char *step, double eta_s) {
    char label[256], eta[32];
    const qv_progress *p = user;
    if (step && eta_s >= 0 && p && !p->have_plan) { /* with a plan the status line has the whole run's ETA */
        qv_progress_fmt_duration(eta, sizeof eta, eta_s);
        snprintf(label, sizeof label, "%s (all: ETA %s)", step, eta);
        step = label;
    }
    qv_progress_set_step((qv_progress *)user, step);
}

void qv_progress_log(qv_progress *p, const char *fmt, ...) {
    if (!p || p->mode == QV_PROGRESS_QUIET) return;
    int had = p->line_shown;
    qv_progress_clear(p);
    va_list ap;
    char raw[2048], safe[4096];
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    fprintf(p->f, "qv: %s\n", qv_term_safe(raw, safe, sizeof safe)); /* ids, paths, messages: no escapes */
    if (had && p->stage[0]) draw_tty(p, p_now(p));
    fflush(p->f);
}
