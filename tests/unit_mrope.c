/* unit_mrope.c — the M-RoPE position walk (lm/mrope.c) on hand-built prompts whose expected positions
 * follow from the spec's rule (spec/qwen2vl-reference.md section 6): text continues at max + 1 on all
 * rows; a span (t, gh/2, gw/2) starting at s gives (s+i, s+y, s+x); text after it starts at
 * s + max(t, gh/2, gw/2); rope_delta = max + 1 - n. The golden prompts are checked in fixture_lm. */
#include "test.h"
#include "lm.h"

enum { VS = 900, VE = 901, IMG = 902, VID = 903 };

static qv_text_hparams hp(void) {
    qv_text_hparams h;
    memset(&h, 0, sizeof h);
    h.vision_start_id = VS;
    h.vision_end_id = VE;
    h.image_token_id = IMG;
    h.video_token_id = VID;
    return h;
}

static int same(const int64_t *pos, int n, const int64_t (*want)[3]) {
    for (int i = 0; i < n; i++)
        for (int r = 0; r < 3; r++)
            if (pos[r * n + i] != want[i][r]) {
                fprintf(stderr, "  token %d row %d: got %lld want %lld\n", i, r, (long long)pos[r * n + i],
                        (long long)want[i][r]);
                return 0;
            }
    return 1;
}

int main(void) {
    qv_text_hparams h = hp();
    qv_err err;
    int64_t pos[3 * 64], delta = 99;

    /* text only: 0..n-1 on every row, delta 0 */
    {
        int32_t ids[5] = {1, 2, 3, 4, 5};
        const int64_t want[5][3] = {{0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {4, 4, 4}};
        CHECK(qv_mrope_positions(ids, 5, NULL, 0, NULL, 0, &h, 2, pos, &delta, &err) == QV_OK);
        CHECK(same(pos, 5, want));
        CHECK(delta == 0);
    }
    /* one image (1, 4, 6) -> 1 x 2 x 3 tokens starting at s = 2; text after at 2 + 3 */
    {
        int32_t ids[10] = {10, VS, IMG, IMG, IMG, IMG, IMG, IMG, VE, 11};
        const int grid[1][3] = {{1, 4, 6}};
        const int64_t want[10][3] = {{0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {2, 2, 3}, {2, 2, 4},
                                     {2, 3, 2}, {2, 3, 3}, {2, 3, 4}, {5, 5, 5}, {6, 6, 6}};
        CHECK(qv_mrope_positions(ids, 10, grid, 1, NULL, 0, &h, 2, pos, &delta, &err) == QV_OK);
        CHECK(same(pos, 10, want));
        CHECK(delta == 7 - 10);
    }
    /* a video whose temporal extent dominates: (3, 2, 2) -> 3 x 1 x 1, the pair index is the t position */
    {
        int32_t ids[6] = {VS, VID, VID, VID, VE, 7};
        const int grid[1][3] = {{3, 2, 2}};
        const int64_t want[6][3] = {{0, 0, 0}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}, {4, 4, 4}, {5, 5, 5}};
        CHECK(qv_mrope_positions(ids, 6, NULL, 0, grid, 1, &h, 2, pos, &delta, &err) == QV_OK);
        CHECK(same(pos, 6, want));
        CHECK(delta == 0);
    }
    /* video then image then video: grids are taken per kind in order of appearance */
    {
        int32_t ids[14] = {VS, VID, VID, VE, VS, IMG, IMG, VE, 5, VS, VID, VID, VID, VID};
        const int vg[2][3] = {{2, 2, 2}, {1, 4, 4}};
        const int ig[1][3] = {{1, 2, 4}};
        const int64_t want[14][3] = {{0, 0, 0}, {1, 1, 1}, {2, 1, 1}, {3, 3, 3}, {4, 4, 4}, {5, 5, 5}, {5, 5, 6},
                                     {7, 7, 7}, {8, 8, 8}, {9, 9, 9}, {10, 10, 10}, {10, 10, 11}, {10, 11, 10},
                                     {10, 11, 11}};
        CHECK(qv_mrope_positions(ids, 14, ig, 1, vg, 2, &h, 2, pos, &delta, &err) == QV_OK);
        CHECK(same(pos, 14, want));
        /* largest position 11 -> delta = 12 - 14 */
        CHECK(delta == -2);
    }
    /* merge size 1 and adjacent spans of one kind without text between */
    {
        int32_t ids[4] = {IMG, IMG, IMG, 3};
        const int ig[2][3] = {{1, 1, 2}, {1, 1, 1}};
        const int64_t want[4][3] = {{0, 0, 0}, {0, 0, 1}, {2, 2, 2}, {3, 3, 3}};
        CHECK(qv_mrope_positions(ids, 4, ig, 2, NULL, 0, &h, 1, pos, &delta, &err) == QV_OK);
        CHECK(same(pos, 4, want));
        CHECK(delta == 0);
    }
    /* malformed prompts are refused with a message */
    {
        int32_t ids[6] = {VS, IMG, IMG, IMG, VE, 1};
        const int g4[1][3] = {{1, 4, 4}};   /* needs 4 pads, 3 present */
        err.msg[0] = 0;
        CHECK(qv_mrope_positions(ids, 6, g4, 1, NULL, 0, &h, 2, pos, &delta, &err) == QV_ERR_INVALID);
        CHECK(strstr(err.msg, "cut short") != NULL);
        const int g2[1][3] = {{1, 2, 2}};   /* 1 pad per span: 3 spans, 1 grid */
        CHECK(qv_mrope_positions(ids, 6, g2, 1, NULL, 0, &h, 2, pos, &delta, &err) == QV_ERR_INVALID);
        const int g3[3][3] = {{1, 2, 2}, {1, 2, 2}, {1, 2, 2}};
        CHECK(qv_mrope_positions(ids, 6, g3, 3, NULL, 0, &h, 2, pos, &delta, &err) == QV_OK);
        CHECK(qv_mrope_positions(ids, 6, g3, 3, g3, 1, &h, 2, pos, &delta, &err) == QV_ERR_INVALID); /* unused grid */
        const int odd[3][3] = {{1, 3, 2}, {1, 2, 2}, {1, 2, 2}};
        CHECK(qv_mrope_positions(ids, 6, odd, 3, NULL, 0, &h, 2, pos, &delta, &err) == QV_ERR_INVALID);
        const int zero[3][3] = {{0, 2, 2}, {1, 2, 2}, {1, 2, 2}};
        CHECK(qv_mrope_positions(ids, 6, zero, 3, NULL, 0, &h, 2, pos, &delta, &err) == QV_ERR_INVALID);
        const int big[1][3] = {{1 << 20, 1 << 20, 1 << 20}};  /* span length would overflow int */
        CHECK(qv_mrope_positions(ids, 6, big, 1, NULL, 0, &h, 2, pos, &delta, &err) == QV_ERR_INVALID);
        CHECK(qv_mrope_positions(ids, 0, NULL, 0, NULL, 0, &h, 2, pos, &delta, &err) == QV_ERR_INVALID);
    }
    return test_done();
}
