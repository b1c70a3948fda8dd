/* unit_output.c — the result writers (pipeline/output.c): timestamp formatting and rounding, escaping,
 * blank-line collapsing, UTF-8 repair, and documents checked by the strict SRT/VTT checker and by
 * cJSON parsing. Expected strings are written from the SRT/WebVTT/JSON rules, not from qv's output. */
#include "output.h"
#include "tasks.h"
#include "test.h"
#include "unit_output_subcheck.h"

#include <cjson/cJSON.h>

static int ts_is(long long ms, char sep, const char *want) {
    char b[32];
    qv_format_timestamp(b, sizeof b, ms, sep);
    if (strcmp(b, want) != 0) fprintf(stderr, "  got %s want %s\n", b, want);
    return strcmp(b, want) == 0;
}

static void test_timestamps(void) {
    CHECK(ts_is(0, ',', "00:00:00,000"));
    CHECK(ts_is(1, '.', "00:00:00.001"));
    CHECK(ts_is(59999, ',', "00:00:59,999"));
    CHECK(ts_is(60000, ',', "00:01:00,000"));
    CHECK(ts_is(3599999, '.', "00:59:59.999"));
    CHECK(ts_is(3600000, '.', "01:00:00.000"));
    CHECK(ts_is(((25LL * 60 + 7) * 60 + 9) * 1000 + 42, ',', "25:07:09,042"));
    CHECK(ts_is(100LL * 3600000, ',', "100:00:00,000"));
    /* rounding to ms: half to even, no float truncation surprises */
    CHECK(qv_time_ms(1.0) == 1000);
    CHECK(qv_time_ms(0.0015) == 2);   /* 1.5 ms -> 2 (even) */
    CHECK(qv_time_ms(0.0025) == 2);   /* 2.5 ms -> 2 (even) */
    CHECK(qv_time_ms(0.0004) == 0);
    CHECK(qv_time_ms(0.0006) == 1);
    CHECK(qv_time_ms(9.9999) == 10000);
    CHECK(qv_time_ms(59.9996) == 60000);
    CHECK(qv_time_ms(0.1 * 3) == 300);     /* 0.30000000000000004 */
    CHECK(qv_time_ms(-3.0) == 0);
    CHECK(qv_time_ms(NAN) == 0);
    CHECK(qv_time_ms(7200.0) == 7200000);
}

static void test_formats(void) {
    CHECK(qv_format_from_path("a/b.srt") == QV_FMT_SRT);
    CHECK(qv_format_from_path("x.VTT") == QV_FMT_VTT);
    CHECK(qv_format_from_path("x.json") == QV_FMT_JSON);
    CHECK(qv_format_from_path("x.txt") == QV_FMT_TEXT);
    CHECK(qv_format_from_path("dir.srt/file") == -1);
    CHECK(qv_format_from_path("noext") == -1);
    CHECK(qv_format_from_name("webvtt") == QV_FMT_VTT);
    CHECK(qv_format_from_name("text") == QV_FMT_TEXT);
    CHECK(qv_format_from_name("mp4") == -1);
}

static int cue_is(const char *in, int vtt, const char *want) {
    char *got = qv_cue_text(in, vtt);
    int ok = got && strcmp(got, want) == 0;
    if (!ok) fprintf(stderr, "  cue '%s' -> '%s', want '%s'\n", in, got ? got : "(null)", want);
    free(got);
    return ok;
}

static void test_cue_text(void) {
    CHECK(cue_is("A cat.", 0, "A cat."));
    CHECK(cue_is("  padded  ", 0, "padded"));
    CHECK(cue_is("one\n\ntwo", 0, "one\ntwo"));             /* blank line would end the cue */
    CHECK(cue_is("one\r\n \r\n\ttwo\r", 0, "one\ntwo"));
    CHECK(cue_is("a\rb", 0, "a\nb"));
    CHECK(cue_is("", 0, "..."));
    CHECK(cue_is(" \n \n", 1, "..."));
    CHECK(cue_is("x\x01y\x7fz", 0, "xyz"));                  /* control characters dropped */
    CHECK(cue_is("Tom & Jerry <b>", 1, "Tom &amp; Jerry &lt;b&gt;"));
    CHECK(cue_is("a --> b", 1, "a --&gt; b"));
    CHECK(cue_is("a --> b", 0, "a -- > b"));                 /* SRT has no escapes */
    CHECK(cue_is("Tom & Jerry <b>", 0, "Tom & Jerry <b>"));
    CHECK(cue_is("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80", 0, "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"));
    CHECK(cue_is("bad\xff byte", 0, "bad\xef\xbf\xbd byte"));
    CHECK(cue_is("trunc\xe2\x9c", 0, "trunc\xef\xbf\xbd\xef\xbf\xbd"));
    CHECK(cue_is("overlong\xc0\xaf", 0, "overlong\xef\xbf\xbd\xef\xbf\xbd"));
    CHECK(cue_is("surrogate\xed\xa0\x80", 0, "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    CHECK(cue_is("para\xe2\x80\xa9graph", 0, "para\ngraph"));
}

static const qv_segment k_segs[] = {
    {0.0, 10.0, "A red square moves."},
    {10.0, 20.0, "Tom & Jerry <run>\n\nfast --> away"},
    {20.0, 29.9996, ""},
    {29.9996, 31.5, "caf\xc3\xa9 \xff"},
};

static void test_documents(void) {
    qv_out_meta meta = {.video = "clip \"1\".mp4", .task = "subtitles", .prompt = "Describe.\n", .duration = 31.5};
    char why[256] = "";
    char *srt = qv_render(QV_FMT_SRT, &meta, k_segs, 4);
    CHECK(srt != NULL);
    int n = subcheck_srt(srt, 31500, why, sizeof why);
    CHECK_MSG(n == 4, "srt: %d cues (%s)\n%s", n, why, srt);
    CHECK(strstr(srt, "1\n00:00:00,000 --> 00:00:10,000\nA red square moves.\n\n") == srt);
    CHECK(strstr(srt, "3\n00:00:20,000 --> 00:00:30,000\n...\n\n") != NULL);
    CHECK(strstr(srt, "4\n00:00:30,000 --> 00:00:31,500\n") != NULL);
    free(srt);

    char *vtt = qv_render(QV_FMT_VTT, &meta, k_segs, 4);
    CHECK(vtt != NULL);
    n = subcheck_vtt(vtt, 31500, why, sizeof why);
    CHECK_MSG(n == 4, "vtt: %d cues (%s)\n%s", n, why, vtt);
    CHECK(strncmp(vtt, "WEBVTT\n\n", 8) == 0);
    CHECK(strstr(vtt, "00:00:10.000 --> 00:00:20.000\nTom &amp; Jerry &lt;run&gt;\nfast --&gt; away\n\n") != NULL);
    free(vtt);

    /* the checker itself must reject what is wrong */
    CHECK(subcheck_srt("1\n00:00:01,000 --> 00:00:00,500\nx\n\n", -1, why, sizeof why) < 0);
    CHECK(subcheck_srt("1\n00:00:00,000 --> 00:00:02,000\nx\n\n2\n00:00:01,000 --> 00:00:03,000\ny\n\n", -1, why,
                       sizeof why) < 0);
    CHECK(subcheck_srt("1\n00:00:00,000 --> 00:00:02,000\nx\n\n", 1000, why, sizeof why) < 0);
    CHECK(subcheck_srt("1\n00:00:00.000 --> 00:00:02.000\nx\n\n", -1, why, sizeof why) < 0);
    CHECK(subcheck_srt("1\n00:00:00,000 --> 00:00:02,000\nx\n\n\n", -1, why, sizeof why) < 0);
    CHECK(subcheck_srt("2\n00:00:00,000 --> 00:00:02,000\nx\n\n", -1, why, sizeof why) < 0);
    CHECK(subcheck_srt("1\n00:00:00,000 --> 00:00:02,000\nx\n\n", -1, why, sizeof why) == 1);
    CHECK(subcheck_vtt("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na < b\n\n", -1, why, sizeof why) < 0);
    CHECK(subcheck_vtt("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na & b\n\n", -1, why, sizeof why) < 0);
    CHECK(subcheck_vtt("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na &amp; b\n\n", -1, why, sizeof why) == 1);
    CHECK(subcheck_vtt("00:00:00.000 --> 00:00:01.000\na\n\n", -1, why, sizeof why) < 0);

    char *js = qv_render(QV_FMT_JSON, &meta, k_segs, 4);
    CHECK(js != NULL);
    cJSON *root = cJSON_Parse(js);
    CHECK_MSG(root != NULL, "json does not parse:\n%s", js);
    if (root) {
        cJSON *segs = cJSON_GetObjectItem(root, "segments");
        CHECK(cJSON_IsArray(segs) && cJSON_GetArraySize(segs) == 4);
        cJSON *s1 = cJSON_GetArrayItem(segs, 1);
        CHECK(s1 && strcmp(cJSON_GetObjectItem(s1, "text")->valuestring, k_segs[1].text) == 0);
        CHECK(s1 && cJSON_GetObjectItem(s1, "start")->valuedouble == 10.0);
        CHECK(s1 && strcmp(cJSON_GetObjectItem(s1, "end_ts")->valuestring, "00:00:20.000") == 0);
        cJSON *s3 = cJSON_GetArrayItem(segs, 3);
        CHECK(s3 && strcmp(cJSON_GetObjectItem(s3, "text")->valuestring, "caf\xc3\xa9 \xef\xbf\xbd") == 0);
        CHECK(strcmp(cJSON_GetObjectItem(root, "video")->valuestring, "clip \"1\".mp4") == 0);
        CHECK(cJSON_GetObjectItem(root, "duration")->valuedouble == 31.5);
        cJSON_Delete(root);
    }
    free(js);

    /* text: several segments -> one timestamped line each; one segment -> the bare answer */
    char *tx = qv_render(QV_FMT_TEXT, &meta, k_segs, 2);
    CHECK(tx && strcmp(tx, "[00:00:00.000 --> 00:00:10.000] A red square moves.\n"
                           "[00:00:10.000 --> 00:00:20.000] Tom & Jerry <run> fast --> away\n") == 0);
    free(tx);
    tx = qv_render(QV_FMT_TEXT, NULL, k_segs, 1);
    CHECK(tx && strcmp(tx, "A red square moves.\n") == 0);
    free(tx);
    qv_out_meta sm = {.summary = "Overall summary.", .duration = -1};
    tx = qv_render(QV_FMT_TEXT, &sm, k_segs, 1);
    CHECK(tx && strcmp(tx, "Overall summary.\n\n[00:00:00.000 --> 00:00:10.000] A red square moves.\n") == 0);
    free(tx);

    /* zero-length and overlapping input segments never produce bad cues */
    qv_segment odd[] = {{0, 5, "a"}, {4, 4.0001, "b"}, {3, 8, "c"}, {8, 8, "d"}};
    srt = qv_render(QV_FMT_SRT, NULL, odd, 4);
    n = subcheck_srt(srt, -1, why, sizeof why);
    CHECK_MSG(n == 2, "odd srt: %d (%s)\n%s", n, why, srt);
    free(srt);
    vtt = qv_render(QV_FMT_VTT, NULL, NULL, 0);
    CHECK(vtt && strcmp(vtt, "WEBVTT\n\n") == 0 && subcheck_vtt(vtt, -1, why, sizeof why) == 0);
    free(vtt);
}

static void test_windows(void) {
    double w[16][2];
    /* 60 s in 10 s windows: 6, tiling exactly */
    int n = qv_task_windows(0, 60, 10, w, 16);
    CHECK(n == 6 && w[0][0] == 0 && w[0][1] == 10 && w[5][0] == 50 && w[5][1] == 60);
    for (int i = 1; i < n; i++) CHECK(w[i][0] == w[i - 1][1]);
    /* a short rest (< min(1 s, window/2)) joins the last window; a longer one is its own */
    n = qv_task_windows(0, 20.5, 10, w, 16);
    CHECK(n == 2 && w[1][0] == 10 && w[1][1] == 20.5);
    n = qv_task_windows(0, 21.5, 10, w, 16);
    CHECK(n == 3 && w[2][0] == 20 && w[2][1] == 21.5);
    n = qv_task_windows(0, 1.2, 1, w, 16);                 /* rest 0.2 < 0.5: joins */
    CHECK(n == 1 && w[0][1] == 1.2);
    /* shorter than one window: one window, the whole span; an offset start */
    n = qv_task_windows(12, 15, 10, w, 16);
    CHECK(n == 1 && w[0][0] == 12 && w[0][1] == 15);
    n = qv_task_windows(12, 30, 7, w, 16);
    CHECK(n == 3 && w[1][0] == 19 && w[2][0] == 26 && w[2][1] == 30);
    /* counting without room, and nonsense */
    CHECK(qv_task_windows(0, 3600, 10, NULL, 0) == 360);
    CHECK(qv_task_windows(5, 5, 10, w, 16) == 0);
    CHECK(qv_task_windows(0, 10, 0, w, 16) == 0);
    CHECK(qv_task_windows(0, NAN, 10, w, 16) == 0);
    /* automatic outline windows: about a dozen, multiples of 5 s, at least 10 s */
    CHECK(qv_task_auto_window(3.2) == 10 && qv_task_auto_window(60) == 10 && qv_task_auto_window(3600) == 300);
    CHECK(qv_task_auto_window(1000) == 85 && qv_task_windows(0, 1000, 85, NULL, 0) == 12);
}

int main(void) {
    test_windows();
    test_timestamps();
    test_formats();
    test_cue_text();
    test_documents();
    return test_done();
}
