/* cmd_tokenize.c — qv tokenize (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'tokenize' is not implemented yet");
}
