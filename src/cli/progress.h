/* progress.h — the progress display of the CLI (the library reports through callbacks only): one updating line on a terminal (stage, counts, rate,
 * ETA), plain log lines otherwise, nothing with --quiet. It matches the engine's on_progress callback, so
 * a run reports straight into it.
 *
 *   qv_progress *pg = qv_progress_create(stderr, QV_PROGRESS_AUTO);
 *   qv_progress_set_label(pg, "window 2/6");
 *   go.on_progress = qv_progress_cb; go.user = pg;          // stage "video" | "prefill" | "generate" ...
 *   qv_engine_run_raw(...);
 *   qv_progress_log(pg, "wrote %s", path);                   // a permanent line (the status line is redrawn)
 *   qv_progress_free(pg);                                    // clears the status line
 *
 * The stream is the caller's (stderr in the CLI): this object is the one place the tool's progress is
 * drawn. Terminal mode redraws at most 10 times a second (and on every stage end); plain mode writes one
 * line per finished stage that took 1 s or more, plus one every 10 s of a long stage. Not thread-safe: one per thread. */
#ifndef QV_PROGRESS_H
#define QV_PROGRESS_H

#include <stdio.h>

enum { QV_PROGRESS_AUTO = 0, QV_PROGRESS_TTY = 1, QV_PROGRESS_PLAIN = 2, QV_PROGRESS_QUIET = 3 };

typedef struct qv_progress qv_progress;

/* mode AUTO: TTY when isatty(fileno(f)) and $TERM is not "dumb", else PLAIN. NULL on OOM (callers may
 * pass a NULL qv_progress to every function below: it does nothing). */
qv_progress *qv_progress_create(FILE *f, int mode);
void qv_progress_free(qv_progress *p);                        /* NULL-safe; clears the line */
int qv_progress_mode(const qv_progress *p);                   /* the resolved mode (QUIET for NULL) */

/* A prefix for the following updates, e.g. "job 3/40 clip7" (copied; NULL clears), and an inner step
 * shown after it, e.g. "window 2/6" (tasks set the step, the batch sets the label). */
void qv_progress_set_label(qv_progress *p, const char *label);
void qv_progress_set_step(qv_progress *p, const char *step);
/* One update: stage name, done of total (total <= 0: unknown). A new stage name, or done going back,
 * restarts the stage's clock (rate = done / seconds since the stage began). */
void qv_progress_update(qv_progress *p, const char *stage, long done, long total);
/* The engine's on_progress signature (user = the qv_progress). */
void qv_progress_cb(void *user, const char *stage, long done, long total);
/* The task layer's on_step (pipeline/tasks.h; user = the qv_progress): the step, with " (all: ETA ...)"
 * when eta_s >= 0. */
void qv_progress_step_cb(void *user, const char *step, double eta_s);
/* The whole run (issue 13): the status line always ends with "| all: ELAPSED elapsed" since creation, and
 * "ETA x" over what is left of every stage of every run when a plan is set: the estimated seconds and
 * units (pairs, prompt tokens, generated tokens at most) of the stages vision, prefill and generate over
 * the whole task (cli_cost.h gives them); the ETA follows how the run goes against the plan. Outer counts
 * (batch: jobs done of total) give the ETA when there is no plan. */
void qv_progress_set_plan(qv_progress *p, const double seconds[3], const double units[3]);
void qv_progress_set_outer(qv_progress *p, long done, long total);
/* Tests: the clock the display reads (seconds; default qv_now); restarts the run's elapsed time. */
void qv_progress_set_clock(qv_progress *p, double (*clock)(void *user), void *user);
/* A permanent line (printf form, no newline needed); in TTY mode the status line is cleared first and
 * redrawn after. Printed in every mode except QUIET. */
void qv_progress_log(qv_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Erases the status line (before something else writes to the same terminal). */
void qv_progress_clear(qv_progress *p);

/* "1.2s", "3m05s", "1h02m" into out (for ETA / elapsed). */
void qv_progress_fmt_duration(char *out, size_t cap, double seconds);

#endif
