/* Reading model files without blocking, and writing output files through symlinks and devices
 * (weights/file.h). */
#define _POSIX_C_SOURCE 200809L

#include "weights/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/error.h"

#define JSON_MAX_BYTES (64u << 20)
#define MAX_LINKS 40 /* Linux's limit on symlinks followed in one lookup */

static const char *errno_text(int e, char *buf, size_t n) {
    if (strerror_r(e, buf, n) != 0) snprintf(buf, n, "errno %d", e);
    return buf;
}

static const char *kind_of(mode_t m) {
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

static ember_status not_regular(const char *path, mode_t m) {
    return ember_fail(EMBER_ERR_IO, "%s: not a regular file (%s)", path, kind_of(m));
}

static ember_status cannot_open(const char *path, int e) {
    char eb[128];
    return ember_fail(EMBER_ERR_IO, "%s: cannot open: %s", path, errno_text(e, eb, sizeof eb));
}

ember_status ember_file_probe(const char *path, int *present) {
    *present = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return EMBER_OK;
        return cannot_open(path, errno);
    }
    if (!S_ISREG(sb.st_mode)) return not_regular(path, sb.st_mode);
    *present = 1;
    return EMBER_OK;
}

ember_status ember_file_open(const char *path, int *fd, uint64_t *size) {
    *fd = -1;
    *size = 0;
    struct stat sb;
    /* stat first: a device is never opened (opening some has side effects); O_NONBLOCK for a
     * FIFO swapped in between */
    if (stat(path, &sb) != 0) return cannot_open(path, errno);
    if (!S_ISREG(sb.st_mode)) return not_regular(path, sb.st_mode);
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (f < 0) return cannot_open(path, errno);
    if (fstat(f, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(f);
        return S_ISREG(sb.st_mode) ? cannot_open(path, e) : not_regular(path, sb.st_mode);
    }
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return EMBER_OK;
}

ember_status ember_file_read(const char *path, size_t limit, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    EMBER_TRY(ember_file_open(path, &fd, &size));
    if (size > limit) {
        close(fd);
        return ember_fail(EMBER_ERR_FORMAT, "%s: %llu bytes, more than the %zu MiB limit", path,
                          (unsigned long long)size, limit >> 20);
    }
    const size_t n = (size_t)size;
    char *b = malloc(n + 1);
    if (!b) {
        close(fd);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    int e = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            e = r < 0 ? errno : 0;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        char eb[128];
        free(b);
        return ember_fail(EMBER_ERR_IO, "%s: read %zu of %zu bytes%s%s", path, got, n,
                          e ? ": " : " (the file shrank)", e ? errno_text(e, eb, sizeof eb) : "");
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return EMBER_OK;
}

ember_status ember_json_read(const char *path, size_t flags, json_t **out) {
    *out = NULL;
    char *buf;
    size_t len;
    EMBER_TRY(ember_file_read(path, JSON_MAX_BYTES, &buf, &len));
    json_error_t err;
    *out = json_loadb(buf, len, flags, &err);
    free(buf);
    if (!*out)
        return ember_fail(EMBER_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", path,
                          err.line, err.column, err.text);
    return EMBER_OK;
}

int ember_json_truthy(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_TRUE: return 1;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0.0;
    case JSON_STRING: return json_string_length(v) != 0;
    case JSON_ARRAY: return json_array_size(v) != 0;
    case JSON_OBJECT: return json_object_size(v) != 0;
    default: return 0; /* false, null */
    }
}

/* ---- output ---------------------------------------------------------------------------------- */

static atomic_uint g_tmp_counter;

/* The path a chain of symlinks starting at `path` ends at (malloc'd), with lstat of it in *sb
 * (*exists = 0 when nothing is there). *magic = 1 when the chain passes through /proc (e.g.
 * /dev/stdout -> /proc/self/fd/1): those links are the kernel's to follow, not paths. */
static ember_status resolve(const char *path, char **out, struct stat *sb, int *exists, int *magic) {
    char eb[128];
    char *cur = strdup(path);
    *out = NULL;
    *exists = *magic = 0;
    for (int hop = 0; cur; hop++) {
        if (strncmp(cur, "/proc/", 6) == 0) *magic = 1;
        if (lstat(cur, sb) != 0) {
            if (errno == ENOENT) {
                *out = cur;
                return EMBER_OK;
            }
            ember_status st = ember_fail(EMBER_ERR_IO, "%s: cannot write '%s': %s", path, cur,
                                         errno_text(errno, eb, sizeof eb));
            free(cur);
            return st;
        }
        if (!S_ISLNK(sb->st_mode) || *magic) {
            *exists = 1;
            *out = cur;
            return EMBER_OK;
        }
        char link[4096];
        ssize_t n = hop < MAX_LINKS ? readlink(cur, link, sizeof link - 1) : -1;
        if (n < 0) {
            ember_status st = ember_fail(EMBER_ERR_IO, "%s: cannot follow the symlink '%s': %s",
                                         path, cur,
                                         hop < MAX_LINKS ? errno_text(errno, eb, sizeof eb)
                                                         : "too many levels of symbolic links");
            free(cur);
            return st;
        }
        link[n] = '\0';
        const char *slash = strrchr(cur, '/');
        const size_t dir = link[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = malloc(dir + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, dir);
            memcpy(next + dir, link, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
}

ember_status ember_out_open(const char *path, ember_out *o) {
    char eb[128];
    memset(o, 0, sizeof *o);
    o->fd = -1;
    struct stat sb;
    int exists, magic;
    EMBER_TRY(resolve(path, &o->target, &sb, &exists, &magic));
    struct stat final;
    const int direct = magic || (stat(path, &final) == 0 && !S_ISREG(final.st_mode));
    if (direct || (exists && !S_ISREG(sb.st_mode))) {
        const char *p = magic ? path : o->target;
        if (stat(p, &final) == 0 && S_ISDIR(final.st_mode)) {
            ember_status st = ember_fail(EMBER_ERR_IO, "%s: is a directory", path);
            ember_out_close(o, 0);
            return st;
        }
        /* a device, FIFO, socket, or anything behind /proc: write in place. A FIFO waits for its
         * reader here, as any writer does. */
        o->fd = open(p, O_WRONLY | O_CLOEXEC | O_NOCTTY | (magic ? O_APPEND : 0));
        if (o->fd < 0) {
            ember_status st = ember_fail(EMBER_ERR_IO, "%s: cannot open for writing: %s", path,
                                         errno_text(errno, eb, sizeof eb));
            ember_out_close(o, 0);
            return st;
        }
        return EMBER_OK;
    }
    /* a regular file or nothing yet: a temporary file in the same directory (rename() is then
     * atomic); 0666 lets the umask apply as for a plain create */
    const size_t n = strlen(o->target) + 48;
    o->tmp = malloc(n);
    if (!o->tmp) {
        ember_out_close(o, 0);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    for (int attempt = 0; attempt < 64 && o->fd < 0; attempt++) {
        snprintf(o->tmp, n, "%s.tmp-%ld-%u", o->target, (long)getpid(),
                 atomic_fetch_add(&g_tmp_counter, 1));
        o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (o->fd < 0 && errno != EEXIST) break;
    }
    if (o->fd < 0) {
        ember_status st = ember_fail(EMBER_ERR_IO, "%s: cannot create the temporary file '%s': %s",
                                     path, o->tmp, errno_text(errno, eb, sizeof eb));
        free(o->tmp);
        o->tmp = NULL; /* nothing to remove */
        ember_out_close(o, 0);
        return st;
    }
    if (exists) (void)fchmod(o->fd, sb.st_mode & 07777); /* the replaced file's permissions */
    return EMBER_OK;
}

ember_status ember_out_close(ember_out *o, int keep) {
    char eb[128];
    int ok = keep, e = 0;
    if (o->fd >= 0) {
        if (ok && o->tmp && fsync(o->fd) != 0) ok = 0, e = errno;
        if (close(o->fd) != 0 && ok) ok = 0, e = errno;
    }
    if (ok && o->tmp && rename(o->tmp, o->target) != 0) ok = 0, e = errno;
    if (o->tmp && !ok) unlink(o->tmp);
    ember_status st = EMBER_OK;
    if (keep && !ok)
        st = ember_fail(EMBER_ERR_IO, "%s: writing failed: %s", o->target ? o->target : "(output)",
                        errno_text(e, eb, sizeof eb));
    free(o->tmp);
    free(o->target);
    memset(o, 0, sizeof *o);
    o->fd = -1;
    return st;
}
