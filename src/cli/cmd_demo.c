/* cmd_demo.c — qv demo (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_demo(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'demo' is not implemented yet");
}
