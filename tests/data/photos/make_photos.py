#!/usr/bin/env python3
"""make_photos.py — the still-image fixtures of tests/unit_image.c, made and decoded with Pillow.

Writes small images of every kind qv decodes itself (JPEG baseline/progressive, 4:2:0/4:2:2/4:4:4/gray/
CMYK, EXIF-rotated JPEGs; lossy/lossless WebP with and without alpha; RGBA/palette/gray/16-bit PNG) and,
for each, what the reference makes of it:
  decoded:  PIL.Image.open(p).convert("RGB")                     (qwen-vl-utils fetch_image)
  resized:  decoded.resize((w', h'))  (Pillow's default filter for RGB: BICUBIC), (h', w') = smart_resize
  with --autorotate: ImageOps.exif_transpose(Image.open(p)).convert("RGB"), then the same resize.
Expected pixels are raw RGB24 (row-major, no header), each byte stored minus (up + left - up-left) of its
channel (0 outside the image) mod 256, then zlib-compressed; MANIFEST lists them:
  file autorotate width height resized_width resized_height decoded.z resized.z ("-": not stored)
Run from anywhere (needs Pillow only; CI does not run this): python3 tests/data/photos/make_photos.py
The committed images are the fixtures; rerunning with another Pillow re-encodes them (different bytes) and
rewrites the expected pixels to match.
  --check   decode and resize the committed images with this Pillow and compare with the expected files
            (how the cross-version agreement in the README was checked); writes nothing.
Pillow 13 runs the two resize passes in another order for some shapes (vertical first when the width grows
and the height shrinks, among others), which changes 20-30 % of the resized values of those shapes: the reference
(and ../shared/fixtures' goldens) use Pillow <= 12 (horizontal pass first), so this script refuses Pillow
>= 13 for writing; its decoders agree (--check). """
import math
import os
import sys
import zlib

from PIL import Image, ImageDraw, ImageOps, features

HERE = os.path.dirname(os.path.abspath(__file__))
FACTOR, MIN_PIXELS, MAX_PIXELS = 28, 4 * 28 * 28, 16384 * 28 * 28


def smart_resize(h, w, factor=FACTOR, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS):
    """qwen-vl-utils' smart_resize (round = Python's round: half to even)."""
    hb = max(factor, round(h / factor) * factor)
    wb = max(factor, round(w / factor) * factor)
    if hb * wb > max_pixels:
        beta = math.sqrt((h * w) / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    return hb, wb


def scene(w, h, seed=1):
    """RGB content with gradients, hard edges, thin lines and pseudo-random texture (deterministic)."""
    im = Image.new("RGB", (w, h))
    px = im.load()
    s = seed
    for y in range(h):
        for x in range(w):
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF
            n = (s >> 16) % 9 - 4
            r = int(255 * x / max(1, w - 1))
            g = int(255 * y / max(1, h - 1))
            b = int(127 + 127 * math.sin((x + 2 * y) / 5.0))
            px[x, y] = (max(0, min(255, r + n)), max(0, min(255, g - n)), b)
    d = ImageDraw.Draw(im)
    d.rectangle([w // 5, h // 4, w // 2, h // 2], fill=(250, 20, 30))
    d.ellipse([w // 2, h // 3, w - 4, h - 5], fill=(10, 200, 40), outline=(255, 255, 255))
    d.line([0, h - 1, w - 1, 0], fill=(0, 0, 0), width=1)
    d.line([3, 2, 3, h - 3], fill=(255, 255, 0), width=1)
    return im


def with_alpha(im):
    a = Image.new("L", im.size)
    ap = a.load()
    w, h = im.size
    for y in range(h):
        for x in range(w):
            ap[x, y] = 0 if x < w // 6 else (255 if x > w // 2 else int(255 * (x - w // 6) / (w // 3)))
    out = im.copy()
    out.putalpha(a)
    return out


def delta(raw, w):
    """Each byte minus (up + left - up-left) of the same channel (0 outside the image), mod 256."""
    b = bytearray(raw)
    row = 3 * w
    out = bytearray(len(b))
    for i in range(len(b)):
        up = b[i - row] if i >= row else 0
        left = b[i - 3] if i % row >= 3 else 0
        upleft = b[i - row - 3] if i >= row and i % row >= 3 else 0
        ref = up + left - upleft
        out[i] = (b[i] - ref) & 255
    return bytes(out)


def raw_png(path, w, h, bit_depth, color_type, rows):
    """A PNG written by hand (Pillow cannot write 16-bit RGB/RGBA/LA or 4-bit gray): rows = filter-0 scanlines."""
    import struct

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    data = b"".join(b"\0" + r for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b""))


def exif_bytes(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    e[0x010F] = "qv test camera"
    return e.tobytes()


def make():
    W, H = 61, 47
    base = scene(W, H)
    files = []

    def save(name, im, **kw):
        p = os.path.join(HERE, name)
        im.save(p, **kw)
        files.append(name)

    save("jpeg_420.jpg", base, quality=85, subsampling=2)
    save("jpeg_422.jpg", base, quality=85, subsampling=1)
    save("jpeg_444.jpg", base, quality=92, subsampling=0)
    save("jpeg_progressive.jpg", base, quality=80, subsampling=2, progressive=True)
    save("jpeg_gray.jpg", base.convert("L"), quality=85)
    save("jpeg_cmyk.jpg", base.convert("CMYK"), quality=90)
    save("jpeg_big420.jpg", scene(89, 59, seed=7), quality=75, subsampling=2)   # a second size, odd both ways
    save("jpeg_exif6.jpg", base, quality=85, subsampling=2, exif=exif_bytes(6))   # a phone held upright
    small = scene(23, 17, seed=3)
    for o in (2, 3, 4, 5, 7, 8):   # the other flips, rotations and transposes, small
        save("jpeg_exif%d.jpg" % o, small, quality=90, subsampling=0, exif=exif_bytes(o))
    # orientation in XMP only (Pillow's getexif falls back to it), and EXIF 1 beside XMP 6 (EXIF wins)
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" %s</rdf:Description></rdf:RDF></x:xmpmeta>')
    attr = lambda o: xmp % ('tiff:Orientation="%d">' % o)
    elem = lambda o: xmp % ('><tiff:Orientation>%d</tiff:Orientation>' % o)
    save("jpeg_xmp6.jpg", small, quality=90, subsampling=0, xmp=attr(6).encode())
    save("jpeg_exif1_xmp6.jpg", small, quality=90, subsampling=0, exif=exif_bytes(1), xmp=attr(6).encode())
    save("webp_xmp8.webp", small, lossless=True, xmp=elem(8).encode())
    from PIL import PngImagePlugin
    pi = PngImagePlugin.PngInfo()
    pi.add_itxt("XML:com.adobe.xmp", attr(3))
    save("png_xmp3.png", small, pnginfo=pi)
    save("webp_lossy.webp", base, quality=80)
    save("webp_lossy_alpha.webp", with_alpha(base), quality=80)
    save("webp_lossless.webp", base, lossless=True)
    save("webp_lossless_alpha.webp", with_alpha(base), lossless=True)
    save("webp_exif6.webp", base, quality=80, exif=exif_bytes(6))
    save("png_rgba.png", with_alpha(base))
    save("png_palette.png", base.quantize(colors=37))
    pt = base.quantize(colors=16)
    save("png_palette_trns.png", pt, transparency=3)
    save("png_gray.png", base.convert("L"))
    save("png_gray_alpha.png", with_alpha(base).convert("LA"))
    g16 = Image.new("I;16", (W, H))
    gp = g16.load()
    for y in range(H):
        for x in range(W):
            gp[x, y] = (x * 1100 + y * 37) % 65536 if y % 2 else (x * 3 + y * 2)
    save("png_gray16.png", g16)
    save("png_rgb.png", base)
    save("png_mono.png", small.convert("1"))
    # 16-bit RGB, RGBA, gray+alpha and 4-bit gray, small (decoded pixels only)
    sw, sh = small.size
    sp = small.load()
    def s16(v, x, y):   # a 16-bit sample whose low byte is not a copy of the high one
        return (v << 8) | ((x * 37 + y * 11 + v) & 255)
    for name, ct, nch in (("png_rgb16.png", 2, 3), ("png_rgba16.png", 6, 4), ("png_la16.png", 4, 2)):
        rows = []
        for y in range(sh):
            r = bytearray()
            for x in range(sw):
                px = sp[x, y]
                vals = {3: px, 4: px + ((x * 11) & 255,), 2: (px[1], (y * 15) & 255)}[nch]
                for v in vals:
                    r += s16(v, x, y).to_bytes(2, "big")
            rows.append(bytes(r))
        raw_png(os.path.join(HERE, name), sw, sh, 16, ct, rows)
        files.append(name)
    rows = []
    for y in range(sh):
        nib = [(sp[x, y][0] >> 4) for x in range(sw)] + [0]
        rows.append(bytes((nib[i] << 4) | nib[i + 1] for i in range(0, sw, 2)))
    raw_png(os.path.join(HERE, "png_gray4.png"), sw, sh, 4, 0, rows)
    files.append("png_gray4.png")

    lines = []
    for name in files:
        p = os.path.join(HERE, name)
        for rot in (0, 1):
            with Image.open(p) as im:
                im = ImageOps.exif_transpose(im) if rot else im
                dec = im.convert("RGB")
            if rot and dec.tobytes() == Image.open(p).convert("RGB").tobytes() and "xmp" not in name:
                continue   # no orientation to apply: the same as without --autorotate
            w, h = dec.size
            rh, rw = smart_resize(h, w)
            res = dec.resize((rw, rh), Image.Resampling.BICUBIC)
            stem = os.path.splitext(name)[0] + ("_rot" if rot else "")
            small = w * h < 1000   # the small flip/transpose cases: decoded pixels only (size budget)
            for suffix, img in (("dec", dec), ("res", res)):
                if small and suffix == "res":
                    continue
                with open(os.path.join(HERE, "expected", "%s.%s.z" % (stem, suffix)), "wb") as f:
                    f.write(zlib.compress(delta(img.tobytes(), img.size[0]), 9))
            lines.append("%s %d %d %d %d %d expected/%s.dec.z %s" % (name, rot, w, h, rw, rh, stem,
                         "-" if small else "expected/%s.res.z" % stem))
    with open(os.path.join(HERE, "MANIFEST"), "w") as f:
        f.write("# made by make_photos.py with Pillow %s (libjpeg-turbo %s, libwebp %s)\n"
                % (Image.__version__, features.version("libjpeg_turbo"), features.version("webp")))
        f.write("\n".join(lines) + "\n")


def undelta(raw, w):
    b = bytearray(raw)
    row = 3 * w
    for i in range(len(b)):
        up = b[i - row] if i >= row else 0
        left = b[i - 3] if i % row >= 3 else 0
        upleft = b[i - row - 3] if i >= row and i % row >= 3 else 0
        b[i] = (b[i] + up + left - upleft) & 255
    return bytes(b)


def check():
    """Compares this Pillow's decode + resize of the committed images with the expected files."""
    bad = 0
    for line in open(os.path.join(HERE, "MANIFEST")):
        if line.startswith("#") or not line.strip():
            continue
        name, rot, w, h, rw, rh, dec, res = line.split()
        rot, w, h, rw, rh = int(rot), int(w), int(h), int(rw), int(rh)
        with Image.open(os.path.join(HERE, name)) as im:
            im = ImageOps.exif_transpose(im) if rot else im
            got = im.convert("RGB")
        out = []
        for suffix, img, path, ww in (("decoded", got, dec, w), ("resized", got.resize((rw, rh), Image.Resampling.BICUBIC), res, rw)):
            if path == "-":
                continue
            want = undelta(zlib.decompress(open(os.path.join(HERE, path), "rb").read()), ww)
            n = sum(a != b for a, b in zip(img.tobytes(), want))
            bad += n > 0
            out.append("%s %s" % (suffix, "same" if n == 0 else "%d values differ" % n))
        print("%-28s %s %s" % (name, "rot" if rot else "   ", ", ".join(out)))
    print("Pillow %s (libjpeg-turbo %s, libwebp %s): %s" % (Image.__version__, features.version("libjpeg_turbo"),
          features.version("webp"), "all identical" if not bad else "%d differ" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        sys.exit(check())
    if int(Image.__version__.split(".")[0]) >= 13:
        sys.exit("make_photos.py: Pillow %s resizes in another pass order than the reference; use pillow<13 "
                 "(e.g. 12.3.0) to write the fixtures (--check works with any)" % Image.__version__)
    os.makedirs(os.path.join(HERE, "expected"), exist_ok=True)
    make()
