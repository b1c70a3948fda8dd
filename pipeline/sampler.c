/* sampler.c — frame count, frame indices and frame size, as qwen-vl-utils computes them (see sampler.h;
 * ../shared/spec/qwen2vl-reference.md sections 1-2). Pure arithmetic: no FFmpeg, no allocation.
 * Python's round() rounds half to even: rint()/nearbyint() under the default rounding mode, never round(). */
#include "sampler.h"

#include <math.h>

qv_sample_opts qv_sample_default_opts(void) {
    qv_sample_opts o;
    o.fps = QV_FPS;
    o.min_frames = QV_FPS_MIN_FRAMES;
    o.max_frames = QV_FPS_MAX_FRAMES;
    o.start_s = -1;
    o.end_s = -1;
    return o;
}

int qv_sample_count(int64_t total, double stream_fps, double fps, int min_frames, int max_frames) {
    if (total < 1) return 0;
    if (total < 2) return (int)total;
    if (max_frames > QV_MAX_SAMPLED) max_frames = QV_MAX_SAMPLED;
    if (max_frames < 1) max_frames = 1;
    if (min_frames < 0) min_frames = 0;
    double min_f = ceil(min_frames / 2.0) * 2.0;
    double max_f = floor((double)(max_frames < total ? max_frames : total) / 2.0) * 2.0;
    double n = (double)total / stream_fps * fps;
    if (!isfinite(n)) n = min_f;
    if (n < min_f) n = min_f;
    if (n > max_f) n = max_f;
    if (n > (double)total) n = (double)total;
    double r = nearbyint(n / 2.0) * 2.0;
    if (r > (double)total) r = floor(n / 2.0) * 2.0;   /* only when total is odd and n rounds up past it */
    n = r;
    if (n < 2) n = 2;                                   /* total >= 2 here */
    return (int)n;
}

void qv_linspace_round_f32(int64_t *out, int64_t start, int64_t end, int n) {
    if (n <= 0) return;
    if (n == 1) {
        out[0] = (int64_t)nearbyintf((float)start);
        return;
    }
    /* torch's CPU linspace kernel: everything in the output dtype (float32), the first half counted up
     * from start, the second half down from end. volatile keeps each product rounded to float. */
    const float fs = (float)start, fe = (float)end;
    const float step = (fe - fs) / (float)(n - 1);
    const int half = n / 2;
    for (int i = 0; i < n; i++) {
        volatile float v;
        if (i < half) {
            volatile float p = step * (float)i;
            v = fs + p;
        } else {
            volatile float p = step * (float)(n - 1 - i);
            v = fe - p;
        }
        out[i] = (int64_t)nearbyintf(v);
    }
}

qv_status qv_sample_frames(int64_t *out, int *n, int64_t total, double stream_fps, const qv_sample_opts *o,
                           qv_err *err) {
    qv_sample_opts d = qv_sample_default_opts();
    if (!o) o = &d;
    *n = 0;
    if (total < 1) return qv_errf(err, QV_ERR_FORMAT, "the video has no frames");
    if (!(stream_fps > 0) || !isfinite(stream_fps))
        return qv_errf(err, QV_ERR_FORMAT, "the video has no usable frame rate");
    if (!(o->fps > 0) || !isfinite(o->fps)) return qv_errf(err, QV_ERR_INVALID, "fps must be positive");
    int64_t first = 0, last = total - 1;
    if (o->start_s > 0) {
        double f = ceil(o->start_s * stream_fps);
        if (f > (double)(total - 1))
            return qv_errf(err, QV_ERR_INVALID, "start %.3f s is past the end of the video (%.3f s)", o->start_s,
                           (double)total / stream_fps);
        first = (int64_t)f;
    }
    if (o->end_s >= 0) {
        double f = floor(o->end_s * stream_fps);
        if (f < (double)last) last = f < 0 ? 0 : (int64_t)f;
    }
    if (last < first)
        return qv_errf(err, QV_ERR_INVALID, "start %.3f s is after end %.3f s", o->start_s, o->end_s);
    int64_t span = last - first + 1;
    int k = qv_sample_count(span, stream_fps, o->fps, o->min_frames, o->max_frames);
    if (k < 1) return qv_errf(err, QV_ERR_FORMAT, "no frames to sample");
    qv_linspace_round_f32(out, first, last, k);
    *n = k;
    return QV_OK;
}

static double round_by(double x, int f) { return nearbyint(x / f) * f; }
static double floor_by(double x, int f) { return floor(x / f) * f; }
static double ceil_by(double x, int f) { return ceil(x / f) * f; }

qv_status qv_smart_resize(int *out_h, int *out_w, int h, int w, double min_pixels, double max_pixels,
                          qv_err *err) {
    const int f = QV_IMAGE_FACTOR;
    if (h <= 0 || w <= 0) return qv_errf(err, QV_ERR_FORMAT, "frame size %dx%d is not positive", w, h);
    double big = h > w ? h : w, small = h > w ? w : h;
    if (big / small > QV_MAX_RATIO)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "aspect ratio of %dx%d is above %d", w, h, QV_MAX_RATIO);
    double hb = round_by(h, f), wb = round_by(w, f);
    if (hb < f) hb = f;
    if (wb < f) wb = f;
    if (hb * wb > max_pixels) {
        double beta = sqrt((double)h * (double)w / max_pixels);
        hb = floor_by(h / beta, f);
        wb = floor_by(w / beta, f);
        if (hb < f) hb = f;
        if (wb < f) wb = f;
    } else if (hb * wb < min_pixels) {
        double beta = sqrt(min_pixels / ((double)h * (double)w));
        hb = ceil_by(h * beta, f);
        wb = ceil_by(w * beta, f);
    }
    if (hb > 1e6 || wb > 1e6) return qv_errf(err, QV_ERR_INVALID, "resized frame would be too large");
    *out_h = (int)hb;
    *out_w = (int)wb;
    return QV_OK;
}

double qv_video_max_pixels(int64_t min_pixels, int64_t user_max, int64_t total_pixels, int n) {
    if (n < 1) n = 1;
    double m = (double)total_pixels / n * QV_FRAME_FACTOR;
    if (m > (double)QV_VIDEO_MAX_PIXELS) m = (double)QV_VIDEO_MAX_PIXELS;
    double floor_px = floor((double)min_pixels * 1.05);   /* int(min_pixels * 1.05) */
    if (m < floor_px) m = floor_px;
    if (user_max > 0 && (double)user_max < m) m = (double)user_max;
    return m;
}
