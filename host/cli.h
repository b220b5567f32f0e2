/* The ember command line. host/cli.c holds main, the table of subcommands, `forward` and `info`;
 * host/cli_embed.c `embed` and `similarity`; host/cli_classify.c `classify` and `rerank`;
 * host/cli_args.c the argument parser and the help,
 * both driven by the tables below. A new subcommand is a cli_command (its options, its help, a
 * function that runs it) added to the table in cli.c; a new flag is a cli_opt in its group. */
#ifndef EMBER_CLI_H
#define EMBER_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "ember.h"

/* ---- arguments and help (host/cli_args.c) ------------------------------------------------ */

typedef struct cli_choice {
    const char *name; /* NULL ends a list */
    int value;
} cli_choice;

typedef enum cli_kind {
    CLI_STRING, /* the value as given (const char *)                                       */
    CLI_INT,    /* a decimal integer in [lo, hi], nothing after it (int)                   */
    CLI_CHOICE, /* one of `choices` by name; the field gets its value (int)                */
    CLI_SWITCH, /* no value; the field gets `lo` (int)                                     */
} cli_kind;

typedef struct cli_opt {
    const char *name; /* "--device"; NULL ends a group */
    cli_kind kind;
    size_t offset;    /* of the field in the command's argument struct */
    const char *meta; /* the value's name in the help ("N", "DIR"); choices show their names */
    const char *help; /* lines separated by '\n' */
    int lo, hi;
    const cli_choice *choices;
    int required;
} cli_opt;

typedef struct cli_command {
    const char *name;
    const char *summary;        /* one line, for `ember help`                              */
    const char *synopsis;       /* the usage line after "ember NAME "                       */
    const cli_opt *const *opts; /* groups of options (groups are shared), ended by NULL    */
    const char *operands;       /* "TEXT" when the command takes operands, else NULL        */
    const char *details;        /* printed after the options (NULL: nothing)                */
    size_t args_size;           /* its argument struct, zeroed, then init()                 */
    void (*init)(void *args);
    int (*check)(const void *args); /* usage rules beyond the table: 0 = error printed (or NULL) */
    int (*run)(void *args, int n_operands, char **operands); /* returns the exit code      */
} cli_command;

/* Every command that loads a model starts its argument struct with this. */
typedef struct cli_model_args {
    const char *model;
    int backend, dtype, device;
} cli_model_args;

/* --model; --backend, --dtype, --device (into a cli_model_args at offset 0). */
extern const cli_opt ember_cli_model_opts[], ember_cli_device_opts[];
extern const cli_choice ember_cli_dtypes[];

/* Run `ember <argv[1]> ...` from the NULL-ended table: help (`ember`, `ember help [COMMAND]`,
 * `ember COMMAND --help`), parsing, then the command. Exit codes: 0, 1 (the command failed),
 * 2 (usage: no or an unknown subcommand, a bad or missing option, each named). */
int ember_cli_dispatch(const cli_command *const *table, int argc, char **argv);

/* ember_model_load of `dir` on a's backend, dtype and device with the smallest workspace (each
 * command reserves what its batches need). */
ember_status ember_cli_load_model(const cli_model_args *a, const char *dir, ember_model **m);

/* The dtype's and the backend's names, for messages. */
const char *ember_cli_dtype_name(int dtype);
const char *ember_cli_backend_name(int backend);

/* ---- subcommands outside cli.c ---------------------------------------------------------- */

extern const cli_command ember_cli_embed_command, ember_cli_similarity_command;
/* host/cli_classify.c */
extern const cli_command ember_cli_classify_command, ember_cli_rerank_command;

/* ---- output to a terminal (host/cli_embed.c) --------------------------------------------- */

/* Print a text as a table label of `width` columns on stdout: cut with "..." when longer,
 * padded with spaces, control characters (C0, DEL, C1) and bidirectional controls shown as
 * \xHH / \uHHHH escapes instead of reaching the terminal. */
void ember_cli_print_label(const char *s, int width);
/* `s` with the same escapes (and \xHH for bytes that are not UTF-8), unpadded. */
void ember_cli_print_escaped(FILE *f, const char *s);
/* "ember: <what>: <status>" and ember_last_error() (escaped) on stderr; returns 1. */
int ember_cli_fail(const char *what, ember_status st);

/* `ember classify` (rerank = 0) and `ember rerank` (1), host/cli_classify.c; same conventions. */
int ember_cli_classify(int argc, char **argv, int rerank);

#endif
