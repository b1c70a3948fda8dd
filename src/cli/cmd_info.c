/* cmd_info.c — qv info (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'info' is not implemented yet");
}
