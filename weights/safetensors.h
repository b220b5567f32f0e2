/*
 * safetensors reader and writer. The reader mmaps the file and validates what the
 * reference implementation validates: 8-byte little-endian header length N with
 * N <= 100 MB and 8+N <= file size; the header is UTF-8 JSON, an object whose keys are
 * unique; "__metadata__", if present, maps strings to strings; every other entry is
 * {"dtype": str, "shape": [int...], "data_offsets": [begin, end]} with a known dtype,
 * non-negative dims, shape x dtype size computed with overflow checks equal to end-begin;
 * tensors sorted by begin tile the data buffer exactly (no gap, no overlap) and the
 * buffer ends exactly at end of file. Anything else is EMBER_ERR_FORMAT with the file,
 * the tensor and the byte offset in ember_last_error().
 */
#ifndef EMBER_SAFETENSORS_H
#define EMBER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ember_st_dtype {
    EMBER_ST_BOOL, EMBER_ST_U8, EMBER_ST_I8, EMBER_ST_I16, EMBER_ST_U16, EMBER_ST_F16,
    EMBER_ST_BF16, EMBER_ST_I32, EMBER_ST_U32, EMBER_ST_F32, EMBER_ST_I64, EMBER_ST_U64,
    EMBER_ST_F64, EMBER_ST_F8_E4M3, EMBER_ST_F8_E5M2,
} ember_st_dtype;

#define EMBER_ST_MAX_DIMS 8

typedef struct ember_st_tensor {
    const char *name;
    ember_st_dtype dtype;
    int ndim;
    int64_t shape[EMBER_ST_MAX_DIMS];
    const void *data;   /* inside the mapping (reader) or caller memory (writer) */
    size_t nbytes;
    uint64_t file_offset; /* absolute offset of data in the file (reader only) */
} ember_st_tensor;

typedef struct ember_st_file ember_st_file;

/* "F32" -> EMBER_ST_F32 etc.; returns -1 for an unknown name. */
int ember_st_dtype_from_name(const char *name);
const char *ember_st_dtype_name(ember_st_dtype dt);
size_t ember_st_dtype_size(ember_st_dtype dt);

/* Open, map and validate. On failure *out is NULL and the error names path and offset. */
ember_status ember_st_open(const char *path, ember_st_file **out);
/* The same validation on a file already in memory (`size` bytes at `data`, which must
 * outlive the returned file: tensor data points into it). `label` stands for the path in
 * errors and ember_st_path ("(memory)" if NULL). */
ember_status ember_st_open_memory(const void *data, size_t size, const char *label,
                                  ember_st_file **out);
void ember_st_close(ember_st_file *f);

const char *ember_st_path(const ember_st_file *f);
size_t ember_st_count(const ember_st_file *f);
const ember_st_tensor *ember_st_at(const ember_st_file *f, size_t i); /* in header order */
const ember_st_tensor *ember_st_find(const ember_st_file *f, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *ember_st_metadata(const ember_st_file *f, const char *key);

/* Element count (product of shape; 1 for a scalar). */
int64_t ember_st_numel(const ember_st_tensor *t);

/* Convert F32/F16/BF16/F64 to f32 (dst holds numel floats). Other dtypes: UNSUPPORTED. */
ember_status ember_st_to_f32(const ember_st_tensor *t, float *dst);
/* Convert I32/I64 (and I16/I8/U8/BOOL) to int32; values outside int32: OUT_OF_RANGE. */
ember_status ember_st_to_i32(const ember_st_tensor *t, int32_t *dst);

/* Write a safetensors file: tensors in the given order, data taken from t[i].data and
 * t[i].nbytes (must equal numel x dtype size), optional metadata pairs (may be NULL). A regular
 * file (or a new path) is written to a temporary file and renamed over it; a symlink is written
 * through to its target; a device or FIFO directly (weights/file.h, ember_out_open). */
ember_status ember_st_write(const char *path, const ember_st_tensor *t, size_t n,
                            const char *const *meta_keys, const char *const *meta_values,
                            size_t n_meta);

/* IEEE half and bfloat16 to float, exact. */
float ember_f16_to_f32(uint16_t h);
float ember_bf16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif

#endif
