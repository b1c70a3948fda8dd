/* output.h — the result writers: plain text, JSON, SubRip (SRT) and WebVTT, rendered into memory so the
 * caller can write the file atomically (qv_write_file_atomic) or print it.
 *
 *   qv_segment segs[] = {{0.0, 10.0, "A man walks."}, {10.0, 20.0, "He sits down."}};
 *   qv_out_meta meta = {.video = "clip.mp4", .duration = 20.0};
 *   char *doc = qv_render(QV_FMT_SRT, &meta, segs, 2);        // NULL only on out-of-memory
 *   qv_write_file_atomic("clip.srt", doc, strlen(doc), &err); free(doc);
 *
 * Timestamps: seconds are rounded to whole milliseconds half-to-even (nearbyint), so a segment's end and
 * the next one's start, equal in seconds, stay equal after rounding: cues never overlap. SRT writes
 * HH:MM:SS,mmm, WebVTT HH:MM:SS.mmm (hours never wrap; more than 99 hours widens the field).
 * Text: invalid UTF-8 becomes U+FFFD, control characters other than newline are dropped, CR LF becomes LF,
 * blank lines inside a cue are collapsed (a blank line ends a cue in both SRT and WebVTT), "-->" cannot
 * appear in a cue (WebVTT escapes '&', '<', '>' as entities; SRT writes "-- >"), and an empty
 * caption is written as "..." so the cue still has a text line. JSON is built with cJSON (proper string
 * escaping; non-ASCII stays UTF-8).
 *
 * References: SubRip as read by common players and ffmpeg's srtdec; W3C WebVTT (cue timings, the
 * "WEBVTT" signature, escaping in cue text). */
#ifndef QV_OUTPUT_H
#define QV_OUTPUT_H

#include <stddef.h>
#include "core.h"

typedef enum { QV_FMT_TEXT = 0, QV_FMT_JSON, QV_FMT_SRT, QV_FMT_VTT } qv_out_format;

typedef struct {
    double t0, t1;      /* seconds from the start of the video; t1 >= t0 */
    const char *text;   /* UTF-8, not owned */
} qv_segment;

typedef struct {
    const char *video;     /* input path (JSON "video"), may be NULL */
    const char *model;     /* model folder (JSON "model"), may be NULL */
    const char *task;      /* "subtitles", "summarize", "ask" (JSON "task"), may be NULL */
    const char *prompt;    /* the per-window or whole prompt/question (JSON "prompt"), may be NULL */
    const char *summary;   /* summarize: the whole-video summary (text first line / JSON "summary"), may be NULL */
    double duration;       /* seconds, < 0 when unknown */
} qv_out_meta;

/* "srt", "vtt"/"webvtt", "json", "text"/"txt" (case-insensitive) -> format; -1 if unknown. */
int qv_format_from_name(const char *name);
/* Format from a path's extension (.srt .vtt .json .txt); -1 if none matches. */
int qv_format_from_path(const char *path);
const char *qv_format_ext(qv_out_format f); /* "srt", "vtt", "json", "txt" */

/* Milliseconds for a time in seconds (half-to-even; negative and NaN clamp to 0). */
long long qv_time_ms(double seconds);
/* Writes "HH:MM:SS,mmm" (sep ',') or "HH:MM:SS.mmm" (sep '.') into out (cap >= 24 always suffices).
 * Returns the length written. */
int qv_format_timestamp(char *out, size_t cap, long long ms, char sep);

/* The whole document (NUL-terminated, malloc'd, caller frees); NULL on out-of-memory.
 * TEXT: the summary (if any) then one "[HH:MM:SS.mmm --> HH:MM:SS.mmm] text" line per segment; when
 * there is exactly one segment and no summary, just its text. JSON: {"video","model","task","prompt",
 * "duration","summary","segments":[{"index","start","end","start_ts","end_ts","text"}]}.
 * Segments whose rounded end is not after their rounded start are skipped in SRT/VTT (a zero-length cue). */
char *qv_render(qv_out_format fmt, const qv_out_meta *meta, const qv_segment *segs, size_t n_segs);

/* Cleans one caption for a cue: valid UTF-8, no control characters, no blank lines, trimmed; then
 * vtt = 0: SRT ("-->" broken), 1: WebVTT escaping, 2: plain (no escaping). malloc'd; NULL on OOM. */
char *qv_cue_text(const char *text, int vtt);
/* Replaces invalid UTF-8 sequences with U+FFFD (malloc'd; NULL on OOM). */
char *qv_utf8_sanitize(const char *s, size_t len);

#endif
