/* cmd_subtitles.c — qv subtitles (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_subtitles(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'subtitles' is not implemented yet");
}
