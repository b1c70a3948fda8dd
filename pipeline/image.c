/* image.c — JPEG (libjpeg-turbo), WebP (libwebp) and PNG (FFmpeg's decoder) to RGB24, as Pillow does it.
 * See image.h for the contract. Reference: Pillow's JpegImagePlugin.py/JpegDecode.c (libjpeg defaults +
 * out_color_space RGB, "CMYK;I" raw mode), WebPImagePlugin.py/_webp.c (WebPAnimDecoder, RGBA), PngImagePlugin.py
 * and Convert.c (convert("RGB") per mode), ImageOps.exif_transpose. Pillow 13.0 with its bundled
 * libjpeg-turbo 3.x / libwebp 1.6 and Debian 12's libjpeg-turbo 2.1.5 / libwebp 1.2.4 give the same pixels
 * on tests/data/photos (tests/unit_image.c). */
#include "image.h"

#include <libavcodec/avcodec.h>
#include <libavutil/pixdesc.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>
#include <webp/decode.h>

#define MAX_IMAGE_PIXELS (1 << 27)   /* as pipeline/video.c: 134 M pixels */

int qv_image_kind(const uint8_t *b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return QV_IMAGE_JPEG;
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return QV_IMAGE_PNG;
    if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return QV_IMAGE_WEBP;
    return QV_IMAGE_NONE;
}

int qv_image_sniff(const char *path) {
    int fd = qv_open_regular(path, O_RDONLY, NULL); /* a FIFO is not waited on (issue 12, finding 5) */
    if (fd < 0) return QV_IMAGE_NONE;
    uint8_t b[12];
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    return qv_image_kind(b, n > 0 ? (size_t)n : 0);
}

/* ---- EXIF orientation ------------------------------------------------------------------------------ */

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The orientation tag's value, -1 when the block has none (or is malformed). */
static int exif_tag(const uint8_t *e, size_t n) {
    if (!e) return -1;
    if (n >= 6 && memcmp(e, "Exif\0\0", 6) == 0) e += 6, n -= 6;
    if (n < 8) return -1;
    int le;
    if (memcmp(e, "II*\0", 4) == 0) le = 1;
    else if (memcmp(e, "MM\0*", 4) == 0) le = 0;
    else return -1;
    uint32_t ifd = rd32(e + 4, le);
    if (ifd < 8 || ifd > n - 2) return -1;
    unsigned count = rd16(e + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t at = (size_t)ifd + 2 + (size_t)i * 12;
        if (at + 12 > n) return -1;
        if (rd16(e + at, le) != 0x0112) continue;
        unsigned type = rd16(e + at + 2, le);
        uint32_t v = type == 3 ? rd16(e + at + 8, le) : type == 4 ? rd32(e + at + 8, le) : 0;
        return v > 255 ? 0 : (int)v;
    }
    return -1;
}

int qv_exif_orientation(const uint8_t *e, size_t n) {
    int v = exif_tag(e, n);
    return v >= 1 && v <= 8 ? v : 1;
}

/* Pillow's getexif() takes the orientation from XMP when EXIF has no such tag: the first match of
 * tiff:Orientation(="|>)([0-9]). -1 when there is none. */
static int xmp_tag(const uint8_t *x, size_t n) {
    static const char key[] = "tiff:Orientation";
    const size_t kl = sizeof key - 1;
    for (size_t i = 0; x && n >= kl && i <= n - kl; i++) {
        if (memcmp(x + i, key, kl) != 0) continue;
        size_t j = i + kl;
        if (j + 1 < n && x[j] == '>' && x[j + 1] >= '0' && x[j + 1] <= '9') return x[j + 1] - '0';
        if (j + 2 < n && x[j] == '=' && x[j + 1] == '"' && x[j + 2] >= '0' && x[j + 2] <= '9') return x[j + 2] - '0';
    }
    return -1;
}

/* EXIF first, XMP when EXIF has no orientation tag (as Pillow's getexif + exif_transpose): 1..8. */
static int orientation_of(const uint8_t *exif, size_t ne, const uint8_t *xmp, size_t nx) {
    int v = exif_tag(exif, ne);
    if (v < 0) v = xmp_tag(xmp, nx);
    return v >= 1 && v <= 8 ? v : 1;
}

void qv_image_orient_into(uint8_t *dst, const uint8_t *src, size_t src_stride, int w, int h, int o) {
    int swap = o >= 5 && o <= 8;
    int ow = swap ? h : w, oh = swap ? w : h;
    for (int y = 0; y < oh; y++) {
        uint8_t *d = dst + (size_t)y * ow * 3;
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x, sy = y; break;                 /* FLIP_LEFT_RIGHT */
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;         /* ROTATE_180 */
            case 4: sx = x, sy = h - 1 - y; break;                 /* FLIP_TOP_BOTTOM */
            case 5: sx = y, sy = x; break;                         /* TRANSPOSE */
            case 6: sx = y, sy = h - 1 - x; break;                 /* ROTATE_270 (90 clockwise) */
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;         /* TRANSVERSE */
            case 8: sx = w - 1 - y, sy = x; break;                 /* ROTATE_90 (counter-clockwise) */
            default: sx = x, sy = y; break;
            }
            memcpy(d + (size_t)x * 3, src + (size_t)sy * src_stride + (size_t)sx * 3, 3);
        }
    }
}

uint8_t *qv_image_orient(const uint8_t *src, int w, int h, int o, int *dw, int *dh) {
    int swap = o >= 5 && o <= 8;
    uint8_t *dst = malloc((size_t)w * h * 3);
    if (!dst) return NULL;
    qv_image_orient_into(dst, src, (size_t)w * 3, w, h, o);
    *dw = swap ? h : w;
    *dh = swap ? w : h;
    return dst;
}

/* ---- JPEG -------------------------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
} jerr_t;

static void j_error_exit(j_common_ptr c) {   /* libjpeg's default would exit(): jump back instead */
    jerr_t *e = (jerr_t *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}
static void j_emit(j_common_ptr c, int level) {
    /* warnings (corrupt data that libjpeg recovers from) are ignored, as Pillow ignores them; a premature end
     * is an error, as Pillow raises "image file is truncated" */
    jerr_t *e = (jerr_t *)c->err;
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}
static void j_output(j_common_ptr c) { (void)c; }

static inline uint8_t clip8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

typedef struct {
    uint8_t *rgb, *row;
    int orientation;
} jout_t;

static qv_status decode_jpeg(const char *path, const uint8_t *data, size_t n, jout_t *o, int *w, int *h,
                             qv_err *err) {
    struct jpeg_decompress_struct ci;
    jerr_t je;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = j_error_exit;
    je.pub.emit_message = j_emit;
    je.pub.output_message = j_output;
    je.truncated = 0;
    je.msg[0] = 0;
    /* o lives in the caller: what is allocated after setjmp survives the longjmp there */
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        return qv_errf(err, QV_ERR_FORMAT, "%s: corrupt JPEG: %s", path, je.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)n);
    jpeg_save_markers(&ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&ci, TRUE);
    {   /* as Pillow: the first EXIF APP1, the last XMP APP1 */
        static const char xmp_id[] = "http://ns.adobe.com/xap/1.0/";
        const uint8_t *exif = NULL, *xmp = NULL;
        size_t ne = 0, nx = 0;
        for (jpeg_saved_marker_ptr mk = ci.marker_list; mk; mk = mk->next) {
            if (mk->marker != JPEG_APP0 + 1) continue;
            if (!exif && mk->data_length >= 6 && memcmp(mk->data, "Exif\0\0", 6) == 0)
                exif = mk->data, ne = mk->data_length;
            else if (mk->data_length >= sizeof xmp_id && memcmp(mk->data, xmp_id, sizeof xmp_id) == 0)
                xmp = mk->data + sizeof xmp_id, nx = mk->data_length - sizeof xmp_id;
        }
        o->orientation = orientation_of(exif, ne, xmp, nx);
    }
    int nc = ci.num_components;
    if (nc != 1 && nc != 3 && nc != 4) {
        jpeg_destroy_decompress(&ci);
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: JPEG with %d components is not supported", path, nc);
    }
    /* Pillow: mode from the component count; rawmode L / RGB / CMYK;I; libjpeg's defaults otherwise
     * (JDCT_ISLOW, fancy upsampling on); set explicitly so a library default change cannot move them */
    ci.out_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 3 ? JCS_RGB : JCS_CMYK;
    ci.dct_method = JDCT_ISLOW;
    ci.do_fancy_upsampling = TRUE;
    ci.do_block_smoothing = TRUE;   /* libjpeg's default (progressive files); Pillow leaves it */
    if ((int64_t)ci.image_width * ci.image_height > MAX_IMAGE_PIXELS) {
        jpeg_destroy_decompress(&ci);
        return qv_errf(err, QV_ERR_FORMAT, "%s: image %ux%u is too large", path, ci.image_width, ci.image_height);
    }
    jpeg_start_decompress(&ci);
    int W = (int)ci.output_width, H = (int)ci.output_height, oc = ci.output_components;
    o->rgb = malloc((size_t)W * H * 3);
    o->row = malloc((size_t)W * (oc > 3 ? oc : 3));
    if (!o->rgb || !o->row) {
        jpeg_destroy_decompress(&ci);
        return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, W, H);
    }
    while (ci.output_scanline < ci.output_height) {
        int y = (int)ci.output_scanline;
        JSAMPROW rp = o->row;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) break;
        uint8_t *d = o->rgb + (size_t)y * W * 3;
        if (oc == 3) {
            memcpy(d, o->row, (size_t)W * 3);
        } else if (oc == 1) {
            for (int x = 0; x < W; x++) d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = o->row[x];
        } else {   /* "CMYK;I" (Adobe inverted) then Pillow's cmyk2rgb */
            for (int x = 0; x < W; x++) {
                const uint8_t *s = o->row + 4 * x;   /* stored inverted: C = 255 - s[0] ... K = 255 - s[3] */
                int nk = s[3];                       /* 255 - K */
                for (int c = 0; c < 3; c++) d[3 * x + c] = clip8(nk - muldiv255(255 - s[c], nk));
            }
        }
        if (je.truncated) break;
    }
    int truncated = je.truncated;   /* a missing EOI after complete image data is not an error */
    if (!truncated) jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    if (truncated) return qv_errf(err, QV_ERR_FORMAT, "%s: truncated JPEG (the file ends inside the image)", path);
    *w = W;
    *h = H;
    return QV_OK;
}

/* ---- WebP -------------------------------------------------------------------------------------------- */

static const char *vp8_status(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated (not enough data)";
    default: return "decoding failed";
    }
}

/* The EXIF and XMP chunks of a RIFF/WEBP file (extended format; the first of each), bounded walk. */
static int webp_orientation(const uint8_t *b, size_t n) {
    const uint8_t *exif = NULL, *xmp = NULL;
    size_t ne = 0, nx = 0, at = 12;
    while (at + 8 <= n) {
        uint32_t len = rd32(b + at + 4, 1);
        if (len > n - at - 8) break;
        if (!exif && memcmp(b + at, "EXIF", 4) == 0) exif = b + at + 8, ne = len;
        if (!xmp && memcmp(b + at, "XMP ", 4) == 0) xmp = b + at + 8, nx = len;
        at += 8 + (size_t)len + (len & 1);
    }
    return orientation_of(exif, ne, xmp, nx);
}

static qv_status decode_webp(const char *path, const uint8_t *data, size_t n, uint8_t **rgb, int *w, int *h,
                             int *orientation, qv_err *err) {
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: libwebp version mismatch", path);
    VP8StatusCode s = WebPGetFeatures(data, n, &cfg.input);
    if (s != VP8_STATUS_OK) return qv_errf(err, QV_ERR_FORMAT, "%s: corrupt WebP: %s", path, vp8_status(s));
    if (cfg.input.has_animation)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: animated WebP is not supported (give one frame as an image)", path);
    int W = cfg.input.width, H = cfg.input.height;
    if (W < 1 || H < 1 || (int64_t)W * H > MAX_IMAGE_PIXELS)
        return qv_errf(err, QV_ERR_FORMAT, "%s: bad image size %dx%d", path, W, H);
    /* Pillow decodes RGBA (non-premultiplied) and drops alpha; libwebp's RGB output has the same RGB values
     * (one YUV->RGB conversion and upsampler for both layouts) */
    uint8_t *buf = malloc((size_t)W * H * 3);
    if (!buf) return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, W, H);
    cfg.output.colorspace = MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = buf;
    cfg.output.u.RGBA.stride = W * 3;
    cfg.output.u.RGBA.size = (size_t)W * H * 3;
    s = WebPDecode(data, n, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if (s != VP8_STATUS_OK) {
        free(buf);
        return qv_errf(err, QV_ERR_FORMAT, "%s: corrupt WebP: %s", path, vp8_status(s));
    }
    *orientation = webp_orientation(data, n);
    *rgb = buf;
    *w = W;
    *h = H;
    return QV_OK;
}

/* ---- PNG --------------------------------------------------------------------------------------------- */

/* Chunk walk: complete chunks through the last IDAT (Pillow raises on a file that ends inside the image
 * data), and the orientation from the eXIf chunk or an uncompressed iTXt XML:com.adobe.xmp (the last one, as
 * Pillow keeps it; a compressed one is not read). */
static qv_status png_check(const char *path, const uint8_t *b, size_t n, int *orientation, qv_err *err) {
    if (n >= 24 && memcmp(b + 12, "IHDR", 4) == 0) {   /* refuse absurd sizes before the decoder allocates */
        uint32_t w = rd32(b + 16, 0), h = rd32(b + 20, 0);
        if (w < 1 || h < 1 || w > 65535 || h > 65535 || (uint64_t)w * h > MAX_IMAGE_PIXELS)
            return qv_errf(err, QV_ERR_FORMAT, "%s: bad PNG image size %ux%u", path, w, h);
    }
    size_t at = 8, ne = 0, nx = 0;
    const uint8_t *exif = NULL, *xmp = NULL;
    int idat = 0, end = 0;
    while (at + 8 <= n) {
        uint32_t len = rd32(b + at, 0);
        const uint8_t *type = b + at + 4, *d = b + at + 8;
        if (len > 0x7FFFFFFFu || len + (size_t)12 > n - at) break;   /* incomplete chunk */
        if (memcmp(type, "IDAT", 4) == 0) idat = 1;
        else if (idat) idat = 2;   /* image data complete */
        if (memcmp(type, "eXIf", 4) == 0 && !exif) exif = d, ne = len;
        static const char key[] = "XML:com.adobe.xmp";   /* keyword, NUL, flag, method, lang NUL, tkey NUL */
        if (memcmp(type, "iTXt", 4) == 0 && len > sizeof key + 1 && memcmp(d, key, sizeof key) == 0 &&
            d[sizeof key] == 0) {
            const uint8_t *p = d + sizeof key + 2, *e = d + len;
            const uint8_t *z1 = memchr(p, 0, (size_t)(e - p));
            const uint8_t *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(e - z1 - 1)) : NULL;
            if (z2) xmp = z2 + 1, nx = (size_t)(e - z2 - 1);
        }
        if (memcmp(type, "IEND", 4) == 0) {
            end = 1;
            break;
        }
        at += 12 + (size_t)len;
    }
    *orientation = orientation_of(exif, ne, xmp, nx);
    if (end || idat == 2) return QV_OK;   /* only trailing chunks missing: Pillow tolerates a lost IEND */
    return qv_errf(err, QV_ERR_FORMAT, "%s: truncated PNG (the file ends inside %s)", path,
                   idat ? "the image data" : "the header");
}

static qv_status png_to_rgb(const char *path, const AVFrame *f, uint8_t *d, qv_err *err) {
    int W = f->width, H = f->height;
    for (int y = 0; y < H; y++) {
        const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        uint8_t *o = d + (size_t)y * W * 3;
        switch (f->format) {
        case AV_PIX_FMT_RGB24: memcpy(o, s, (size_t)W * 3); break;
        case AV_PIX_FMT_RGBA:   /* convert("RGB") drops alpha */
            for (int x = 0; x < W; x++) memcpy(o + 3 * x, s + 4 * x, 3);
            break;
        case AV_PIX_FMT_RGB48BE:   /* Pillow unpacks 16-bit RGB(A) as "RGB;16B": the high byte */
            for (int x = 0; x < W * 3; x++) o[x] = s[2 * x];
            break;
        case AV_PIX_FMT_RGBA64BE:
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) o[3 * x + c] = s[8 * x + 2 * c];
            break;
        case AV_PIX_FMT_GRAY8:
            for (int x = 0; x < W; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = s[x];
            break;
        case AV_PIX_FMT_YA8:
            for (int x = 0; x < W; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = s[2 * x];
            break;
        case AV_PIX_FMT_YA16BE:   /* "LA;16B": the high byte */
            for (int x = 0; x < W; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = s[4 * x];
            break;
        case AV_PIX_FMT_GRAY16BE:   /* mode I;16 -> RGB: the value clipped to 0..255 (not scaled) */
            for (int x = 0; x < W; x++) {
                unsigned v = (unsigned)s[2 * x] << 8 | s[2 * x + 1];
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
            }
            break;
        case AV_PIX_FMT_MONOBLACK:   /* mode "1" -> 0 or 255 */
            for (int x = 0; x < W; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = (s[x >> 3] >> (7 - (x & 7)) & 1) ? 255 : 0;
            break;
        case AV_PIX_FMT_PAL8: {   /* palette lookup, transparency dropped */
            const uint32_t *pal = (const uint32_t *)f->data[1];
            for (int x = 0; x < W; x++) {
                uint32_t c = pal[s[x]];
                o[3 * x] = (uint8_t)(c >> 16), o[3 * x + 1] = (uint8_t)(c >> 8), o[3 * x + 2] = (uint8_t)c;
            }
            break;
        }
        default:
            return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: PNG pixel format %s is not supported", path,
                           av_get_pix_fmt_name(f->format));
        }
    }
    return QV_OK;
}

static qv_status decode_png(const char *path, const uint8_t *data, size_t n, uint8_t **rgb, int *w, int *h,
                            int *orientation, qv_err *err) {
    qv_status st = png_check(path, data, n, orientation, err);
    if (st) return st;
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_PNG);
    if (!codec) return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: this FFmpeg has no PNG decoder", path);
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    uint8_t *buf = NULL;
    if (!ctx || !pkt || !f || n > INT32_MAX - AV_INPUT_BUFFER_PADDING_SIZE || av_new_packet(pkt, (int)n) < 0) {
        st = qv_errf(err, QV_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    memcpy(pkt->data, data, n);
    ctx->thread_count = 1;
    ctx->err_recognition = AV_EF_EXPLODE;   /* a damaged stream fails instead of giving a partial image */
    if (avcodec_open2(ctx, codec, NULL) < 0) {
        st = qv_errf(err, QV_ERR_UNSUPPORTED, "%s: cannot open the PNG decoder", path);
        goto done;
    }
    int r = avcodec_send_packet(ctx, pkt);
    if (r >= 0) r = avcodec_receive_frame(ctx, f);
    if (r == AVERROR(EAGAIN) && avcodec_send_packet(ctx, NULL) >= 0) r = avcodec_receive_frame(ctx, f);
    if (r < 0 || f->width < 1 || f->height < 1) {
        char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
        av_strerror(r, msg, sizeof msg);
        st = qv_errf(err, QV_ERR_FORMAT, "%s: corrupt PNG: %s", path, r < 0 ? msg : "no image");
        goto done;
    }
    if ((int64_t)f->width * f->height > MAX_IMAGE_PIXELS) {
        st = qv_errf(err, QV_ERR_FORMAT, "%s: image %dx%d is too large", path, f->width, f->height);
        goto done;
    }
    if (!(buf = malloc((size_t)f->width * f->height * 3))) {
        st = qv_errf(err, QV_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, f->width, f->height);
        goto done;
    }
    if ((st = png_to_rgb(path, f, buf, err))) goto done;
    *rgb = buf, buf = NULL;
    *w = f->width;
    *h = f->height;
done:
    free(buf);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&ctx);
    return st;
}

/* ---- entry --------------------------------------------------------------------------------------------- */

qv_status qv_image_decode(const char *path, int autorotate, uint8_t **rgb, int *w, int *h, qv_image_info *info,
                          qv_err *err) {
    *rgb = NULL;
    *w = *h = 0;
    qv_image_info ii = {0};
    ii.orientation = 1;
    char *data = NULL;
    size_t n = 0;
    qv_status st = qv_read_file(path, &data, &n, 0, err);
    if (st) return st;
    const uint8_t *b = (const uint8_t *)data;
    ii.kind = qv_image_kind(b, n);
    jout_t jo = {NULL, NULL, 1};
    switch (ii.kind) {
    case QV_IMAGE_JPEG:
        ii.format = "jpeg", ii.decoder = "libjpeg-turbo";
        st = decode_jpeg(path, b, n, &jo, w, h, err);
        free(jo.row);
        if (st) free(jo.rgb);
        else *rgb = jo.rgb, ii.orientation = jo.orientation;
        break;
    case QV_IMAGE_WEBP:
        ii.format = "webp", ii.decoder = "libwebp";
        st = decode_webp(path, b, n, rgb, w, h, &ii.orientation, err);
        break;
    case QV_IMAGE_PNG:
        ii.format = "png", ii.decoder = "ffmpeg-png";
        st = decode_png(path, b, n, rgb, w, h, &ii.orientation, err);
        break;
    default:
        st = qv_errf(err, QV_ERR_FORMAT, "%s: not a JPEG, PNG or WebP file", path);
    }
    free(data);
    if (!st && autorotate && ii.orientation >= 2) {
        int dw, dh;
        uint8_t *r = qv_image_orient(*rgb, *w, *h, ii.orientation, &dw, &dh);
        if (!r) {
            free(*rgb);
            *rgb = NULL;
            return qv_errf(err, QV_ERR_NOMEM, "%s: out of memory rotating the image", path);
        }
        free(*rgb);
        *rgb = r, *w = dw, *h = dh;
        ii.rotated = 1;
    }
    if (info) *info = ii;
    return st;
}
