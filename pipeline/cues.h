/* cues.h — reading back the cues qv wrote (SRT, WebVTT, JSON, text), so that `--resume` can continue a
 * subtitles or `summarize --detail` run after the last finished window (pipeline/tasks.h: resume).
 *
 *   qv_segment *segs; int n;
 *   if (qv_cues_read("talk.srt", QV_FMT_SRT, &segs, &n, &err) == QV_OK) { ... qv_cues_free(segs, n); }
 *
 * What qv_render writes reads back to the same times (whole milliseconds) and texts: JSON exactly;
 * SRT and WebVTT with the cue text as rendered (WebVTT's &amp; &lt; &gt; entities undone); text files
 * by their "[HH:MM:SS.mmm --> HH:MM:SS.mmm] text" lines (a file holding a single answer has none).
 * Texts are malloc'd (segs[i].text is cast from const). A missing file is QV_ERR_IO; a file that is not
 * in the format is QV_ERR_FORMAT naming the line. */
#ifndef QV_CUES_H
#define QV_CUES_H

#include "core.h"
#include "output.h"

qv_status qv_cues_read(const char *path, qv_out_format fmt, qv_segment **segs, int *n, qv_err *err);
/* Parses a document in memory (NUL-terminated). */
qv_status qv_cues_parse(const char *doc, qv_out_format fmt, qv_segment **segs, int *n, qv_err *err);
void qv_cues_free(qv_segment *segs, int n);   /* NULL-safe */

#endif
