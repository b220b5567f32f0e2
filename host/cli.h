/* The ember command line: the subcommands that live outside host/cli.c. */
#ifndef EMBER_CLI_H
#define EMBER_CLI_H

/* `ember embed` (similarity = 0) and `ember similarity` (1), host/cli_embed.c: argv[1] is the
 * subcommand. Returns the exit code: 0, 1 (failure), 2 (usage). */
int ember_cli_embed(int argc, char **argv, int similarity);

#endif
