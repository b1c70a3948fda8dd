/* video.c — decode a video or still image with FFmpeg and stream the encoder input as temporal pairs.
 * With pipeline/image.c (photos; FFmpeg's PNG decoder) the only files that include FFmpeg headers. See video.h
 * for the contract.
 *
 * Reference: ../shared/spec/qwen2vl-reference.md sections 1-4 (sampling, sizes: pipeline/sampler.c; resize
 * and patches: vision/preprocess.c), FFmpeg's doc/examples/decode_video.c (send/receive/drain loop).
 *
 * Frame identity. A first demux pass (no decoding) reads every video packet and keeps its timestamp and
 * keyframe flag: the sorted timestamps are the frames in presentation order, so the frame count is what
 * the file really holds (WebM has no count; a truncated MP4 index over-reports) and a decoded frame's
 * index is the rank of its pts — the same whether we got there sequentially or by seeking. Files without
 * usable timestamps fall back to counting decoded frames in order (sequential only).
 * RGB conversion mirrors the ffmpeg 5.1 command line's scale filter (bicubic flags, color matrix and range
 * from the frame), which is what produced the goldens' frames_u8. */
#include "video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "sampler.h"
#include "preprocess.h"

#define SEEK_MARGIN  8         /* auto mode seeks only when it skips more frames than this */
#define MAX_PACKETS  (1 << 26) /* refuse absurd packet counts (hostile files) */
#define MAX_PIXELS   (1 << 27) /* refuse frames above 134 M pixels (16K x 8K) */

struct qv_media {
    qv_media_opts o;
    qv_media_info info;
    char *path;
    char errmsg[1024];
    int ran;
    /* FFmpeg state */
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int vs;                  /* video stream index */
    AVRational tb;           /* stream time base */
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frame, *last;   /* last: ref of the last decoded frame (for targets past the end) */
    /* frame table from the demux pass */
    int64_t *pts;            /* [total] sorted presentation timestamps; NULL when unusable */
    int64_t *kf;             /* [n_kf] frame indices of keyframes, ascending */
    int64_t n_kf;
    int can_seek;
    int skip_nonref;         /* skip decoding non-reference frames that are not targets */
    int seek_bias;           /* keyframes to aim before the one wanted (demuxers that land late), 0..3 */
    /* buffers */
    uint8_t *rgb;            /* [src_h][rgb_stride] */
    int rgb_stride;
    uint8_t *rgb_packed;     /* [src_h][src_w*3] for on_frame when rgb_stride differs */
    uint8_t *res[2];         /* [resized_h][resized_w][3] frames 2k and 2k+1 */
    uint8_t *still;          /* [src_h][src_w][3] a photo decoded by pipeline/image.c (no FFmpeg state) */
    int coded_w, coded_h;    /* decoded frame size before --autorotate (src_w/src_h are after) */
    int orient;              /* 2..8: frames are turned like this EXIF orientation (--autorotate), else 0 */
    uint8_t *coded;          /* [coded_h][coded_stride] RGB before turning, when orient */
    int coded_stride;
    float *px;               /* [gh*gw][1176] */
    qv_resizer *rz;
};

/* ---- FFmpeg log -> qv_log (library code never prints) ---------------------------------------- */

static void av_log_to_qv(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > AV_LOG_WARNING || qv_log_level() < 2) return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n) qv_log(2, "ffmpeg: %s", line);
}
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void install_log(void) { av_log_set_callback(av_log_to_qv); }

static qv_status av_fail(qv_err *err, qv_status code, const char *path, const char *what, int r) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(r, buf, sizeof buf);
    return qv_errf(err, code, "%s: %s: %s", path, what, buf);
}

qv_media_opts qv_media_default_opts(void) {
    qv_media_opts o;
    memset(&o, 0, sizeof o);
    o.fps = QV_FPS;
    o.min_frames = QV_FPS_MIN_FRAMES;
    o.max_frames = QV_FPS_MAX_FRAMES;
    o.total_pixels = QV_VIDEO_TOTAL_PIXELS;
    o.start_s = -1;
    o.end_s = -1;
    o.mode = QV_MEDIA_AUTO;
    return o;
}

/* ---- open / reopen demuxer + decoder ------------------------------------------------------------ */

static void close_av(qv_media *m) {
    avcodec_free_context(&m->dec);
    avformat_close_input(&m->fmt);
}

/* The concat demuxer opens the files a script names (itself included, until file descriptors run out):
 * refuse it before opening; everything else goes through the normal probe. */
static qv_status refuse_scripts(const char *path, qv_err *err) {
    AVIOContext *pb = NULL;
    const AVInputFormat *f = NULL;
    if (avio_open(&pb, path, AVIO_FLAG_READ) < 0) return QV_OK;   /* the real open reports it */
    int r = av_probe_input_buffer2(pb, &f, path, NULL, 0, 0);
    avio_closep(&pb);
    if (r >= 0 && f && strcmp(f->name, "concat") == 0)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: concat scripts are not accepted (give the media file)", path);
    return QV_OK;
}

static qv_status open_av(qv_media *m, qv_err *err) {
    /* local files only: a path must not make the library open network or concat/subfile protocols */
    AVDictionary *opt = NULL;
    av_dict_set(&opt, "protocol_whitelist", "file", 0);
    int r = avformat_open_input(&m->fmt, m->path, NULL, &opt);
    av_dict_free(&opt);
    if (r < 0) return av_fail(err, r == AVERROR(ENOENT) ? QV_ERR_IO : QV_ERR_FORMAT, m->path, "cannot open", r);
    if ((r = avformat_find_stream_info(m->fmt, NULL)) < 0)
        return av_fail(err, QV_ERR_FORMAT, m->path, "cannot read stream info", r);
    const AVCodec *codec = NULL;
    r = av_find_best_stream(m->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r < 0 || !codec)
        return qv_errf(err, QV_ERR_FORMAT, "%s: no decodable video stream or image in the file", m->path);
    m->vs = r;
    for (unsigned i = 0; i < m->fmt->nb_streams; i++)
        m->fmt->streams[i]->discard = (int)i == m->vs ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
    AVStream *st = m->fmt->streams[m->vs];
    m->tb = st->time_base;
    m->dec = avcodec_alloc_context3(codec);
    if (!m->dec) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", m->path);
    if ((r = avcodec_parameters_to_context(m->dec, st->codecpar)) < 0)
        return av_fail(err, QV_ERR_FORMAT, m->path, "bad codec parameters", r);
    m->dec->thread_count = m->o.n_threads > 0 ? m->o.n_threads : 0;
    m->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    m->dec->pkt_timebase = st->time_base;
    if ((r = avcodec_open2(m->dec, codec, NULL)) < 0)
        return av_fail(err, QV_ERR_UNSUPPORTED, m->path, "cannot open the decoder", r);
    return QV_OK;
}

static int is_image_format(const AVFormatContext *f) {
    const char *n = f->iformat->name;
    size_t l = strlen(n);
    return strcmp(n, "image2") == 0 || (l > 5 && strcmp(n + l - 5, "_pipe") == 0);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t lower_bound(const int64_t *a, int64_t n, int64_t v) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Demux pass: count the video packets, keep their timestamps and keyframe flags. */
static qv_status count_frames(qv_media *m, int64_t *total, qv_err *err) {
    int64_t n = 0, cap = 0, nk = 0, capk = 0;
    int64_t *ts = NULL, *kts = NULL;
    int ts_ok = 1;
    qv_status st = QV_OK;
    for (;;) {
        int r = av_read_frame(m->fmt, m->pkt);
        if (r < 0) break;   /* EOF, or an error the decode pass will meet at the same place */
        if (m->pkt->stream_index == m->vs && m->pkt->size > 0 && !(m->pkt->flags & AV_PKT_FLAG_DISCARD)) {
            int64_t t = m->pkt->pts != AV_NOPTS_VALUE ? m->pkt->pts : m->pkt->dts;
            if (t == AV_NOPTS_VALUE) ts_ok = 0;
            if (n >= MAX_PACKETS) {
                st = qv_errf(err, QV_ERR_FORMAT, "%s: more than %d video packets", m->path, MAX_PACKETS);
                av_packet_unref(m->pkt);
                break;
            }
            if (n == cap) {
                int64_t *a = realloc(ts, (size_t)(cap ? cap * 2 : 4096) * sizeof *ts);
                if (a) ts = a, cap = cap ? cap * 2 : 4096;
            }
            if (nk == capk) {
                int64_t *b = realloc(kts, (size_t)(capk ? capk * 2 : 256) * sizeof *kts);
                if (b) kts = b, capk = capk ? capk * 2 : 256;
            }
            if (n == cap || nk == capk) {
                st = qv_errf(err, QV_ERR_NOMEM, "%s: out of memory counting frames", m->path);
                av_packet_unref(m->pkt);
                break;
            }
            if (m->pkt->flags & AV_PKT_FLAG_KEY) kts[nk++] = t;
            ts[n++] = t;
        }
        av_packet_unref(m->pkt);
        if (m->o.abort_cb && m->o.abort_cb(m->o.abort_user)) {
            st = qv_errf(err, QV_ERR_CANCELLED, "cancelled");
            break;
        }
    }
    if (st == QV_OK && ts_ok && n > 0) {
        qsort(ts, (size_t)n, sizeof *ts, cmp_i64);
        for (int64_t i = 1; i < n && ts_ok; i++)
            if (ts[i] <= ts[i - 1]) ts_ok = 0;
    }
    if (st == QV_OK && ts_ok && n > 0) {
        m->pts = ts, ts = NULL;
        for (int64_t i = 0; i < nk; i++) kts[i] = lower_bound(m->pts, n, kts[i]);
        qsort(kts, (size_t)nk, sizeof *kts, cmp_i64);
        m->kf = kts, kts = NULL;
        m->n_kf = nk;
    }
    free(ts);
    free(kts);
    *total = n;
    return st;
}

static double frame_rate(qv_media *m, int64_t total) {
    AVStream *st = m->fmt->streams[m->vs];
    AVRational r = st->avg_frame_rate;
    if (r.num > 0 && r.den > 0) return av_q2d(r);
    if (m->pts && total > 1 && m->pts[total - 1] > m->pts[0])
        return (double)(total - 1) / ((double)(m->pts[total - 1] - m->pts[0]) * av_q2d(m->tb));
    r = st->r_frame_rate;
    if (r.num > 0 && r.den > 0) return av_q2d(r);
    return 0;
}

/* The stream's display matrix as an EXIF orientation (1..8), read as the ffmpeg 5.1 command line's autorotate
 * reads it (transpose clock / cclock, their _flip forms, hflip/vflip); angles that are not a multiple of 90
 * degrees give 1 (left as coded). */
static int video_orientation(const AVStream *st) {
    size_t size = 0;
    const int32_t *dm = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (!dm || size < 9 * sizeof(int32_t)) return 1;
    double theta = av_display_rotation_get(dm);
    if (isnan(theta)) return 1;
    theta = -round(theta);
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1.0) return dm[3] > 0 ? 5 : 6;          /* cclock_flip = transpose : clock */
    if (fabs(theta - 270) < 1.0) return dm[3] < 0 ? 7 : 8;         /* clock_flip = transverse : cclock */
    if (fabs(theta - 180) < 1.0) {
        int hf = dm[0] < 0, vf = dm[4] < 0;
        return hf && vf ? 3 : hf ? 2 : vf ? 4 : 1;
    }
    if (fabs(theta) < 1.0 && dm[4] < 0) return 4;
    return 1;
}

static double pts_to_ms(const qv_media *m, int64_t pts) {
    int64_t base = m->pts ? m->pts[0] : 0;
    return (double)(pts - base) * av_q2d(m->tb) * 1000.0;
}

qv_status qv_media_open(qv_media **out, const char *path, const qv_media_opts *opts, qv_err *err) {
    *out = NULL;
    pthread_once(&log_once, install_log);
    qv_media *m = calloc(1, sizeof *m);
    if (!m) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    m->o = opts ? *opts : qv_media_default_opts();
    qv_media_info *mi = &m->info;
    qv_status st = QV_OK;
    qv_err e = {0};
    m->path = strdup(path);
    m->pkt = av_packet_alloc();
    m->frame = av_frame_alloc();
    m->last = av_frame_alloc();
    if (!m->path || !m->pkt || !m->frame || !m->last) {
        st = qv_errf(&e, QV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!(m->o.fps > 0) || m->o.max_frames < 1 || m->o.min_frames < 0 || m->o.min_pixels < 0 || m->o.max_pixels < 0 ||
        m->o.total_pixels < 0) {
        st = qv_errf(&e, QV_ERR_INVALID, "invalid media options (fps, frame or pixel limits)");
        goto fail;
    }
    /* regular files only: a FIFO or a device (/dev/zero) could block or never end */
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = qv_errf(&e, QV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = qv_errf(&e, QV_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (qv_image_sniff(path) != QV_IMAGE_NONE) {   /* a photo: decoded as the reference's PIL decodes it */
        qv_image_info ii;
        if ((st = qv_image_decode(path, m->o.autorotate, &m->still, &mi->src_w, &mi->src_h, &ii, &e))) goto fail;
        mi->container = ii.format;
        mi->codec = ii.decoder;
        mi->orientation = ii.orientation;
        mi->rotated = ii.rotated;
    } else {
        if ((st = refuse_scripts(path, &e)) || (st = open_av(m, &e))) goto fail;
        mi->container = m->fmt->iformat->name;
        mi->codec = m->dec->codec->name;
        mi->src_w = m->coded_w = m->dec->width;
        mi->src_h = m->coded_h = m->dec->height;
        mi->orientation = video_orientation(m->fmt->streams[m->vs]);
        if (m->o.autorotate && mi->orientation >= 2) {   /* upright frames: the reference keeps them as coded */
            m->orient = mi->orientation;
            mi->rotated = 1;
            if (m->orient >= 5) mi->src_w = m->coded_h, mi->src_h = m->coded_w;
        }
    }
    if (mi->src_w < 1 || mi->src_h < 1 || mi->src_w > 32768 || mi->src_h > 32768 ||
        (int64_t)mi->src_w * mi->src_h > MAX_PIXELS) {
        st = qv_errf(&e, QV_ERR_FORMAT, "%s: bad frame size %dx%d", path, mi->src_w, mi->src_h);
        goto fail;
    }
    mi->is_image = m->still || m->o.force_image || is_image_format(m->fmt);

    static int64_t zero = 0;
    int64_t *idx = NULL;
    int n = 1;
    if (mi->is_image) {
        mi->total_frames = 1;
        idx = &zero;
    } else {
        int64_t total = 0;
        if ((st = count_frames(m, &total, &e))) goto fail;
        if (total < 1) {
            st = qv_errf(&e, QV_ERR_FORMAT, "%s: the video stream has no frames", path);
            goto fail;
        }
        mi->total_frames = total;
        mi->stream_fps = frame_rate(m, total);
        if (!(mi->stream_fps > 0)) mi->stream_fps = 25.0;   /* no rate anywhere: sampling still works */
        mi->duration_s = (double)total / mi->stream_fps;
        /* rewind: reopen (works for every demuxer, seekable or not) */
        close_av(m);
        if ((st = open_av(m, &e))) goto fail;
        idx = malloc(sizeof *idx * QV_MAX_SAMPLED);
        if (!idx) {
            st = qv_errf(&e, QV_ERR_NOMEM, "out of memory");
            goto fail;
        }
        qv_sample_opts so = {m->o.fps, m->o.min_frames, m->o.max_frames, m->o.start_s, m->o.end_s};
        st = qv_sample_frames(idx, &n, total, mi->stream_fps, &so, &e);
        if (st) {
            free(idx);
            qv_err_prefix(&e, "%s", path);
            goto fail;
        }
    }
    mi->n_frames = n;
    mi->indices = malloc(sizeof *mi->indices * (size_t)n);
    mi->pts_ms = malloc(sizeof *mi->pts_ms * (size_t)n);
    if (!mi->indices || !mi->pts_ms) {
        if (idx != &zero) free(idx);
        st = qv_errf(&e, QV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(mi->indices, idx, sizeof *idx * (size_t)n);
    if (idx != &zero) free(idx);
    for (int j = 0; j < n; j++)
        mi->pts_ms[j] = m->pts ? pts_to_ms(m, m->pts[mi->indices[j]])
                               : (mi->is_image ? 0 : (double)mi->indices[j] / mi->stream_fps * 1000.0);

    /* size */
    if (mi->is_image) {
        mi->min_pixels = m->o.min_pixels > 0 ? (double)m->o.min_pixels : (double)QV_IMAGE_MIN_PIXELS;
        mi->max_pixels = m->o.max_pixels > 0 ? (double)m->o.max_pixels : (double)QV_IMAGE_MAX_PIXELS;
    } else {
        int64_t minp = m->o.min_pixels > 0 ? m->o.min_pixels : QV_VIDEO_MIN_PIXELS;
        int64_t tot = m->o.total_pixels > 0 ? m->o.total_pixels : QV_VIDEO_TOTAL_PIXELS;
        mi->min_pixels = (double)minp;
        mi->max_pixels = qv_video_max_pixels(minp, m->o.max_pixels, tot, n);
    }
    if ((st = qv_smart_resize(&mi->resized_h, &mi->resized_w, mi->src_h, mi->src_w, mi->min_pixels, mi->max_pixels,
                              &e))) {
        qv_err_prefix(&e, "%s", path);
        goto fail;
    }
    if ((int64_t)mi->resized_h * mi->resized_w > MAX_PIXELS) {
        st = qv_errf(&e, QV_ERR_INVALID, "%s: resized frame %dx%d is too large (check --min-pixels)", path,
                     mi->resized_w, mi->resized_h);
        goto fail;
    }
    mi->t = (n + 1) / 2;
    mi->gh = mi->resized_h / QV_PATCH;
    mi->gw = mi->resized_w / QV_PATCH;
    m->can_seek = !mi->is_image && m->o.mode != QV_MEDIA_SEQUENTIAL && m->pts && m->n_kf >= 2 && m->fmt->pb &&
                  (m->fmt->pb->seekable & AVIO_SEEKABLE_NORMAL) && !(m->fmt->iformat->flags & AVFMT_NOTIMESTAMPS);
    mi->seek_mode = m->can_seek;
    m->skip_nonref = !mi->is_image;

    /* buffers, once */
    m->rgb_stride = m->orient ? mi->src_w * 3 : FFALIGN(mi->src_w * 3, 64);   /* turned frames: packed */
    size_t rh = (size_t)mi->resized_h, rw = (size_t)mi->resized_w;
    m->rgb = av_malloc((size_t)m->rgb_stride * mi->src_h + 64);
    if (m->orient) {
        m->coded_stride = FFALIGN(m->coded_w * 3, 64);
        if (!(m->coded = av_malloc((size_t)m->coded_stride * m->coded_h + 64))) {
            st = qv_errf(&e, QV_ERR_NOMEM, "%s: out of memory for frame buffers", path);
            goto fail;
        }
    }
    m->res[0] = malloc(rh * rw * 3);
    m->res[1] = malloc(rh * rw * 3);
    m->px = malloc((size_t)mi->gh * mi->gw * QV_PATCH_DIM * sizeof(float));
    if (!m->rgb || !m->res[0] || !m->res[1] || !m->px) {
        st = qv_errf(&e, QV_ERR_NOMEM, "%s: out of memory for frame buffers", path);
        goto fail;
    }
    if ((st = qv_resizer_create(&m->rz, mi->src_w, mi->src_h, mi->resized_w, mi->resized_h,
                                mi->is_image ? QV_RESAMPLE_IMAGE : QV_RESAMPLE_VIDEO, &e)))
        goto fail;
    *out = m;
    return QV_OK;
fail:
    if (err) *err = e;
    qv_media_free(m);
    return st;
}

const qv_media_info *qv_media_get_info(const qv_media *m) { return &m->info; }
const char *qv_media_errmsg(const qv_media *m) { return m ? m->errmsg : ""; }

void qv_media_free(qv_media *m) {
    if (!m) return;
    close_av(m);
    sws_freeContext(m->sws);
    av_packet_free(&m->pkt);
    av_frame_free(&m->frame);
    av_frame_free(&m->last);
    av_free(m->rgb);
    av_free(m->coded);
    free(m->rgb_packed);
    free(m->res[0]);
    free(m->res[1]);
    free(m->still);
    free(m->px);
    qv_resizer_free(m->rz);
    free(m->pts);
    free(m->kf);
    free(m->info.indices);
    free(m->info.pts_ms);
    free(m->path);
    free(m);
}

/* ---- run ---------------------------------------------------------------------------------------- */

typedef struct {
    qv_pair_fn on_pair;
    qv_frame_fn on_frame;
    void *user;
    int next;                /* next sampled frame j to produce */
    int64_t ordinal;         /* decoded frames since the (re)start: index when there is no pts table */
    int64_t pos;             /* highest frame index decoded since the last seek (-1: none) */
    int after_seek;          /* a seek happened, its first frame not seen yet */
    int64_t seek_kf;         /* kf[] slot the last seek aimed at */
    int retries;
} run_state;

static qv_status to_rgb(qv_media *m, const AVFrame *f, qv_err *err) {
    if (f->width < 1 || f->height < 1 || f->format < 0)
        return qv_errf(err, QV_ERR_FORMAT, "%s: decoder returned an empty frame", m->path);
    struct SwsContext *s = sws_getCachedContext(m->sws, f->width, f->height, f->format, m->coded_w, m->coded_h,
                                                AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
    if (!s) return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: cannot convert pixel format %s to RGB", m->path,
                           av_get_pix_fmt_name(f->format));
    m->sws = s;
    /* as the scale filter of the ffmpeg command line: in_color_matrix "auto", range from the frame */
    int *inv, *tab, in_full, out_full, bri, con, sat;
    if (sws_getColorspaceDetails(s, &inv, &in_full, &tab, &out_full, &bri, &con, &sat) >= 0) {
        int cs = f->colorspace;
        if (cs < 1 || cs > 10 || cs == 8) cs = AVCOL_SPC_BT470BG;
        const int *ninv = sws_getCoefficients(cs);
        if (f->color_range != AVCOL_RANGE_UNSPECIFIED) in_full = f->color_range == AVCOL_RANGE_JPEG;
        sws_setColorspaceDetails(s, ninv, in_full, ninv, out_full, bri, con, sat);
    }
    uint8_t *dst[4] = {m->orient ? m->coded : m->rgb, NULL, NULL, NULL};
    int dls[4] = {m->orient ? m->coded_stride : m->rgb_stride, 0, 0, 0};
    int h = sws_scale(s, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dls);
    if (h != m->coded_h) return qv_errf(err, QV_ERR_FORMAT, "%s: RGB conversion failed", m->path);
    if (m->orient) qv_image_orient_into(m->rgb, m->coded, (size_t)m->coded_stride, m->coded_w, m->coded_h, m->orient);
    return QV_OK;
}

/* Sampled frame j is frame f (index idx): convert, resize, call back, and finish the pair when complete. */
static qv_status produce(qv_media *m, run_state *rs, const AVFrame *f, int64_t idx, qv_err *err) {
    qv_media_info *mi = &m->info;
    int j = rs->next;
    qv_status st = f ? to_rgb(m, f, err) : QV_OK;   /* f NULL: a photo, already in m->rgb */
    if (st) return st;
    mi->indices[j] = idx;
    int64_t p = !f ? AV_NOPTS_VALUE : f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
    if (m->pts && p != AV_NOPTS_VALUE) mi->pts_ms[j] = pts_to_ms(m, p);
    else if (!mi->is_image) mi->pts_ms[j] = (double)idx / mi->stream_fps * 1000.0;
    uint8_t *res = m->res[j & 1];
    qv_resize_rgb(m->rz, res, m->rgb, m->rgb_stride, m->o.pool);
    if (rs->on_frame) {
        const uint8_t *rgb = m->rgb;
        size_t row = (size_t)mi->src_w * 3;
        if ((size_t)m->rgb_stride != row) {
            if (!m->rgb_packed && !(m->rgb_packed = malloc(row * mi->src_h)))
                return qv_errf(err, QV_ERR_NOMEM, "out of memory");
            for (int y = 0; y < mi->src_h; y++) memcpy(m->rgb_packed + y * row, m->rgb + (size_t)y * m->rgb_stride, row);
            rgb = m->rgb_packed;
        }
        if (rs->on_frame(rs->user, j, rgb, res, mi)) return qv_errf(err, QV_ERR_CANCELLED, "stopped by the caller");
    }
    rs->next++;
    if ((j & 1) || j == mi->n_frames - 1) {
        int k = j / 2;
        qv_patchify_pair(m->px, m->res[0], (j & 1) ? m->res[1] : m->res[0], mi->resized_h, mi->resized_w, m->o.pool);
        if (rs->on_pair && rs->on_pair(rs->user, k, m->px, mi))
            return qv_errf(err, QV_ERR_CANCELLED, "stopped by the caller");
    }
    return QV_OK;
}

/* Index of a decoded frame: rank of its pts in the table, else its ordinal. -1: unusable. */
static int64_t frame_index(qv_media *m, run_state *rs, const AVFrame *f) {
    if (!m->pts) return rs->ordinal - 1;
    int64_t p = f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
    if (p == AV_NOPTS_VALUE) return -1;
    int64_t i = lower_bound(m->pts, m->info.total_frames, p);
    return i;   /* a pts between two table entries maps to the next frame; past the end -> total */
}

static int64_t kf_slot_before(const qv_media *m, int64_t idx) {   /* largest slot with kf[slot] <= idx */
    int64_t s = lower_bound(m->kf, m->n_kf, idx + 1) - 1;
    return s;
}

static qv_status do_seek(qv_media *m, run_state *rs, int64_t slot) {
    int64_t fi = slot >= 0 ? m->kf[slot] : 0;
    int r = av_seek_frame(m->fmt, m->vs, m->pts[fi], AVSEEK_FLAG_BACKWARD);
    if (r < 0) {
        m->can_seek = 0;   /* keep decoding forward: same frames, just slower */
        return QV_OK;
    }
    avcodec_flush_buffers(m->dec);
    rs->after_seek = 1;
    rs->seek_kf = slot;
    rs->pos = fi - 1;
    m->info.n_seeks++;
    return QV_OK;
}

/* A frame came out of the decoder. *restart set when the caller must re-seek (overshoot). */
static qv_status on_decoded(qv_media *m, run_state *rs, AVFrame *f, int *reseek, qv_err *err) {
    qv_media_info *mi = &m->info;
    rs->ordinal++;
    mi->n_decoded++;
    int64_t idx = frame_index(m, rs, f);
    if (idx < 0) return QV_OK;
    if (rs->after_seek) {
        rs->after_seek = 0;
        if (rs->next < mi->n_frames && idx > mi->indices[rs->next]) {
            /* landed after the target: go back one more keyframe, a few times, then from the start */
            *reseek = 1;
            return QV_OK;
        }
        rs->retries = 0;
    }
    if (idx > rs->pos) rs->pos = idx;
    av_frame_unref(m->last);
    if (av_frame_ref(m->last, f) < 0) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    while (rs->next < mi->n_frames && idx >= mi->indices[rs->next]) {
        qv_status st = produce(m, rs, f, idx < mi->total_frames ? idx : mi->total_frames - 1, err);
        if (st) return st;
    }
    return QV_OK;
}

static qv_status receive_all(qv_media *m, run_state *rs, int *reseek, qv_err *err) {
    for (;;) {
        int r = avcodec_receive_frame(m->dec, m->frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return QV_OK;
        if (r < 0) return QV_OK;   /* a broken frame: skip it, the stream goes on */
        qv_status st = on_decoded(m, rs, m->frame, reseek, err);
        av_frame_unref(m->frame);
        if (st || *reseek || rs->next >= m->info.n_frames) return st;
    }
}

/* A packet whose frame is not a target may skip decoding when nothing references it (B-frames): the
 * decoder decides what "non-reference" means, so the frames that are decoded do not change. Per packet:
 * with frame threads the field is copied to the worker at submission. */
static enum AVDiscard skip_level(const qv_media *m, const run_state *rs, const AVPacket *p) {
    if (!m->pts || !m->skip_nonref) return AVDISCARD_DEFAULT;
    int64_t t = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
    if (t == AV_NOPTS_VALUE) return AVDISCARD_DEFAULT;
    int64_t i = lower_bound(m->pts, m->info.total_frames, t);
    if (i >= m->info.total_frames || m->pts[i] != t) return AVDISCARD_DEFAULT;
    const qv_media_info *mi = &m->info;
    int64_t lo = rs->next, hi = mi->n_frames;   /* remaining targets are ascending */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (mi->indices[mid] < i) lo = mid + 1;
        else hi = mid;
    }
    return lo < mi->n_frames && mi->indices[lo] == i ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
}

qv_status qv_media_run(qv_media *m, qv_pair_fn on_pair, qv_frame_fn on_frame, void *user, qv_err *err) {
    qv_media_info *mi = &m->info;
    qv_err e = {0};
    qv_status st = QV_OK;
    if (m->ran) {
        st = qv_errf(&e, QV_ERR_INVALID, "%s: qv_media_run called twice", m->path);
        goto done;
    }
    m->ran = 1;
    run_state rs = {on_pair, on_frame, user, 0, 0, -1, 0, -1, 0};
    const int margin = m->o.mode == QV_MEDIA_SEEK ? 0 : SEEK_MARGIN;
    int demux_eof = 0;
    if (m->still) {   /* a photo decoded at open: one frame */
        size_t row = (size_t)mi->src_w * 3;
        for (int y = 0; y < mi->src_h; y++) memcpy(m->rgb + (size_t)y * m->rgb_stride, m->still + y * row, row);
        while (!st && rs.next < mi->n_frames) st = produce(m, &rs, NULL, 0, &e);
        goto done;
    }
    while (rs.next < mi->n_frames && !st) {
        if (m->o.abort_cb && m->o.abort_cb(m->o.abort_user)) {
            st = qv_errf(&e, QV_ERR_CANCELLED, "cancelled");
            break;
        }
        if (m->can_seek && !rs.after_seek && !demux_eof) {
            int64_t slot = kf_slot_before(m, mi->indices[rs.next]) - m->seek_bias;
            if (slot >= 0 && m->kf[slot] > rs.pos + 1 + margin) {
                if ((st = do_seek(m, &rs, slot))) break;
            }
        }
        int reseek = 0;
        int r = demux_eof ? AVERROR_EOF : av_read_frame(m->fmt, m->pkt);
        if (r < 0) {
            if (!demux_eof) {
                demux_eof = 1;
                avcodec_send_packet(m->dec, NULL);   /* drain */
            }
            st = receive_all(m, &rs, &reseek, &e);
            /* the stream ended with targets left after a seek (e.g. it landed past the last keyframe's
             * data): step back a keyframe if nothing decoded since the seek, else redo it sequentially */
            if (!st && !reseek && rs.next < mi->n_frames && mi->n_seeks > 0 && m->can_seek)
                reseek = rs.after_seek ? 1 : 2;
            if (!st && !reseek) break;           /* drained: whatever is left gets the last frame */
        } else {
            if (m->pkt->stream_index == m->vs && !(m->pkt->flags & AV_PKT_FLAG_DISCARD)) {
                m->dec->skip_frame = skip_level(m, &rs, m->pkt);
                int sr = avcodec_send_packet(m->dec, m->pkt);
                if (sr == AVERROR(EAGAIN)) {          /* should not happen: we always drain after sending */
                    st = receive_all(m, &rs, &reseek, &e);
                    if (!st && !reseek) avcodec_send_packet(m->dec, m->pkt);
                }
                if (!st && !reseek) st = receive_all(m, &rs, &reseek, &e);
            }
            av_packet_unref(m->pkt);
        }
        if (!st && reseek) {
            demux_eof = 0;
            if (reseek == 1 && ++rs.retries <= 3 && rs.seek_kf > 0) {
                if (m->seek_bias < 3) m->seek_bias++;   /* this demuxer lands late: aim earlier from now on */
                st = do_seek(m, &rs, rs.seek_kf - 1);
            } else {
                /* give up seeking: restart from the beginning and decode forward */
                m->can_seek = 0;
                rs.after_seek = 0;
                rs.ordinal = 0;
                rs.pos = -1;
                close_av(m);
                st = open_av(m, &e);
            }
        }
    }
    if (!st && rs.next < mi->n_frames) {
        if (!m->last->buf[0] && !m->last->data[0]) {
            st = qv_errf(&e, QV_ERR_FORMAT, "%s: no frame could be decoded", m->path);
        } else {
            int64_t idx = frame_index(m, &rs, m->last);
            if (idx < 0 || idx >= mi->total_frames) idx = mi->total_frames - 1;
            while (!st && rs.next < mi->n_frames) st = produce(m, &rs, m->last, idx, &e);
        }
    }
done:
    if (st) {
        snprintf(m->errmsg, sizeof m->errmsg, "%s", e.msg);
        if (err) *err = e;
    }
    return st;
}

/* ---- all at once ---------------------------------------------------------------------------------- */

typedef struct {
    float *px;
    size_t per;
} load_ctx;

static int load_pair(void *user, int k, const float *px, const qv_media_info *mi) {
    load_ctx *c = user;
    memcpy(c->px + (size_t)k * c->per, px, c->per * sizeof(float));
    return 0;
}

qv_status qv_media_load(qv_media **out, float **px, const char *path, const qv_media_opts *opts, qv_err *err) {
    *out = NULL;
    *px = NULL;
    qv_media *m;
    qv_status st = qv_media_open(&m, path, opts, err);
    if (st) return st;
    const qv_media_info *mi = &m->info;
    load_ctx c = {NULL, (size_t)mi->gh * mi->gw * QV_PATCH_DIM};
    uint64_t bytes;
    if (!qv_mul_ok((uint64_t)c.per * sizeof(float), (uint64_t)mi->t, &bytes) || !(c.px = malloc(bytes))) {
        qv_media_free(m);
        return qv_errf(err, QV_ERR_NOMEM, "%s: pixel values do not fit in memory", path);
    }
    if ((st = qv_media_run(m, load_pair, NULL, &c, err))) {
        free(c.px);
        qv_media_free(m);
        return st;
    }
    *out = m;
    *px = c.px;
    return QV_OK;
}
