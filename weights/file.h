/* Files ember reads from a model directory, and files it writes.
 *
 * Reading: every file is checked to be a regular file (after symlinks) before it is opened, and
 * opened with O_NONBLOCK, so that a FIFO or a device in place of config.json, vocab.txt or a
 * shard is an error naming it instead of an open() that waits for a writer forever. A file that
 * exists but is not a regular file is an error, never treated as absent.
 *
 * Writing (ember_out_*): a regular file, or a path that does not exist yet, is written to a
 * temporary file beside it and renamed over it once complete, so that a failure leaves the old
 * file or nothing. A symlink is written through: the file it points to is replaced the same way
 * (the symlink stays). A FIFO, a device or another non-regular file is written directly, in
 * place (`--output /dev/stdout` writes to stdout, `/dev/null` stays the device). */
#ifndef EMBER_FILE_H
#define EMBER_FILE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *present = 1 for a regular file, 0 when nothing is there (ENOENT, ENOTDIR, a dangling
 * symlink); anything else (a FIFO, a directory, a symlink loop, no permission) is EMBER_ERR_IO
 * naming the path and what it is. */
ember_status ember_file_probe(const char *path, int *present);

/* Open a regular file read-only (see above). *size is its size in bytes. Missing or unreadable:
 * EMBER_ERR_IO ("cannot open: ..."); not a regular file: EMBER_ERR_IO ("not a regular file"). */
ember_status ember_file_open(const char *path, int *fd, uint64_t *size);

/* The whole regular file, NUL-terminated (*len excludes the NUL; free *buf). More than `limit`
 * bytes: EMBER_ERR_FORMAT. */
ember_status ember_file_read(const char *path, size_t limit, char **buf, size_t *len);

/* A JSON file of at most 64 MiB read with ember_file_read and parsed with Jansson `flags`.
 * Malformed JSON (a duplicate key under JSON_REJECT_DUPLICATES included): EMBER_ERR_FORMAT naming
 * the file, line and column. */
ember_status ember_json_read(const char *path, size_t flags, json_t **out);

/* Python's truth value of a JSON value (how HF and sentence-transformers test a flag read
 * from JSON: `if config.is_decoder:`): false, null, 0, 0.0, "", [] and {} are false. */
int ember_json_truthy(const json_t *v);

/* An output file being written. */
typedef struct ember_out {
    int fd;       /* write here                                                      */
    char *tmp;    /* the temporary file renamed over `target` at close; NULL: direct */
    char *target; /* the file written (a symlink's target), for messages             */
} ember_out;

/* Start writing `path` (see above). A directory, or a path whose folder does not exist, is
 * EMBER_ERR_IO naming it. */
ember_status ember_out_open(const char *path, ember_out *o);
/* keep: sync and rename the temporary file over the target (or just close a direct write);
 * else remove the temporary file. EMBER_ERR_IO when keeping fails (the temporary file is then
 * removed). Frees what ember_out_open allocated. */
ember_status ember_out_close(ember_out *o, int keep);

#ifdef __cplusplus
}
#endif

#endif
