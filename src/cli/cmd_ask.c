/* cmd_ask.c — qv ask (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_ask(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'ask' is not implemented yet");
}
