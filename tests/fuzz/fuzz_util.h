/* Shared by the libFuzzer targets: an always-on check that aborts (libFuzzer then saves the
 * input as a crash), and the contract every failing ember call must keep. */
#ifndef EMBER_FUZZ_UTIL_H
#define EMBER_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "ember.h"

#define FUZZ_CHECK(cond, ...)                                                       \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                           \
            fprintf(stderr, "\n");                                                  \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* A status is one of the enum's values, and a failure says why. */
static inline void fuzz_check_status(ember_status st, const char *call) {
    FUZZ_CHECK(st >= EMBER_OK && st <= EMBER_ERR_INTERNAL, "%s returned %d, not an ember_status",
               call, (int)st);
    FUZZ_CHECK(st != EMBER_ERR_INTERNAL, "%s: internal error: %s", call, ember_last_error());
    if (st != EMBER_OK)
        FUZZ_CHECK(ember_last_error()[0] != '\0', "%s failed with %s but an empty message", call,
                   ember_status_string(st));
}

#endif
