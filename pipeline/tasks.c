/* tasks.c — subtitles, summaries and single questions over the engine (see tasks.h). */
#include "tasks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qv_task_opts qv_task_default_opts(void) {
    qv_task_opts o;
    memset(&o, 0, sizeof o);
    o.window_s = 10.0;
    o.caption_tokens = 48;
    o.first_line_only = 1;
    return o;
}

void qv_task_result_free(qv_task_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_segs; i++) free((char *)r->segs[i].text);
    free(r->segs);
    free(r->summary);
    memset(r, 0, sizeof *r);
}

double qv_task_auto_window(double span_s) {
    double w = ceil(span_s / 12.0 / 5.0) * 5.0;
    return w > 10.0 ? w : 10.0;
}

int qv_task_windows(double t0, double t1, double window_s, double (*w)[2], int cap) {
    if (!(t1 > t0) || !(window_s > 0)) return 0;
    double span = t1 - t0;
    double nf = floor(span / window_s);
    if (nf > 1e7) return 0;
    int n = (int)nf;
    double rest = span - n * window_s;
    double min_piece = window_s / 2 < 1.0 ? window_s / 2 : 1.0;
    if (rest > 1e-9 && (rest >= min_piece || n == 0)) n++;
    if (n == 0) n = 1;
    for (int i = 0; i < n && i < cap; i++) {
        w[i][0] = t0 + i * window_s;
        w[i][1] = i == n - 1 ? t1 : t0 + (i + 1) * window_s;
    }
    return n;
}

/* the answer cleaned for its use: trimmed; captions keep the first non-empty line; summaries stop at a
 * line that starts a new "Question:" (base models go on with another round) */
static char *clean_answer(const char *text, int first_line) {
    if (!text) text = "";
    const char *s = text;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t') s++;
    size_t n = strlen(s);
    if (first_line) {
        const char *nl = strpbrk(s, "\r\n");
        if (nl) n = (size_t)(nl - s);
    } else {
        const char *q = strstr(s, "\nQuestion:");
        if (q) n = (size_t)(q - s);
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t')) n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

/* duration of a video as the front end sees it (frames / fps) */
static qv_status probe_duration(const char *video, const qv_media_opts *mo, double *dur, qv_err *err) {
    qv_media_opts o = *mo;
    o.start_s = -1;
    o.end_s = -1;
    o.pool = NULL;
    qv_media *m = NULL;
    qv_status st = qv_media_open(&m, video, &o, err);
    if (st == QV_OK) {
        const qv_media_info *mi = qv_media_get_info(m);
        if (mi->is_image) st = qv_errf(err, QV_ERR_INVALID, "%s: a still image has no timeline (give a video)", video);
        else *dur = mi->duration_s;
    }
    qv_media_free(m);
    return st;
}

/* the part of the video in use: [start, end] clipped to the clip */
static qv_status span_of(const char *video, const qv_media_opts *mo, qv_task_result *out, qv_err *err) {
    double dur = 0;
    qv_status st = probe_duration(video, mo, &dur, err);
    if (st) return st;
    out->duration = dur;
    out->t0 = mo->start_s > 0 ? mo->start_s : 0;
    out->t1 = mo->end_s >= 0 && mo->end_s < dur ? mo->end_s : dur;
    if (!(out->t1 > out->t0))
        return qv_errf(err, QV_ERR_INVALID, "%s: nothing to use between %.3f s and %.3f s (the video lasts %.3f s)",
                       video, out->t0, out->t1, dur);
    return QV_OK;
}

/* Stop ids for a one-line answer: the engine's default stops plus the tokens that are a line break
 * (alone or after '.', '!', '?'), so a caption ends at its end of line instead of running on to
 * max_tokens (a base model goes on with "Question: ..."). n_break: how many of them are breaks (last).
 * Returns 0 (go unchanged) when the caller chose its own stop ids or disabled stops. */
static int add_line_stops(const qv_engine *e, qv_gen_opts *go, int *n_break) {
    *n_break = 0;
    if (go->n_stop > 0 || !go->use_stop) return 0;
    const qv_model_config *mc = qv_engine_config(e);
    const qv_tokenizer *tok = qv_engine_tokenizer(e);
    int n = 0;
    for (int i = 0; i < mc->gen.n_eos && n < 8; i++) go->stop_ids[n++] = mc->gen.eos_ids[i];
    static const char *const specials[] = {"<|endoftext|>", "<|im_end|>"}; /* as the engine's defaults */
    for (int i = 0; i < (qv_engine_is_chat(e) ? 2 : 1); i++) {
        int id = qv_tok_id(tok, specials[i], strlen(specials[i]));
        if (id >= 0) go->stop_ids[n++] = id;
    }
    int n_fixed = n;
    static const char *const breaks[] = {"\n", "\n\n", ".\n", ".\n\n", "\n\n\n", " \n", "!\n", "?\n"};
    for (size_t i = 0; i < sizeof breaks / sizeof *breaks && n < 16; i++) {
        int32_t *ids = NULL;
        size_t k = 0;
        if (qv_tok_encode(tok, breaks[i], strlen(breaks[i]), &ids, &k, NULL) == QV_OK && k == 1) {
            int dup = 0;
            for (int j = 0; j < n; j++) dup |= go->stop_ids[j] == ids[0];
            if (!dup) go->stop_ids[n++] = ids[0];
        }
        free(ids);
    }
    go->n_stop = n;
    *n_break = n - n_fixed;
    return 1;
}

/* one engine run: question about the video (win: only [win[0], win[1]] seconds) or the image; *text =
 * the cleaned answer */
static qv_status run_one(qv_engine *e, const char *path, int is_image, const char *question, const qv_media_opts *mo,
                         const double *win, const qv_gen_opts *go_in, const qv_task_opts *to, int first_line,
                         char **text, long *n_gen, qv_err *err) {
    const char *const paths[1] = {path};
    char *prompt = NULL;
    qv_status st = qv_engine_build_prompt(e, is_image ? NULL : paths, is_image ? 0 : 1, is_image ? paths : NULL,
                                          is_image ? 1 : 0, question, to->framing, &prompt, err);
    if (st) return st;
    qv_media_opts m = *mo;
    if (win && !is_image) { /* a window: its own frames; else the options as given */
        m.start_s = win[0];
        m.end_s = win[1];
    }
    qv_gen_opts go = *go_in;
    int n_break = 0;
    int line_stops = first_line && add_line_stops(e, &go, &n_break) && n_break > 0;
    *text = NULL;
    for (int attempt = 0; attempt < 2 && !st && !*text; attempt++) {
        qv_result res = {0};
        st = qv_engine_run_raw(e, prompt, &m, attempt ? go_in : &go, &res, err);
        if (st == QV_OK) {
            /* stopped at a line break: keep what the break token held before its newline (".\n" -> ".") */
            char tail[64] = "";
            int32_t last = res.n_gen > 0 ? res.gen_ids[res.n_gen - 1] : -1;
            int at_break = 0;
            for (int j = go.n_stop - n_break; line_stops && !attempt && res.stopped && j < go.n_stop; j++)
                at_break |= go.stop_ids[j] == last;
            if (at_break) {
                qv_tok_decode(qv_engine_tokenizer(e), &last, 1, 1, tail, sizeof tail);
                tail[strcspn(tail, "\n")] = 0;
            }
            size_t tl = strlen(res.text) + strlen(tail) + 1;
            char *full = malloc(tl);
            if (full) snprintf(full, tl, "%s%s", res.text, tail);
            *text = full ? clean_answer(full, first_line) : NULL;
            free(full);
            if (!*text) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
            else if (at_break && !**text) { /* the answer began with a line break: once more, no line stops */
                free(*text);
                *text = NULL;
            }
            *n_gen += res.n_gen;
        }
        qv_result_free(&res);
        if (!line_stops) break;
    }
    if (!st && !*text && !(*text = strdup(""))) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    free(prompt);
    return st;
}

/* "M:SS" or "H:MM:SS", with tenths when not a whole second (labels) */
static void short_time(char *out, size_t cap, double s) {
    long long ds = qv_time_ms(s) / 100; /* tenths */
    long long h = ds / 36000, m = (ds / 600) % 60, sec = (ds / 10) % 60, t = ds % 10;
    int n = h ? snprintf(out, cap, "%lld:%02lld:%02lld", h, m, sec) : snprintf(out, cap, "%lld:%02lld", m, sec);
    if (t && n > 0 && (size_t)n < cap) snprintf(out + n, cap - (size_t)n, ".%lld", t);
}

static qv_status captions(qv_engine *e, const char *video, const qv_media_opts *mo, const qv_gen_opts *go_in,
                          const qv_task_opts *to, qv_task_result *out, qv_err *err) {
    double win = to->window_s;
    if (win <= 0) win = qv_task_auto_window(out->t1 - out->t0);
    int n = qv_task_windows(out->t0, out->t1, win, NULL, 0);
    if (n <= 0) return qv_errf(err, QV_ERR_INVALID, "window length must be positive (got %g s)", win);
    double (*w)[2] = malloc(sizeof(double[2]) * (size_t)n);
    out->segs = calloc((size_t)n, sizeof(qv_segment));
    if (!w || !out->segs) {
        free(w);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory for %d windows", n);
    }
    qv_task_windows(out->t0, out->t1, win, w, n);
    qv_gen_opts go = *go_in;
    if (go.max_tokens <= 0) go.max_tokens = to->caption_tokens > 0 ? to->caption_tokens : 48;
    const char *q = to->prompt && *to->prompt ? to->prompt : QV_DEFAULT_CAPTION_PROMPT;
    qv_status st = QV_OK;
    int first = 0; /* windows finished by an earlier run */
    if (to->n_resume > n)
        st = qv_errf(err, QV_ERR_INVALID, "cannot resume: the earlier run has %d windows, this one %d (other --window, "
                     "--start or --end?)", to->n_resume, n);
    for (; !st && first < to->n_resume; first++) {
        const qv_segment *r = &to->resume[first];
        if (qv_time_ms(r->t0) != qv_time_ms(w[first][0]) || qv_time_ms(r->t1) != qv_time_ms(w[first][1])) {
            st = qv_errf(err, QV_ERR_INVALID, "cannot resume: finished window %d (%.3f-%.3f s) is not this run's "
                         "window %d (%.3f-%.3f s): other --window, --start or --end?", first + 1, r->t0, r->t1,
                         first + 1, w[first][0], w[first][1]);
            break;
        }
        char *text = strdup(r->text ? r->text : "");
        if (!text) {
            st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
            break;
        }
        out->segs[first] = (qv_segment){w[first][0], w[first][1], text};
        out->n_segs = first + 1;
    }
    if (!st && first > 0 && to->on_segment) to->on_segment(to->seg_user, out);
    double t_start = qv_now();
    for (int i = first; i < n && !st; i++) {
        char label[128], a[32], b[32];
        short_time(a, sizeof a, w[i][0]);
        short_time(b, sizeof b, w[i][1]);
        snprintf(label, sizeof label, "window %d/%d %s-%s", i + 1, n, a, b);
        /* whole-task ETA from the windows run so far (resumed ones took no time) */
        if (to->on_step) to->on_step(to->user, label, i > first ? (qv_now() - t_start) / (i - first) * (n - i) : -1);
        char *text = NULL;
        st = run_one(e, video, 0, q, mo, w[i], &go, to, to->first_line_only, &text, &out->n_gen_tokens,
                     err);
        if (st) {
            if (st != QV_ERR_CANCELLED) qv_err_prefix(err, "window %d (%s-%s)", i + 1, a, b);
            break;
        }
        out->segs[i].t0 = w[i][0];
        out->segs[i].t1 = w[i][1];
        out->segs[i].text = text;
        out->n_segs = i + 1;
        if (to->on_segment) to->on_segment(to->seg_user, out);
    }
    if (to->on_step) to->on_step(to->user, NULL, -1);
    free(w);
    return st;
}

qv_status qv_task_subtitles(qv_engine *e, const char *video, const qv_media_opts *mo, const qv_gen_opts *go,
                            const qv_task_opts *to, qv_task_result *out, qv_err *err) {
    memset(out, 0, sizeof *out);
    double t = qv_now();
    qv_task_opts d = qv_task_default_opts();
    if (!to) to = &d;
    qv_status st = span_of(video, mo, out, err);
    if (!st) st = captions(e, video, mo, go, to, out, err);
    out->seconds = qv_now() - t;
    return st;
}

qv_status qv_task_summarize(qv_engine *e, const char *video, const qv_media_opts *mo, const qv_gen_opts *go_in,
                            const qv_task_opts *to, int detail, qv_task_result *out,
                            qv_err *err) {
    memset(out, 0, sizeof *out);
    double t = qv_now();
    qv_task_opts d = qv_task_default_opts();
    if (!to) to = &d;
    qv_status st = span_of(video, mo, out, err);
    if (!st && detail) st = captions(e, video, mo, go_in, to, out, err);
    if (!st) {
        qv_gen_opts go = *go_in;
        if (go.max_tokens <= 0) go.max_tokens = 200;
        if (to->on_step) to->on_step(to->user, "summary", -1);
        const char *q = to->summary_prompt && *to->summary_prompt ? to->summary_prompt : QV_DEFAULT_SUMMARY_PROMPT;
        st = run_one(e, video, 0, q, mo, NULL, &go, to, 0, &out->summary, &out->n_gen_tokens, err);
        if (to->on_step) to->on_step(to->user, NULL, -1);
    }
    out->seconds = qv_now() - t;
    return st;
}

qv_status qv_task_ask(qv_engine *e, const char *path, int is_image, const char *question, const qv_media_opts *mo,
                      const qv_gen_opts *go_in, const qv_task_opts *to, qv_task_result *out,
                      qv_err *err) {
    memset(out, 0, sizeof *out);
    double t = qv_now();
    qv_task_opts d = qv_task_default_opts();
    if (!to) to = &d;
    out->duration = -1;
    qv_status st = QV_OK;
    if (!is_image) st = span_of(path, mo, out, err);
    if (!st) {
        out->segs = calloc(1, sizeof(qv_segment));
        if (!out->segs) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        qv_gen_opts go = *go_in;
        if (go.max_tokens <= 0) go.max_tokens = 256;
        char *text = NULL;
        st = run_one(e, path, is_image, question, mo, NULL, &go, to, 0, &text, &out->n_gen_tokens, err);
        if (!st) {
            out->segs[0] = (qv_segment){out->t0, out->t1, text};
            out->n_segs = 1;
        }
    }
    out->seconds = qv_now() - t;
    return st;
}

char *qv_task_render(qv_out_format fmt, const qv_task_result *r, const qv_out_meta *meta) {
    qv_out_meta m;
    if (meta) m = *meta;
    else memset(&m, 0, sizeof m);
    m.duration = r->duration;
    m.summary = r->summary;
    return qv_render(fmt, &m, r->segs, (size_t)r->n_segs);
}
