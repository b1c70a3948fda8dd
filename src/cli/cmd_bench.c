/* cmd_bench.c — qv bench (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_bench(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'bench' is not implemented yet");
}
