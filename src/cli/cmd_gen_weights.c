/* cmd_gen_weights.c — qv gen-weights (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_gen_weights(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'gen-weights' is not implemented yet");
}
