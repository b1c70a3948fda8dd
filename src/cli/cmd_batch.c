/* cmd_batch.c — qv batch (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_batch(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'batch' is not implemented yet");
}
