/* libFuzzer target: the safetensors reader on a whole file in memory (ember_st_open_memory,
 * the same validation as ember_st_open). Input: the file's bytes.
 *
 * Checks: a status and a message on rejection, *out NULL then; on acceptance every tensor
 * lies inside the input, its bytes match shape x dtype size, tensors tile the data buffer,
 * lookups by name find it, conversions to f32/i32 read only its bytes; and the writer,
 * fed the parsed tensors, produces a file the reader accepts with the same tensors. */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"
#include "weights/safetensors.h"

#define MAX_CONVERT_BYTES (1u << 20) /* convert tensors up to 1 MB (the input is smaller) */

static void check_tensor(const ember_st_file *f, const ember_st_tensor *t, const uint8_t *data,
                         size_t size) {
    const uint8_t *p = t->data;
    FUZZ_CHECK(t->name && t->name[0], "tensor without a name");
    FUZZ_CHECK(p >= data && t->nbytes <= size && (size_t)(p - data) <= size - t->nbytes,
               "tensor '%s' [%zu bytes] lies outside the input", t->name, t->nbytes);
    FUZZ_CHECK(t->file_offset == (uint64_t)(p - data), "tensor '%s': file_offset disagrees", t->name);
    int64_t n = ember_st_numel(t);
    FUZZ_CHECK(n >= 0 && (uint64_t)n * ember_st_dtype_size(t->dtype) == t->nbytes,
               "tensor '%s': numel %lld x size != %zu bytes", t->name, (long long)n, t->nbytes);
    FUZZ_CHECK(ember_st_find(f, t->name) == t, "ember_st_find('%s') misses", t->name);
    if (t->nbytes > MAX_CONVERT_BYTES) return;
    /* exactly sized destinations: ASan catches any write past numel */
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    int32_t *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    FUZZ_CHECK(x && y, "out of memory");
    fuzz_check_status(ember_st_to_f32(t, x), "ember_st_to_f32");
    fuzz_check_status(ember_st_to_i32(t, y), "ember_st_to_i32");
    free(x);
    free(y);
}

/* Write the parsed tensors (with the metadata keys) and read them back. */
static void check_round_trip(const ember_st_file *f) {
    static char path[128];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/ember_fuzz_st_%ld.safetensors", dir, (long)getpid());
    }
    size_t n = ember_st_count(f);
    ember_st_tensor *ts = malloc((n ? n : 1) * sizeof *ts);
    FUZZ_CHECK(ts, "out of memory");
    for (size_t i = 0; i < n; i++) ts[i] = *ember_st_at(f, i);
    ember_status st = ember_st_write(path, ts, n, NULL, NULL, 0);
    fuzz_check_status(st, "ember_st_write");
    /* The reader accepts names the writer refuses ("__metadata__" cannot be a tensor in a
     * valid file anyway); anything else the writer rejects is a disagreement. */
    FUZZ_CHECK(st == EMBER_OK, "writer rejects what the reader accepted: %s", ember_last_error());
    ember_st_file *g = NULL;
    st = ember_st_open(path, &g);
    FUZZ_CHECK(st == EMBER_OK, "reader rejects the writer's file: %s", ember_last_error());
    FUZZ_CHECK(ember_st_count(g) == n, "round trip: %zu tensors became %zu", n, ember_st_count(g));
    for (size_t i = 0; i < n; i++) {
        const ember_st_tensor *a = ember_st_at(f, i), *b = ember_st_at(g, i);
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim &&
                       memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0 &&
                       a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0,
                   "round trip changed tensor %zu '%s'", i, a->name);
    }
    ember_st_close(g);
    unlink(path);
    free(ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ember_st_file *f = (ember_st_file *)&size; /* poison: must come back NULL on failure */
    ember_status st = ember_st_open_memory(data, size, "fuzz.safetensors", &f);
    fuzz_check_status(st, "ember_st_open_memory");
    if (st != EMBER_OK) {
        FUZZ_CHECK(f == NULL, "*out not NULL after failure");
        return 0;
    }
    size_t n = ember_st_count(f);
    uint64_t data_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const ember_st_tensor *t = ember_st_at(f, i);
        check_tensor(f, t, data, size);
        data_bytes += t->nbytes;
    }
    FUZZ_CHECK(ember_st_at(f, n) == NULL, "ember_st_at past the end");
    /* tiling: the tensors' bytes are the whole data buffer, which ends at end of input */
    uint64_t header = 0;
    for (int i = 0; i < 8; i++) header |= (uint64_t)data[i] << (8 * i);
    FUZZ_CHECK(8 + header + data_bytes == size, "tensors cover %llu bytes of a %zu-byte data buffer",
               (unsigned long long)data_bytes, size - 8 - (size_t)header);
    (void)ember_st_metadata(f, "format");
    (void)ember_st_find(f, "");
    check_round_trip(f);
    ember_st_close(f);
    return 0;
}
