/* cmd_preprocess.c — qv preprocess (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_preprocess(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'preprocess' is not implemented yet");
}
