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
};

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
    return p;
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
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
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
            snprintf(buf + n, cap - (size_t)n, " (%.1f %s/s)", p->done / el, *u ? u : "it");
        return;
    }
    if (el > 0.2 && p->done > 0) {
        double rate = p->done / el;
        n += snprintf(buf + n, cap - (size_t)n, "  %.1f %s/s", rate, *u ? u : "it");
        if (n < (int)cap && p->total > p->done) {
            qv_progress_fmt_duration(d, sizeof d, (p->total - p->done) / rate);
            snprintf(buf + n, cap - (size_t)n, "  ETA %s", d);
        }
    }
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
    double now = qv_now();
    if (strcmp(stage, p->stage) != 0 || done < p->done) {
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        p->stage_t0 = now;
        p->stage_ended = 0;
        p->last_draw = p->mode == QV_PROGRESS_PLAIN ? now : 0;
    }
    p->done = done;
    p->total = total;
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
    if (step && eta_s >= 0) {
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
    va_start(ap, fmt);
    fputs("qv: ", p->f);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
    fputc('\n', p->f);
    if (had && p->stage[0]) draw_tty(p, qv_now());
    fflush(p->f);
}
