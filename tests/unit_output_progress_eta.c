/* unit_output_progress_eta.c — the whole run's progress (issue 13) on a simulated clock: with a plan (the
 * cost estimate's seconds and units per stage) the status line shows the run's elapsed time and an ETA
 * over every stage of every window that, once a quarter is done, equals the true time left when the run
 * goes at a steady pace against the plan, across stage changes and windows; the stage rate is smoothed and
 * carried from window to window (no restart from zero, no jump); batch outer counts give an ETA too. */
#include "progress.h"
#include "test.h"

static double g_t;
static double fake_clock(void *user) {
    (void)user;
    return g_t;
}

static char *read_back(FILE *f) {
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    return s;
}

/* seconds of "1.5s" / "3m05s" / "1h02m" */
static double parse_dur(const char *s) {
    double a, b;
    if (sscanf(s, "%lfh%lfm", &a, &b) == 2 && strchr(s, 'h')) return a * 3600 + b * 60;
    if (sscanf(s, "%lfm%lfs", &a, &b) == 2 && strchr(s, 'm')) return a * 60 + b;
    if (sscanf(s, "%lfs", &a) == 1) return a;
    return -1;
}

int main(void) {
    /* a task of 3 windows; per window the plan says: vision 4 s for 2 pairs, prefill 6 s for 300 tokens,
     * generate 2 s for 20 tokens (36 s in all). The run goes 1.5x slower than planned: 54 s in all. */
    const double k = 1.5, win_s = 12.0;
    double plan_s[3] = {3 * 4.0, 3 * 6.0, 3 * 2.0}, units[3] = {3 * 2.0, 3 * 300.0, 3 * 20.0};
    FILE *f = tmpfile();
    g_t = 100.0;
    qv_progress *p = qv_progress_create(f, QV_PROGRESS_TTY); /* a redraw per update: every ETA is seen */
    qv_progress_set_clock(p, fake_clock, NULL);
    qv_progress_set_plan(p, plan_s, units);
    for (int w = 0; w < 3; w++) {
        double t0 = 100.0 + w * win_s * k;
        /* 0.5 s steps through the window at 1.5x the planned time */
        for (double s = 0; s <= win_s * k + 1e-9; s += 0.5) {
            g_t = t0 + s;
            double ps = s / k; /* planned seconds of this window done */
            if (ps < 4.0) qv_progress_update(p, "video", (long)(ps / 4.0 * 2), 2);
            else if (ps < 10.0) qv_progress_update(p, "prefill", (long)((ps - 4.0) / 6.0 * 300), 300);
            else qv_progress_update(p, "generate", (long)((ps - 10.0) / 2.0 * 20), 20);
        }
        qv_progress_update(p, "generate", 20, 20);
    }
    char *out = read_back(f);
    /* every line has the whole run's part; check the ETA against the true time left */
    int lines = 0, checked = 0, bad = 0, with_all = 0;
    for (char *line = strtok(out, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        lines++;
        char *all = strstr(line, "| all: ");
        if (!all) continue;
        with_all++;
        char el_s[32] = "", eta_s[32] = "";
        if (sscanf(all, "| all: %31s elapsed, ETA %31s", el_s, eta_s) != 2) continue;
        double el = parse_dur(el_s), eta = parse_dur(eta_s), left = 54.0 - el;
        if (el >= 54.0 * 0.25 + 1 && el < 53) { /* past the first quarter: exact up to the display's rounding */
            checked++;
            if (fabs(eta - left) > 1.0 + 0.02 * left) {
                bad++;
                fprintf(stderr, "ETA %s at %s elapsed (left %.1f): %s\n", eta_s, el_s, left, line);
            }
        }
    }
    CHECK_MSG(lines >= 100, "%d lines", lines);
    CHECK(with_all == lines);
    CHECK_MSG(checked >= 70, "%d ETAs checked", checked);
    CHECK(bad == 0);
    free(out);
    qv_progress_free(p);

    /* the stage rate is smoothed and carried from one window to the next: a new window's prefill starts
     * at the previous window's rate instead of from nothing */
    f = tmpfile();
    g_t = 0;
    p = qv_progress_create(f, QV_PROGRESS_TTY);
    qv_progress_set_clock(p, fake_clock, NULL);
    for (int i = 0; i <= 20; i++) { /* 100 tok/s for 10 s */
        g_t = i * 0.5;
        qv_progress_update(p, "prefill", i * 50, 1000);
    }
    qv_progress_update(p, "generate", 0, 10);
    g_t += 0.3;
    qv_progress_update(p, "video", 1, 4);
    g_t += 0.3;
    qv_progress_update(p, "prefill", 10, 1000); /* a new window: 0.3 s in, 10 tokens (a burst of 33 tok/s) */
    fseek(f, 0, SEEK_END);
    char *tty = read_back(f);
    char *last = strrchr(tty, '\r');
    double rate = 0;
    char *r = last ? strstr(last, "tok  ") : NULL;
    CHECK(last && strstr(last, "prefill 10/1000 tok"));
    CHECK(r && sscanf(r, "tok  %lf tok/s", &rate) == 1);
    CHECK_MSG(rate > 90 && rate < 110, "rate %g", rate);
    CHECK(last && strstr(last, "| all: 10.6s elapsed"));
    free(tty);
    qv_progress_free(p);

    /* a batch without a plan: the ETA from the jobs done */
    f = tmpfile();
    g_t = 0;
    p = qv_progress_create(f, QV_PROGRESS_TTY);
    qv_progress_set_clock(p, fake_clock, NULL);
    g_t = 30;
    qv_progress_set_outer(p, 3, 10);
    qv_progress_update(p, "prefill", 5, 100);
    char *b = read_back(f);
    CHECK_MSG(strstr(b, "| all: 30.0s elapsed, ETA 1m10s") != NULL, "%s", b);
    free(b);
    qv_progress_free(p);
    return test_done();
}
