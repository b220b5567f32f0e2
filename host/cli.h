/* The ember command line: the subcommands that live outside host/cli.c. */
#ifndef EMBER_CLI_H
#define EMBER_CLI_H

#include <stdio.h>

#include "ember.h"

/* `ember embed` (similarity = 0) and `ember similarity` (1), host/cli_embed.c: argv[1] is the
 * subcommand. Returns the exit code: 0, 1 (failure), 2 (usage). */
int ember_cli_embed(int argc, char **argv, int similarity);

/* Print a text as a table label of `width` columns on stdout: cut with "..." when longer,
 * padded with spaces, control characters (C0, DEL, C1) and bidirectional controls shown as
 * \xHH / \uHHHH escapes instead of reaching the terminal. */
void ember_cli_print_label(const char *s, int width);
/* `s` with the same escapes (and \xHH for bytes that are not UTF-8), unpadded. */
void ember_cli_print_escaped(FILE *f, const char *s);
/* "ember: <what>: <status>" and ember_last_error() (escaped) on stderr; returns 1. */
int ember_cli_fail(const char *what, ember_status st);

#endif
