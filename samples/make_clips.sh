#!/usr/bin/env bash
# make_clips.sh — small test media made with the ffmpeg command line (for tests/fixture_video.c and demos).
#
#   samples/make_clips.sh OUTDIR            # the short clips below (a few seconds of encoding)
#   samples/make_clips.sh OUTDIR long       # + long_720p.mp4: 20 min 1280x720 H.264 (the benchmark clip)
#
# Every clip is testsrc2 (moving content, so every frame differs) at 30 fps unless said otherwise.
# Clips that already exist are kept. HEVC / AV1 clips are made only when the encoder is installed.
set -euo pipefail
out=${1:?usage: make_clips.sh OUTDIR [long]}
mkdir -p "$out"
ff() { ffmpeg -hide_banner -loglevel error -nostdin -y "$@"; }
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null || true)
have_enc() { case "$encoders" in *" $1 "*) return 0 ;; esac; return 1; }
export SVT_LOG=1   # SVT-AV1: errors only
src="testsrc2=size=320x240:rate=30"
x264="-c:v libx264 -preset veryfast -g 12 -pix_fmt yuv420p"

# One ffmpeg run per set (process start-up dominates for clips this small); a set is remade when any of
# its files is missing. Outputs go to temp names first, then are renamed.
set_missing() { for f in "$@"; do [ -s "$out/$f" ] || return 0; done; return 1; }
t() { echo "$out/tmp.$$.$1"; }
commit() { for f in "$@"; do mv "$(t "$f")" "$out/$f"; done; }

# containers and codecs, 2 s = 60 frames each; WebM stores no frame count; vfr.mp4: 30 frames at 30 fps,
# then 30 frames at 10 fps (pts from the expression); trunc source with the index in front (faststart)
set1=(h264.mp4 h264.mkv h264.mov mpeg4.avi vp9.webm vfr.mp4 fs.mp4 mpeg2.mpg)
args=(-map 0 $x264 -bf 2 "$(t h264.mp4)"
      -map 0 $x264 -bf 2 "$(t h264.mkv)"
      -map 0 $x264 "$(t h264.mov)"
      -map 0 -c:v mpeg4 -q:v 4 -g 12 "$(t mpeg4.avi)"
      -map 0 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 300k -g 12 "$(t vp9.webm)"
      -map 0 -vf "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'" -fps_mode passthrough $x264 "$(t vfr.mp4)"
      -map 0 $x264 -movflags +faststart "$(t fs.mp4)"
      -map 0 -c:v mpeg2video -g 12 -bf 2 -q:v 4 "$(t mpeg2.mpg)")
if have_enc libx265; then
    set1+=(hevc.mp4)
    args+=(-map 0 -c:v libx265 -preset ultrafast -x265-params log-level=none:keyint=12 -tag:v hvc1 -pix_fmt yuv420p "$(t hevc.mp4)")
fi
if have_enc libsvtav1; then
    set1+=(av1.mkv)
    args+=(-map 0 -c:v libsvtav1 -preset 12 -g 12 -pix_fmt yuv420p "$(t av1.mkv)")
elif have_enc libaom-av1; then
    set1+=(av1.mkv)
    args+=(-map 0 -c:v libaom-av1 -cpu-used 8 -g 12 -pix_fmt yuv420p "$(t av1.mkv)")
fi
if set_missing "${set1[@]}"; then
    ff -f lavfi -i "$src:duration=2" "${args[@]}"
    commit "${set1[@]}"
fi
# tiny clips
if set_missing one.mp4 three.mp4; then
    ff -f lavfi -i "$src:duration=1" -map 0 -frames:v 1 $x264 "$(t one.mp4)" -map 0 -frames:v 3 $x264 "$(t three.mp4)"
    commit one.mp4 three.mp4
fi
# seek test: 20 s, keyframe every 15 frames, B-frames; sampled at 0.5 fps a target skips 60 frames
# (MPEG-TS seeks land late; opengop.mp4 has leading B-frames that reference the previous GOP)
if set_missing seek.mp4 seek.mkv opengop.mp4; then
    ff -f lavfi -i "testsrc2=size=160x120:rate=30:duration=20" \
        -map 0 -c:v libx264 -preset ultrafast -bf 2 -g 15 -pix_fmt yuv420p "$(t seek.mp4)" \
        -map 0 -c:v libx264 -preset ultrafast -bf 2 -g 15 -pix_fmt yuv420p "$(t seek.mkv)" \
        -map 0 -c:v libx264 -preset veryfast -bf 3 -g 30 -x264-params open-gop=1:scenecut=0 -pix_fmt yuv420p \
        "$(t opengop.mp4)"
    commit seek.mp4 seek.mkv opengop.mp4
fi
if set_missing seek.ts; then
    ff -i "$out/seek.mp4" -c copy "$(t seek.ts)"
    commit seek.ts
fi
# still images
if set_missing still.jpg still.webp still.png; then
    ff -f lavfi -i "testsrc2=size=300x200:rate=1" -map 0 -frames:v 1 "$(t still.jpg)" \
        -map 0 -frames:v 1 -c:v libwebp "$(t still.webp)" -map 0 -frames:v 1 "$(t still.png)"
    commit still.jpg still.webp still.png
fi
# damaged files
# index says 60 frames, data holds about half
[ -s "$out/trunc_faststart.mp4" ] || head -c $(($(stat -c %s "$out/fs.mp4") / 2)) "$out/fs.mp4" > "$out/trunc_faststart.mp4"
[ -s "$out/trunc_moov.mp4" ] || head -c $(($(stat -c %s "$out/h264.mp4") / 2)) "$out/h264.mp4" > "$out/trunc_moov.mp4"
[ -s "$out/trunc.mkv" ] || head -c $(($(stat -c %s "$out/h264.mkv") / 2)) "$out/h264.mkv" > "$out/trunc.mkv"
[ -s "$out/trunc.webm" ] || head -c $(($(stat -c %s "$out/vp9.webm") / 2)) "$out/vp9.webm" > "$out/trunc.webm"
if [ ! -s "$out/corrupt.mkv" ]; then   # 4 KiB of garbage over the middle of the stream
    cp "$out/h264.mkv" "$out/corrupt.mkv"
    size=$(stat -c %s "$out/corrupt.mkv")
    head -c 4096 /dev/urandom | dd of="$out/corrupt.mkv" bs=1 seek=$((size / 2)) conv=notrunc status=none
fi
if [ ! -s "$out/corrupt.mp4" ]; then
    cp "$out/h264.mp4" "$out/corrupt.mp4"
    size=$(stat -c %s "$out/corrupt.mp4")
    head -c 4096 /dev/urandom | dd of="$out/corrupt.mp4" bs=1 seek=$((size / 3)) conv=notrunc status=none
fi
[ -e "$out/garbage.mp4" ] || head -c 20000 /dev/urandom > "$out/garbage.mp4"
[ -e "$out/empty.mp4" ] || : > "$out/empty.mp4"

if [ "${2:-}" = long ]; then
    # 20 minutes of 1280x720 at 30 fps (36000 frames), fast to make and small on disk
    if set_missing long_720p.mp4; then
        ff -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=1200" -c:v libx264 -preset ultrafast \
            -g 250 -b:v 400k -pix_fmt yuv420p "$(t long_720p.mp4)"
        commit long_720p.mp4
    fi
fi
echo "clips in $out"
