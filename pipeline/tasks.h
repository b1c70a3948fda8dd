/* tasks.h — the user-facing jobs on top of the engine: timestamped captions of a video window by window
 * (subtitles), a whole-video summary with an optional timestamped outline, and one question (ask) — each
 * giving segments that pipeline/output.h renders as text, JSON, SRT or WebVTT. Shared by `qv subtitles`,
 * `qv summarize`, `qv batch` and `qv demo`.
 *
 *   qv_task_opts to = qv_task_default_opts();              // 10 s windows, default prompts
 *   qv_task_result r = {0};
 *   qv_task_subtitles(engine, "talk.mp4", &media_opts, &gen_opts, &to, &r, &err);
 *   char *doc = qv_task_render(QV_FMT_SRT, &r, &meta_base);  ... qv_task_result_free(&r);
 *
 * Windows: the part of the video in use ([--start, --end], else the whole clip, as long as the media front
 * end reports: frames / fps) is cut into windows of window_s seconds; a last piece shorter than
 * min(1 s, window/2) joins the window before it. Each window is one engine run over its own frames
 * (media start/end = the window's bounds), so captions describe what happens inside their window and
 * times are exact: consecutive windows share their boundary, never overlap, and end at the clip's end.
 * A caption is the first non-empty line of the model's answer (a base model keeps writing "Question: ..."
 * after its answer); summaries keep the whole answer up to a following "Question:" line.
 * Errors (a video that does not open or decode, a window whose frames fail) stop the task with the
 * reason; go->abort_cb (passed down to every run) stops a task with QV_ERR_CANCELLED. Progress: the runs'
 * go->on_progress, and to->on_step per window. */
#ifndef QV_TASKS_H
#define QV_TASKS_H

#include "core.h"
#include "engine.h"
#include "output.h"

#define QV_DEFAULT_CAPTION_PROMPT "Describe what happens in this part of the video in one sentence."
#define QV_DEFAULT_SUMMARY_PROMPT "Summarize what happens in this video in a few sentences."

struct qv_task_result;

typedef struct {
    double window_s;          /* window length in seconds (default 10; <= 0: qv_task_auto_window) */
    const char *prompt;       /* per-window question (NULL = QV_DEFAULT_CAPTION_PROMPT) */
    const char *summary_prompt; /* whole-video question (NULL = QV_DEFAULT_SUMMARY_PROMPT) */
    const char *framing;      /* base-form framing (NULL = the engine's default "Question: {question} Answer:") */
    int caption_tokens;       /* max_tokens per window when the gen opts leave it at 0 or less (default 48) */
    int first_line_only;      /* 1 (default): a caption is the first non-empty line of the answer */
    /* the step in progress (may be NULL): "window 2/6 0:10-0:20" with the whole task's ETA in seconds
     * (< 0: not known yet), "summary", or NULL when the steps are over */
    void (*on_step)(void *user, const char *step, double eta_s);
    void *user;
    /* never lose finished work: on_segment is called after each finished window (subtitles, summarize
     * --detail) with the result so far (segs[0..n_segs), no summary yet), so the caller can stream the
     * cue and save what is done; resume: the finished windows of an earlier run (e.g. read back with
     * pipeline/cues.h), reused in order while their times match this run's windows (to the millisecond);
     * a mismatch is QV_ERR_INVALID (other --window/--start/--end). */
    void (*on_segment)(void *user, const struct qv_task_result *so_far);
    void *seg_user;
    const qv_segment *resume;
    int n_resume;
} qv_task_opts;

qv_task_opts qv_task_default_opts(void);

typedef struct qv_task_result {
    qv_segment *segs;         /* [n_segs] windows (subtitles, summarize --detail) or the one answer (ask) */
    int n_segs;
    char *summary;            /* summarize: the whole-video summary; ask: the answer */
    double duration;          /* seconds of the whole file (-1 unknown, images) */
    double t0, t1;            /* the part of the video used, seconds */
    double seconds;           /* wall time of the task */
    long n_gen_tokens;        /* tokens generated over all runs */
} qv_task_result;

void qv_task_result_free(qv_task_result *r);   /* frees the texts and arrays; NULL-safe */

/* Captions per window. go->max_tokens <= 0 takes to->caption_tokens. */
qv_status qv_task_subtitles(qv_engine *e, const char *video, const qv_media_opts *mo, const qv_gen_opts *go,
                            const qv_task_opts *to, qv_task_result *out, qv_err *err);
/* One summary of the whole part in use; detail: also the per-window captions (in out->segs). */
qv_status qv_task_summarize(qv_engine *e, const char *video, const qv_media_opts *mo, const qv_gen_opts *go,
                            const qv_task_opts *to, int detail, qv_task_result *out,
                            qv_err *err);
/* One question about a video (or a still image when is_image); the answer in out->summary and as one
 * segment spanning the part in use. */
qv_status qv_task_ask(qv_engine *e, const char *path, int is_image, const char *question, const qv_media_opts *mo,
                      const qv_gen_opts *go, const qv_task_opts *to, qv_task_result *out,
                      qv_err *err);

/* The document for a result: meta (may be NULL) gives video/model/task/prompt; duration and the summary
 * or answer come from r. malloc'd; NULL on OOM. */
char *qv_task_render(qv_out_format fmt, const qv_task_result *r, const qv_out_meta *meta);

/* A window length giving about a dozen windows: span/12 rounded up to 5 s, at least 10 s (the outline of
 * `summarize --detail` when no window is given: 10 s windows for a minute, 5 minutes for an hour). */
double qv_task_auto_window(double span_s);
/* Splits [t0, t1] into windows (see the top): writes up to cap bounds pairs into w ([cap][2]) and returns
 * the count (which may exceed cap: call again with more room); 0 when t1 <= t0 or window_s <= 0. */
int qv_task_windows(double t0, double t1, double window_s, double (*w)[2], int cap);

#endif
