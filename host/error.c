#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EMBER_ERRMSG_MAX 1024

static _Thread_local char g_msg[EMBER_ERRMSG_MAX];

ember_status ember_fail(ember_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return st;
}

ember_status ember_fail_context(ember_status st, const char *fmt, ...) {
    char prefix[EMBER_ERRMSG_MAX];
    char old[EMBER_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    snprintf(g_msg, sizeof g_msg, "%.500s: %.500s", prefix, old);
    return st;
}

void ember_clear_error(void) { g_msg[0] = '\0'; }

const char *ember_last_error(void) { return g_msg; }

const char *ember_status_string(ember_status status) {
    switch (status) {
    case EMBER_OK: return "EMBER_OK: success";
    case EMBER_ERR_INVALID_ARGUMENT: return "EMBER_ERR_INVALID_ARGUMENT: invalid argument";
    case EMBER_ERR_IO: return "EMBER_ERR_IO: file missing or unreadable";
    case EMBER_ERR_FORMAT: return "EMBER_ERR_FORMAT: corrupt or malformed file";
    case EMBER_ERR_UNSUPPORTED: return "EMBER_ERR_UNSUPPORTED: unsupported feature";
    case EMBER_ERR_MISSING_TENSOR: return "EMBER_ERR_MISSING_TENSOR: checkpoint tensor missing";
    case EMBER_ERR_SHAPE: return "EMBER_ERR_SHAPE: tensor shape mismatch";
    case EMBER_ERR_CONFIG: return "EMBER_ERR_CONFIG: invalid config.json value";
    case EMBER_ERR_OUT_OF_RANGE: return "EMBER_ERR_OUT_OF_RANGE: index outside its table";
    case EMBER_ERR_CAPACITY: return "EMBER_ERR_CAPACITY: batch exceeds reserved workspace";
    case EMBER_ERR_OUT_OF_MEMORY: return "EMBER_ERR_OUT_OF_MEMORY: allocation failed";
    case EMBER_ERR_NO_DEVICE: return "EMBER_ERR_NO_DEVICE: no CUDA device available";
    case EMBER_ERR_CUDA: return "EMBER_ERR_CUDA: CUDA call failed";
    case EMBER_ERR_DEVICE_LOST: return "EMBER_ERR_DEVICE_LOST: CUDA context poisoned";
    case EMBER_ERR_INTERNAL: return "EMBER_ERR_INTERNAL: internal error";
    }
    return "EMBER_ERR_UNKNOWN: unknown status";
}
