/* cmd_detokenize.c — qv detokenize (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_detokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'detokenize' is not implemented yet");
}
