/* image.h — still photos (JPEG, WebP, PNG) decoded to RGB24 exactly as the reference decodes them:
 * PIL.Image.open(path).convert("RGB") (qwen-vl-utils' fetch_image).
 *
 *   int kind = qv_image_sniff(path);                       // QV_IMAGE_NONE: let FFmpeg handle the file
 *   uint8_t *rgb; int w, h; qv_image_info ii;
 *   if (qv_image_decode(path, 0, &rgb, &w, &h, &ii, &err)) { ...err.msg... }
 *   ... rgb[h][w][3] ...; free(rgb);
 *
 * JPEG: libjpeg-turbo with PIL's settings (accurate integer IDCT, fancy upsampling; grayscale decoded as
 * gray and replicated; CMYK/YCCK decoded as Adobe-inverted CMYK and converted with PIL's cmyk2rgb).
 * WebP: libwebp (default decoder options, as PIL's WebPAnimDecoder; first image; animations refused).
 * PNG: FFmpeg's PNG decoder (lossless), then PIL's convert("RGB") per mode: alpha dropped, palette looked up,
 * gray replicated, 16-bit samples reduced as PIL reduces them. No colour management (PIL applies none).
 * Truncated or corrupt files fail with one line (as PIL raises); libjpeg warnings PIL ignores are ignored.
 * EXIF orientation: the reference ignores it (pixels as stored); autorotate != 0 applies it as
 * PIL.ImageOps.exif_transpose does (Pillow 12: EXIF tag 0x0112, else XMP tiff:Orientation). */
#ifndef QV_IMAGE_H
#define QV_IMAGE_H

#include <stdint.h>

#include "core.h"

enum { QV_IMAGE_NONE = 0, QV_IMAGE_JPEG = 1, QV_IMAGE_PNG = 2, QV_IMAGE_WEBP = 3 };

typedef struct qv_image_info {
    int kind;               /* QV_IMAGE_JPEG | PNG | WEBP */
    const char *format;     /* "jpeg" | "png" | "webp" (static) */
    const char *decoder;    /* "libjpeg-turbo" | "ffmpeg-png" | "libwebp" (static) */
    int orientation;        /* EXIF orientation tag found in the file, 1..8 (1 when none or invalid) */
    int rotated;            /* 1 when the orientation was applied (autorotate and orientation 2..8) */
} qv_image_info;

/* The kind of image file by its first bytes (not its name); QV_IMAGE_NONE when unknown or unreadable. */
int qv_image_sniff(const char *path);
/* Same from bytes already read. */
int qv_image_kind(const uint8_t *head, size_t n);

/* Decodes the whole file. *rgb: [*h][*w][3] malloc'd (caller frees). Images over 2^27 pixels or files over
 * 1 GiB are refused. Errors: QV_ERR_IO (cannot read), QV_ERR_FORMAT (corrupt, truncated),
 * QV_ERR_UNSUPPORTED (e.g. animated WebP, 12-bit JPEG). */
qv_status qv_image_decode(const char *path, int autorotate, uint8_t **rgb, int *w, int *h, qv_image_info *info,
                          qv_err *err);

/* The orientation tag (0x0112) of a TIFF-structured EXIF block (an optional "Exif\0\0" prefix allowed);
 * 1 when absent or malformed. Bounded: reads only inside [exif, exif + n). */
int qv_exif_orientation(const uint8_t *exif, size_t n);

/* Applies EXIF orientation o (2..8) as PIL's exif_transpose: *dst [*dh][*dw][3] malloc'd. NULL on no memory.
 * Orientations 5..8 swap width and height. */
uint8_t *qv_image_orient(const uint8_t *src, int w, int h, int o, int *dw, int *dh);
/* Same into dst (w*h*3 bytes, packed rows of the output width) from src rows src_stride bytes apart. */
void qv_image_orient_into(uint8_t *dst, const uint8_t *src, size_t src_stride, int w, int h, int o);

#endif
