#!/usr/bin/env bash
# Photos through the CLI: EXIF orientation ignored by default (as the reference), applied with --autorotate
# (qv preprocess and the shared option of ask); damaged photos: exit 1 and one line naming the file.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
T="$QV_TMP"; rm -rf "$T"/*; mkdir -p "$T"
QV="$QV_BIN"
P=tests/data/photos
tiny="$QV_FIXTURES/models/tiny-qwen2vl"

out=$("$QV" preprocess "$P/jpeg_exif6.jpg"); ok test $? -eq 0
ok grep -q '"width": 61, "height": 47' <<<"$out"
ok grep -q '"codec": "libjpeg-turbo", "orientation": 6, "rotated": false' <<<"$out"
out=$("$QV" preprocess "$P/jpeg_exif6.jpg" --autorotate); ok test $? -eq 0
ok grep -q '"width": 47, "height": 61' <<<"$out"
ok grep -q '"rotated": true' <<<"$out"
out=$("$QV" preprocess "$P/webp_exif6.webp" --autorotate); ok test $? -eq 0
ok grep -q '"width": 47, "height": 61.*"codec": "libwebp"' <<<"$out"
out=$("$QV" preprocess "$P/png_palette.png"); ok test $? -eq 0
ok grep -q '"codec": "ffmpeg-png", "orientation": 1, "rotated": false' <<<"$out"

# the shared media option reaches ask (tiny model: seconds)
"$QV" ask --model "$tiny" --autorotate --max-tokens 2 --quiet "$P/jpeg_exif6.jpg" "What is shown?" > "$T/ans" 2> "$T/err"
ok test $? -eq 0
ok test -s "$T/ans"

# damaged photos: exit 1, one line, the file named
check_err() { # file pattern
  "$QV" preprocess "$1" > /dev/null 2> "$T/err"; rc=$?
  ok test $rc -eq 1
  ok test "$(wc -l < "$T/err")" -eq 1
  ok grep -q "$2" "$T/err"
}
head -c 900 "$P/jpeg_420.jpg" > "$T/cut.jpg";          check_err "$T/cut.jpg" "cut.jpg: truncated JPEG"
head -c 600 "$P/webp_lossy.webp" > "$T/cut.webp";      check_err "$T/cut.webp" "cut.webp: corrupt WebP"
head -c 2000 "$P/png_rgba.png" > "$T/cut.png";         check_err "$T/cut.png" "cut.png: truncated PNG"
printf '\xff\xd8\xff\xe0garbage' > "$T/junk.jpg";      check_err "$T/junk.jpg" "junk.jpg: corrupt JPEG"
cp "$P/jpeg_420.jpg" "$T/photo.mp4"                    # named like a video: still read as the photo it is
out=$("$QV" preprocess "$T/photo.mp4"); ok test $? -eq 0
ok grep -q '"is_image": true.*"codec": "libjpeg-turbo"' <<<"$out"

echo "$pass passed, $fail failed"
test $fail -eq 0
