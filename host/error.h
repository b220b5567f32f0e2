/* Thread-local last-error message and the checking helpers used across the library. */
#ifndef EMBER_ERROR_H
#define EMBER_ERROR_H

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EMBER_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EMBER_PRINTF(a, b)
#endif

/* Record `st` with a formatted message for ember_last_error(); returns `st`. */
ember_status ember_fail(ember_status st, const char *fmt, ...) EMBER_PRINTF(2, 3);

/* Prefix the current message with more context ("loading model.safetensors: ..."). */
ember_status ember_fail_context(ember_status st, const char *fmt, ...) EMBER_PRINTF(2, 3);

void ember_clear_error(void);

#define EMBER_TRY(expr)                      \
    do {                                     \
        ember_status st_try_ = (expr);       \
        if (st_try_ != EMBER_OK) return st_try_; \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
