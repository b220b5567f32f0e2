/* The command line's parser and help, driven by the tables of host/cli.h: every subcommand
 * parses its options the same way, says which option is wrong and why, and prints its own
 * help. Options may come anywhere (GNU style), as `--name value` or `--name=value`; "--" ends
 * them; "-" alone is an operand. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "host/cli.h"

const cli_choice ember_cli_dtypes[] = {
    {"f32", EMBER_DTYPE_F32}, {"f16", EMBER_DTYPE_F16}, {"bf16", EMBER_DTYPE_BF16}, {NULL, 0}};
static const cli_choice k_backends[] = {{"cpu", EMBER_BACKEND_CPU},
                                        {"reference", EMBER_BACKEND_REFERENCE},
                                        {"cuda", EMBER_BACKEND_CUDA},
                                        {NULL, 0}};

#define MODEL_FIELD(f) offsetof(cli_model_args, f)
const cli_opt ember_cli_model_opts[] = {
    {"--model", CLI_STRING, MODEL_FIELD(model), "DIR",
     "the model directory: config.json and model.safetensors (or a\nsharded index)", 0, 0, NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};
const cli_opt ember_cli_device_opts[] = {
    {"--backend", CLI_CHOICE, MODEL_FIELD(backend), NULL,
     "default cpu (the fast CPU path); reference: the double-precision\nCPU reference, about ten "
     "times slower", 0, 0, k_backends, 0},
    {"--dtype", CLI_CHOICE, MODEL_FIELD(dtype), NULL, "compute dtype (f16/bf16 need cuda), default f32",
     0, 0, ember_cli_dtypes, 0},
    {"--device", CLI_INT, MODEL_FIELD(device), "N", "CUDA device, default 0", 0, INT_MAX, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};

ember_status ember_cli_load_model(const cli_model_args *a, const char *dir, ember_model **m) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = (ember_backend)a->backend;
    opt.compute_dtype = (ember_dtype)a->dtype;
    opt.device = a->device;
    opt.max_batch = 1;
    opt.max_seq_len = 1;
    return ember_model_load(dir, &opt, m);
}

static const char *choice_name(const cli_choice *c, int value) {
    for (; c->name; c++)
        if (c->value == value) return c->name;
    return "?";
}

const char *ember_cli_dtype_name(int dtype) { return choice_name(ember_cli_dtypes, dtype); }
const char *ember_cli_backend_name(int backend) { return choice_name(k_backends, backend); }

/* ---- help ------------------------------------------------------------------------------- */

#define HELP_COLUMN 27

static void choices_text(const cli_choice *c, char *buf, size_t n) {
    buf[0] = 0;
    for (; c->name; c++) {
        if (buf[0]) strncat(buf, "|", n - strlen(buf) - 1);
        strncat(buf, c->name, n - strlen(buf) - 1);
    }
}

static void print_opt(FILE *f, const cli_opt *o) {
    char left[160], choices[128];
    if (o->kind == CLI_CHOICE) choices_text(o->choices, choices, sizeof choices);
    snprintf(left, sizeof left, "  %s%s%s", o->name, o->kind == CLI_SWITCH ? "" : " ",
             o->kind == CLI_CHOICE ? choices : o->kind == CLI_SWITCH ? "" : o->meta);
    fputs(left, f);
    int col = (int)strlen(left);
    for (const char *h = o->help; *h;) {
        const char *nl = strchr(h, '\n');
        const int len = nl ? (int)(nl - h) : (int)strlen(h);
        if (col >= HELP_COLUMN) {
            fputc('\n', f);
            col = 0;
        }
        fprintf(f, "%*s%.*s\n", HELP_COLUMN - col, "", len, h);
        col = 0;
        h += len + (nl ? 1 : 0);
    }
}

static void print_command_help(const cli_command *c, FILE *f) {
    fprintf(f, "usage: ember %s %s\n\n%s\n\noptions:\n", c->name, c->synopsis, c->summary);
    for (const cli_opt *const *g = c->opts; *g; g++)
        for (const cli_opt *o = *g; o->name; o++) print_opt(f, o);
    fprintf(f, "  -h, --help%*sthis help\n", HELP_COLUMN - 12, "");
    if (c->details) fprintf(f, "\n%s", c->details);
}

static void print_general_help(const cli_command *const *table, FILE *f) {
    fprintf(f, "usage: ember COMMAND [options]\n\nember runs HuggingFace BERT checkpoints (CPU, or "
               "CUDA where built). Commands:\n\n");
    for (const cli_command *const *c = table; *c; c++)
        fprintf(f, "  %-12s %s\n", (*c)->name, (*c)->summary);
    fprintf(f, "  %-12s %s\n\n", "help", "this help, or a command's: ember help COMMAND");
    fprintf(f, "`ember COMMAND --help` lists a command's options. `ember --version` prints the "
               "version.\n");
}

static const cli_command *find_command(const cli_command *const *table, const char *name) {
    for (const cli_command *const *c = table; *c; c++)
        if (!strcmp((*c)->name, name)) return *c;
    return NULL;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static const cli_opt *find_opt(const cli_command *c, const char *name, size_t len) {
    for (const cli_opt *const *g = c->opts; *g; g++)
        for (const cli_opt *o = *g; o->name; o++)
            if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

static int usage_error(const cli_command *c) {
    fprintf(stderr, "  (see `ember %s --help`)\n", c->name);
    return -1;
}

/* Store `v` for `o` into args; 0 and a message naming the option when it is not a valid value. */
static int store(const cli_command *c, const cli_opt *o, const char *v, void *args) {
    char *field = (char *)args + o->offset;
    if (o->kind == CLI_STRING) {
        memcpy(field, &v, sizeof v);
        return 1;
    }
    if (o->kind == CLI_INT) {
        char *end = NULL;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        const int digits = (v[0] >= '0' && v[0] <= '9') || (v[0] == '-' && v[1] >= '0' && v[1] <= '9');
        if (!digits || *end || errno || x < o->lo || x > o->hi) {
            fprintf(stderr, "ember %s: %s needs an integer in [%d, %d], not '%s'\n", c->name,
                    o->name, o->lo, o->hi, v);
            return 0;
        }
        const int i = (int)x;
        memcpy(field, &i, sizeof i);
        return 1;
    }
    for (const cli_choice *ch = o->choices; ch->name; ch++)
        if (!strcmp(ch->name, v)) {
            memcpy(field, &ch->value, sizeof ch->value);
            return 1;
        }
    char choices[128];
    choices_text(o->choices, choices, sizeof choices);
    fprintf(stderr, "ember %s: %s must be one of %s, not '%s'\n", c->name, o->name, choices, v);
    return 0;
}

/* 1: run; 0: --help printed; -1: a usage error printed. operands: argv's, n_operands of them. */
static int parse(const cli_command *const *table, const cli_command *c, int argc, char **argv,
                 void *args, char **operands, int *n_operands) {
    int only_operands = 0;
    *n_operands = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (only_operands || a[0] != '-' || !a[1]) {
            if (!c->operands) {
                fprintf(stderr, "ember %s: unexpected argument '%s'%s\n", c->name, a,
                        i == 2 ? "" : " (options take one value each)");
                return usage_error(c);
            }
            operands[(*n_operands)++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            only_operands = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_command_help(c, stdout);
            return 0;
        }
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        const size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = find_opt(c, a, len);
        if (!o) {
            const cli_command *other = NULL;
            for (const cli_command *const *t = table; *t && !other; t++)
                if (*t != c && find_opt(*t, a, len)) other = *t;
            fprintf(stderr, "ember %s: unknown option '%.*s'", c->name, (int)len, a);
            if (other) fprintf(stderr, " (an option of `ember %s`, not of `ember %s`)", other->name, c->name);
            fputc('\n', stderr);
            return usage_error(c);
        }
        if (o->kind == CLI_SWITCH) {
            if (eq) {
                fprintf(stderr, "ember %s: %s takes no value\n", c->name, o->name);
                return usage_error(c);
            }
            memcpy((char *)args + o->offset, &o->lo, sizeof o->lo);
            continue;
        }
        const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!v) {
            fprintf(stderr, "ember %s: %s needs a value (%s)\n", c->name, o->name,
                    o->meta ? o->meta : "see --help");
            return usage_error(c);
        }
        if (!store(c, o, v, args)) return usage_error(c);
    }
    /* every missing required option, named at once */
    char missing[256] = "";
    int n_missing = 0;
    for (const cli_opt *const *g = c->opts; *g; g++)
        for (const cli_opt *o = *g; o->name; o++) {
            const char *v = NULL;
            if (!o->required || o->kind != CLI_STRING) continue; /* only strings are required */
            memcpy(&v, (char *)args + o->offset, sizeof v);
            if (v) continue;
            n_missing++;
            strncat(missing, *missing ? ", " : "", sizeof missing - strlen(missing) - 1);
            strncat(missing, o->name, sizeof missing - strlen(missing) - 1);
        }
    if (n_missing) {
        char *last = strrchr(missing, ',');
        if (last) { /* "a, b, c" -> "a, b and c" */
            char tail[256];
            snprintf(tail, sizeof tail, " and%s", last + 1);
            *last = 0;
            strncat(missing, tail, sizeof missing - strlen(missing) - 1);
        }
        fprintf(stderr, "ember %s: missing %s\n", c->name, missing);
        return usage_error(c);
    }
    return 1;
}

/* --model names a directory that exists: say so plainly, before any file in it is blamed. */
static int check_model_dir(const cli_command *c, const void *args) {
    for (const cli_opt *const *g = c->opts; *g; g++)
        for (const cli_opt *o = *g; o->name; o++) {
            const char *dir;
            if (strcmp(o->name, "--model") != 0 || o->kind != CLI_STRING) continue;
            memcpy(&dir, (const char *)args + o->offset, sizeof dir);
            struct stat sb;
            if (!dir) continue;
            if (stat(dir, &sb) != 0) {
                fprintf(stderr, "ember %s: the model directory '", c->name);
                ember_cli_print_escaped(stderr, dir);
                fprintf(stderr, "' %s\n", errno == ENOENT ? "does not exist" : strerror(errno));
                return 0;
            }
            if (!S_ISDIR(sb.st_mode)) {
                fprintf(stderr, "ember %s: '", c->name);
                ember_cli_print_escaped(stderr, dir);
                fprintf(stderr, "' is not a directory (--model takes a model directory)\n");
                return 0;
            }
        }
    return 1;
}

int ember_cli_dispatch(const cli_command *const *table, int argc, char **argv) {
    if (argc < 2) { /* `ember` alone: the help, and the status of a command not run */
        print_general_help(table, stdout);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        if (!strcmp(name, "help") && argc > 2) {
            const cli_command *c = find_command(table, argv[2]);
            if (!c) {
                fprintf(stderr, "ember help: no command '%s'\n\n", argv[2]);
                print_general_help(table, stderr);
                return 2;
            }
            print_command_help(c, stdout);
            return 0;
        }
        print_general_help(table, stdout);
        return 0;
    }
    const cli_command *c = find_command(table, name);
    if (!c) {
        if (name[0] == '-')
            fprintf(stderr, "ember: no command given: the first argument, '%s', is an option; a "
                            "command comes first (ember COMMAND [options])\n\n", name);
        else
            fprintf(stderr, "ember: unknown command '%s'\n\n", name);
        print_general_help(table, stderr);
        return 2;
    }
    void *args = calloc(1, c->args_size);
    char **operands = malloc(sizeof(char *) * (size_t)argc);
    if (!args || !operands) {
        free(args);
        free(operands);
        fprintf(stderr, "ember: out of memory\n");
        return 1;
    }
    if (c->init) c->init(args);
    int n_operands = 0;
    int p = parse(table, c, argc, argv, args, operands, &n_operands);
    if (p > 0 && c->check && !c->check(args)) p = usage_error(c);
    int rc = p < 0 ? 2 : 0;
    if (p > 0) rc = check_model_dir(c, args) ? c->run(args, n_operands, operands) : 1;
    free(args);
    free(operands);
    return rc;
}
