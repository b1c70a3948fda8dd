/* cmd_summarize.c — qv summarize (placeholder until its issue lands). */
#include "cli.h"

int qv_cmd_summarize(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("'summarize' is not implemented yet");
}
