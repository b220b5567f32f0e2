/*
 * safetensors reader (mmap + the reference crate's validation) and writer (temp file +
 * rename, through symlinks: weights/file.c). Layout: u64 LE header length N, N bytes of UTF-8
 * JSON, then the data buffer; data_offsets are relative to the data buffer, which starts at
 * file offset 8 + N.
 *
 * The parsed JSON header stays alive with the file: tensor names and metadata strings
 * point into it, so there is one owner and nothing to copy.
 */
#define _POSIX_C_SOURCE 200809L

#include "weights/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "host/error.h"
#include "weights/file.h"

/* Offsets and sizes are u64 in the format; a 64-bit size_t keeps every cast exact. */
_Static_assert(SIZE_MAX >= UINT64_MAX, "ember needs a 64-bit size_t");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; ember assumes a little-endian host"
#endif

#define MAX_HEADER_BYTES 100000000u /* the reference crate's limit */

static const struct {
    const char *name;
    size_t size;
} k_dtypes[] = {
    [EMBER_ST_BOOL] = {"BOOL", 1},       [EMBER_ST_U8] = {"U8", 1},
    [EMBER_ST_I8] = {"I8", 1},           [EMBER_ST_I16] = {"I16", 2},
    [EMBER_ST_U16] = {"U16", 2},         [EMBER_ST_F16] = {"F16", 2},
    [EMBER_ST_BF16] = {"BF16", 2},       [EMBER_ST_I32] = {"I32", 4},
    [EMBER_ST_U32] = {"U32", 4},         [EMBER_ST_F32] = {"F32", 4},
    [EMBER_ST_I64] = {"I64", 8},         [EMBER_ST_U64] = {"U64", 8},
    [EMBER_ST_F64] = {"F64", 8},         [EMBER_ST_F8_E4M3] = {"F8_E4M3", 1},
    [EMBER_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

struct ember_st_file {
    char *path;
    void *map; /* the whole file, read-only */
    size_t map_size;
    int borrowed; /* map is the caller's memory (ember_st_open_memory): not unmapped */
    json_t *header;
    json_t *metadata; /* borrowed from header; NULL when absent */
    size_t count;
    ember_st_tensor *tensors;          /* header order */
    const ember_st_tensor **by_name;   /* sorted by name, for ember_st_find */
};

int ember_st_dtype_from_name(const char *name) {
    for (int i = 0; name && i < N_DTYPES; i++)
        if (strcmp(name, k_dtypes[i].name) == 0) return i;
    return -1;
}

const char *ember_st_dtype_name(ember_st_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? k_dtypes[dt].name : "UNKNOWN";
}

size_t ember_st_dtype_size(ember_st_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? k_dtypes[dt].size : 0;
}

static const char *errno_text(int e, char *buf, size_t n) {
    if (strerror_r(e, buf, n) != 0) snprintf(buf, n, "errno %d", e);
    return buf;
}

/* Product of dims folded left with an overflow check (as the reference does, so
 * [huge, huge, 0] overflows but [0, huge, huge] is 0). -1 on overflow or a negative dim. */
static int64_t shape_numel(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] != 0 && n > INT64_MAX / shape[i])) return -1;
        n *= shape[i];
    }
    return n;
}

int64_t ember_st_numel(const ember_st_tensor *t) {
    if (!t || t->ndim < 0 || t->ndim > EMBER_ST_MAX_DIMS) return -1;
    return shape_numel(t->shape, t->ndim);
}

/* ---- reader ------------------------------------------------------------------------ */

static ember_status too_short(const char *path, size_t size) {
    return ember_fail(EMBER_ERR_FORMAT,
                      "%s: not a safetensors file: it is %zu bytes, too short for the 8-byte "
                      "header length at offset 0",
                      path, size);
}

static ember_status map_file(ember_st_file *f) {
    char eb[128];
    /* non-blocking and checked to be a regular file (weights/file.c): a FIFO, or a symlink to
     * one, in place of a shard fails as "not a regular file" instead of blocking the open */
    int fd;
    uint64_t size64;
    EMBER_TRY(ember_file_open(f->path, &fd, &size64));
    size_t size = (size_t)size64;
    if (size < 8) {
        close(fd);
        return too_short(f->path, size);
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED) /* ENOMEM: no address space left (RLIMIT_AS, a 32-bit process) */
        return ember_fail(e == ENOMEM ? EMBER_ERR_OUT_OF_MEMORY : EMBER_ERR_IO,
                          "%s: cannot mmap %zu bytes: %s", f->path, size,
                          errno_text(e, eb, sizeof eb));
    f->map = p;
    f->map_size = size;
    return EMBER_OK;
}

static ember_status check_metadata(const ember_st_file *f, json_t *meta) {
    if (!json_is_object(meta))
        return ember_fail(EMBER_ERR_FORMAT, "%s: __metadata__ is not a JSON object (string -> string map)",
                          f->path);
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: __metadata__ key '%s' has a non-string value (string -> string map required)",
                              f->path, key);
    }
    return EMBER_OK;
}

/* A non-negative JSON integer, or -1. */
static int64_t json_count(const json_t *j) {
    if (!json_is_integer(j)) return -1;
    json_int_t v = json_integer_value(j);
    return v < 0 ? -1 : (int64_t)v;
}

/* Validate one header entry {"dtype", "shape", "data_offsets"} and fill `t` (data and
 * file_offset are final; tiling is checked later, across all tensors). */
static ember_status parse_entry(const ember_st_file *f, uint64_t data_start, const char *name,
                                json_t *v, ember_st_tensor *t) {
    const char *p = f->path;
    if (name[0] == '\0')
        return ember_fail(EMBER_ERR_FORMAT, "%s: empty tensor name in the header (file bytes 8..%" PRIu64 ")",
                          p, data_start);
    if (!json_is_object(v))
        return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object", p, name);
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 && strcmp(key, "data_offsets") != 0)
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: tensor '%s': unexpected key '%s' (allowed: dtype, shape, data_offsets)",
                              p, name, key);
    }
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo)
        return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': missing '%s'", p, name,
                          !jd ? "dtype" : !js ? "shape" : "data_offsets");

    int dt = ember_st_dtype_from_name(json_string_value(jd));
    if (dt < 0)
        return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", p, name,
                          json_is_string(jd) ? json_string_value(jd) : "(not a string)");
    t->name = name;
    t->dtype = (ember_st_dtype)dt;

    if (!json_is_array(js))
        return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': shape is not an array", p, name);
    if (json_array_size(js) > EMBER_ST_MAX_DIMS)
        return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': shape has %zu dims, more than %d", p, name,
                          json_array_size(js), EMBER_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        t->shape[i] = json_count(d);
        if (t->shape[i] < 0) {
            if (json_is_integer(d))
                return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': shape[%d] = %" JSON_INTEGER_FORMAT
                                  " is negative", p, name, i, json_integer_value(d));
            return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not an integer", p, name, i);
        }
    }

    int64_t b = -1, e = -1;
    if (json_is_array(jo) && json_array_size(jo) == 2) {
        b = json_count(json_array_get(jo, 0));
        e = json_count(json_array_get(jo, 1));
    }
    if (b < 0 || e < 0)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers", p, name);
    if (b > e)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] has begin > end "
                          "(file offset %" PRIu64 ")", p, name, b, e, data_start + (uint64_t)b);

    int64_t numel = shape_numel(t->shape, t->ndim);
    size_t es = k_dtypes[dt].size;
    if (numel < 0)
        return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': shape product overflows 64 bits", p, name);
    if (numel > INT64_MAX / (int64_t)es)
        return ember_fail(EMBER_ERR_FORMAT, "%s: tensor '%s': %" PRId64 " elements x %zu bytes overflows 64 bits",
                          p, name, numel, es);
    if (numel * (int64_t)es != e - b)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: tensor '%s': shape holds %" PRId64 " %s elements = %" PRId64 " bytes but "
                          "data_offsets [%" PRId64 ", %" PRId64 "] span %" PRId64 " bytes (file offset %" PRIu64 ")",
                          p, name, numel, k_dtypes[dt].name, numel * (int64_t)es, b, e, e - b,
                          data_start + (uint64_t)b);
    t->nbytes = (size_t)(e - b);
    t->file_offset = data_start + (uint64_t)b;
    t->data = (const unsigned char *)f->map + t->file_offset;
    return EMBER_OK;
}

/* Byte offset of a number spelled -0 in JSON text that parsed (outside strings), or -1. */
static long find_negative_zero(const char *js, size_t n) {
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = js[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '-' && i + 1 < n && js[i + 1] == '0') {
            const char next = i + 2 < n ? js[i + 2] : ' ';
            /* -0.0 and -0e0 are reals, refused as non-integers anyway */
            if (next != '.' && next != 'e' && next != 'E') return (long)i;
        }
    }
    return -1;
}

static int cmp_by_offset(const void *a, const void *b) {
    const ember_st_tensor *x = *(const ember_st_tensor *const *)a, *y = *(const ember_st_tensor *const *)b;
    if (x->file_offset != y->file_offset) return x->file_offset < y->file_offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return x < y ? -1 : x > y; /* header order breaks ties: deterministic messages */
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const ember_st_tensor *const *)a)->name, (*(const ember_st_tensor *const *)b)->name);
}

/* Sorted by (begin, end), the tensors must tile [0, file size - 8 - N) exactly. Leaves
 * f->by_name holding the tensors in some order (the caller re-sorts it by name). */
static ember_status check_tiling(ember_st_file *f, uint64_t data_start) {
    const ember_st_tensor **s = f->by_name;
    for (size_t i = 0; i < f->count; i++) s[i] = &f->tensors[i];
    qsort(s, f->count, sizeof *s, cmp_by_offset);

    uint64_t end = 0; /* relative to the data buffer */
    const ember_st_tensor *prev = NULL;
    for (size_t i = 0; i < f->count; i++) {
        uint64_t b = s[i]->file_offset - data_start, e = b + s[i]->nbytes;
        if (b > end)
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: gap of %" PRIu64 " bytes before tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64
                              "]: previous data ends at byte %" PRIu64 " of the data buffer (file offset %" PRIu64 ")",
                              f->path, b - end, s[i]->name, b, e, end, data_start + end);
        if (b < end)
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor '%s' ending "
                              "at byte %" PRIu64 " of the data buffer (file offset %" PRIu64 ")",
                              f->path, s[i]->name, b, e, prev->name, end, data_start + end);
        end = e;
        prev = s[i];
    }
    uint64_t have = f->map_size - data_start;
    if (end > have)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: truncated: tensor '%s' ends at byte %" PRIu64 " of the data buffer (file offset %"
                          PRIu64 ") but the file is %zu bytes (data buffer of %" PRIu64 " bytes)",
                          f->path, prev->name, end, data_start + end, f->map_size, have);
    if (end < have)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: %" PRIu64 " trailing bytes after the last tensor: data ends at file offset %"
                          PRIu64 " but the file is %zu bytes", f->path, have - end, data_start + end, f->map_size);
    return EMBER_OK;
}

static ember_status parse_header(ember_st_file *f) {
    const unsigned char *base = f->map;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)base[i] << (8 * i);
    if (n > MAX_HEADER_BYTES)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: not a safetensors file: header length %" PRIu64 " (file bytes 0..7) "
                          "exceeds the limit of %u bytes",
                          f->path, n, MAX_HEADER_BYTES);
    if (n > f->map_size - 8)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: not a safetensors file: header length %" PRIu64 " runs past the end of "
                          "the file: the header would end at file offset %" PRIu64 " but the file is "
                          "%zu bytes",
                          f->path, n, 8 + n, f->map_size);
    uint64_t data_start = 8 + n;

    json_error_t je;
    f->header = json_loadb((const char *)base + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!f->header) {
        const char *what = "is not valid JSON";
        if (json_error_code(&je) == json_error_invalid_utf8) what = "is not valid UTF-8";
        if (json_error_code(&je) == json_error_duplicate_key) what = "has a duplicate name";
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: not a safetensors file: header %s at header byte %d (file offset %" PRIu64
                          "): %s",
                          f->path, what, je.position, 8 + (uint64_t)(je.position > 0 ? je.position : 0),
                          je.text);
    }
    if (!json_is_object(f->header))
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: not a safetensors file: header (file bytes 8..%" PRIu64 ") is JSON "
                          "but not an object",
                          f->path, data_start);

    /* serde_json (the reference crate's parser) reads -0 as the float -0.0, which a usize
     * offset or dimension refuses; Jansson reads it as the integer 0 */
    const long neg0 = find_negative_zero((const char *)base + 8, (size_t)n);
    if (neg0 >= 0)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: header has -0 at header byte %ld (file offset %" PRIu64 "): the "
                          "reference implementation reads it as a float, not as an offset or a "
                          "dimension", f->path, neg0, 8 + (uint64_t)neg0);
    /* "__metadata__": null is no metadata (the reference's Option<HashMap<String, String>>) */
    json_t *meta = json_object_get(f->header, "__metadata__");
    f->metadata = json_is_null(meta) ? NULL : meta;
    if (f->metadata) EMBER_TRY(check_metadata(f, f->metadata));
    f->count = json_object_size(f->header) - (meta ? 1 : 0);
    f->tensors = calloc(f->count ? f->count : 1, sizeof *f->tensors);
    f->by_name = calloc(f->count ? f->count : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name)
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu tensor records", f->path, f->count);

    size_t i = 0;
    const char *name;
    json_t *v;
    json_object_foreach(f->header, name, v) { /* jansson iterates in insertion (= file) order */
        if (v == meta) continue;
        EMBER_TRY(parse_entry(f, data_start, name, v, &f->tensors[i++]));
    }
    EMBER_TRY(check_tiling(f, data_start));
    qsort(f->by_name, f->count, sizeof *f->by_name, cmp_by_name);
    return EMBER_OK;
}

static ember_st_file *new_file(const char *path) {
    ember_st_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (f && !f->path) {
        free(f);
        f = NULL;
    }
    if (!f) ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    return f;
}

/* Parse the bytes f->map holds; on failure f is closed. */
static ember_status finish_open(ember_st_file *f, ember_status st, ember_st_file **out) {
    if (st == EMBER_OK) st = parse_header(f);
    if (st != EMBER_OK) {
        ember_st_close(f);
        return st;
    }
    *out = f;
    return EMBER_OK;
}

ember_status ember_st_open(const char *path, ember_st_file **out) {
    if (out) *out = NULL;
    if (!path || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_st_open: path and out must not be NULL");
    ember_st_file *f = new_file(path);
    if (!f) return EMBER_ERR_OUT_OF_MEMORY;
    return finish_open(f, map_file(f), out);
}

ember_status ember_st_open_memory(const void *data, size_t size, const char *label,
                                  ember_st_file **out) {
    if (out) *out = NULL;
    if ((!data && size) || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_st_open_memory: data and out must not be NULL");
    if (!label) label = "(memory)";
    ember_st_file *f = new_file(label);
    if (!f) return EMBER_ERR_OUT_OF_MEMORY;
    f->map = (void *)data; /* never written: tensor data pointers are const */
    f->map_size = size;
    f->borrowed = 1;
    return finish_open(f, size < 8 ? too_short(label, size) : EMBER_OK, out);
}

void ember_st_close(ember_st_file *f) {
    if (!f) return;
    if (f->map && !f->borrowed) munmap(f->map, f->map_size);
    json_decref(f->header);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

const char *ember_st_path(const ember_st_file *f) { return f ? f->path : NULL; }
size_t ember_st_count(const ember_st_file *f) { return f ? f->count : 0; }

const ember_st_tensor *ember_st_at(const ember_st_file *f, size_t i) {
    return f && i < f->count ? &f->tensors[i] : NULL;
}

static int cmp_name_key(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const ember_st_tensor *const *)elem)->name);
}

const ember_st_tensor *ember_st_find(const ember_st_file *f, const char *name) {
    if (!f || !name || f->count == 0) return NULL;
    const ember_st_tensor *const *hit = bsearch(name, f->by_name, f->count, sizeof *f->by_name, cmp_name_key);
    return hit ? *hit : NULL;
}

const char *ember_st_metadata(const ember_st_file *f, const char *key) {
    if (!f || !f->metadata || !key) return NULL;
    return json_string_value(json_object_get(f->metadata, key));
}

/* ---- conversion ----------------------------------------------------------------------- */

float ember_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, NaN with its payload */
    } else if (exp == 0) {
        float v = (float)man * 0x1p-24f; /* zero or subnormal: man x 2^-24, exact in f32 */
        return sign ? -v : v;
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13); /* rebias 15 -> 127 */
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

float ember_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

static const char *tname(const ember_st_tensor *t) { return t->name ? t->name : "(unnamed)"; }

/* numel of `t` if its byte count matches its shape and dtype. */
static ember_status check_view(const ember_st_tensor *t, const void *dst, const char *fn, int64_t *numel) {
    int64_t n = ember_st_numel(t);
    if (n < 0)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has an invalid shape", fn, tname(t));
    size_t es = ember_st_dtype_size(t->dtype);
    if (n > INT64_MAX / (int64_t)es || (size_t)n * es != t->nbytes || (t->nbytes && !t->data) || (n && !dst))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "%s: tensor '%s': %zu bytes for %" PRId64 " %s elements, or NULL data/dst", fn,
                          tname(t), t->nbytes, n, ember_st_dtype_name(t->dtype));
    *numel = n;
    return EMBER_OK;
}

static uint16_t load_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

ember_status ember_st_to_f32(const ember_st_tensor *t, float *dst) {
    if (!t) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_st_to_f32: tensor is NULL");
    ember_st_dtype dt = t->dtype;
    if (dt != EMBER_ST_F32 && dt != EMBER_ST_F16 && dt != EMBER_ST_BF16 && dt != EMBER_ST_F64)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "tensor '%s': cannot convert %s to F32", tname(t),
                          ember_st_dtype_name(dt));
    int64_t n;
    EMBER_TRY(check_view(t, dst, "ember_st_to_f32", &n));
    const unsigned char *p = t->data; /* may be unaligned inside the mapping: bytes only */
    if (dt == EMBER_ST_F32 && n > 0) memcpy(dst, p, t->nbytes);
    for (int64_t i = 0; dt == EMBER_ST_F16 && i < n; i++) dst[i] = ember_f16_to_f32(load_u16(p + 2 * i));
    for (int64_t i = 0; dt == EMBER_ST_BF16 && i < n; i++) dst[i] = ember_bf16_to_f32(load_u16(p + 2 * i));
    for (int64_t i = 0; dt == EMBER_ST_F64 && i < n; i++) {
        double d;
        memcpy(&d, p + 8 * i, sizeof d);
        dst[i] = (float)d;
    }
    return EMBER_OK;
}

ember_status ember_st_to_i32(const ember_st_tensor *t, int32_t *dst) {
    if (!t) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_st_to_i32: tensor is NULL");
    ember_st_dtype dt = t->dtype;
    if (dt != EMBER_ST_I64 && dt != EMBER_ST_I32 && dt != EMBER_ST_I16 && dt != EMBER_ST_I8 &&
        dt != EMBER_ST_U8 && dt != EMBER_ST_BOOL)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "tensor '%s': cannot convert %s to I32", tname(t),
                          ember_st_dtype_name(dt));
    int64_t n;
    EMBER_TRY(check_view(t, dst, "ember_st_to_i32", &n));
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        switch (dt) {
        case EMBER_ST_I64: memcpy(&v, p + 8 * i, 8); break;
        case EMBER_ST_I32: { int32_t x; memcpy(&x, p + 4 * i, 4); v = x; break; }
        case EMBER_ST_I16: v = (int16_t)load_u16(p + 2 * i); break;
        case EMBER_ST_I8: v = (int8_t)p[i]; break;
        case EMBER_ST_BOOL: v = p[i] != 0; break;
        default: v = p[i]; break; /* U8 */
        }
        if (v < INT32_MIN || v > INT32_MAX)
            return ember_fail(EMBER_ERR_OUT_OF_RANGE,
                              "tensor '%s': element %" PRId64 " = %" PRId64 " does not fit in int32",
                              tname(t), i, v);
        dst[i] = (int32_t)v;
    }
    return EMBER_OK;
}

/* ---- writer -------------------------------------------------------------------------- */

static int is_utf8(const char *s) {
    json_t *j = json_string(s); /* jansson refuses invalid UTF-8 */
    json_decref(j);
    return j != NULL;
}

static ember_status add_metadata(const char *path, json_t *root, const char *const *keys,
                                 const char *const *values, size_t n) {
    json_t *m = json_object();
    if (json_object_set_new(root, "__metadata__", m) != 0)
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    for (size_t i = 0; i < n; i++) {
        if (!keys[i] || !values[i] || !is_utf8(keys[i]) || !is_utf8(values[i]))
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s: metadata entry %zu is NULL or not UTF-8", path, i);
        if (json_object_get(m, keys[i]))
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s: duplicate metadata key '%s'", path, keys[i]);
        if (json_object_set_new(m, keys[i], json_string(values[i])) != 0)
            return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    }
    return EMBER_OK;
}

static ember_status add_tensor(const char *path, json_t *root, const ember_st_tensor *t, uint64_t *offset) {
    if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0 || !is_utf8(t->name))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s: tensor name '%s' is empty, reserved or not UTF-8",
                          path, t->name ? t->name : "(null)");
    if (json_object_get(root, t->name))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s: duplicate tensor name '%s'", path, t->name);
    if ((int)t->dtype < 0 || (int)t->dtype >= N_DTYPES)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s: tensor '%s': invalid dtype %d", path, t->name,
                          (int)t->dtype);
    int64_t numel;
    EMBER_TRY(check_view(t, t, "ember_st_write", &numel)); /* dst is unused by the writer */

    json_t *e = json_object(), *shape = json_array();
    int bad = 0;
    for (int i = 0; i < t->ndim; i++) bad |= json_array_append_new(shape, json_integer(t->shape[i]));
    /* the *_new calls take ownership even when they fail, so nothing leaks on error */
    bad |= json_object_set_new(e, "dtype", json_string(ember_st_dtype_name(t->dtype)));
    bad |= json_object_set_new(e, "shape", shape);
    bad |= json_object_set_new(e, "data_offsets",
                               json_pack("[II]", (json_int_t)*offset, (json_int_t)(*offset + t->nbytes)));
    bad |= json_object_set_new(root, t->name, e);
    if (bad) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    *offset += t->nbytes;
    return EMBER_OK;
}

/* 8-byte length + compact JSON padded with spaces to a multiple of 8, in one buffer. */
static ember_status build_header(const char *path, const ember_st_tensor *t, size_t n,
                                 const char *const *mk, const char *const *mv, size_t n_meta,
                                 char **out, size_t *out_len) {
    json_t *root = json_object();
    if (!root) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    ember_status st = n_meta ? add_metadata(path, root, mk, mv, n_meta) : EMBER_OK;
    uint64_t offset = 0;
    for (size_t i = 0; i < n && st == EMBER_OK; i++) st = add_tensor(path, root, &t[i], &offset);
    char *js = st == EMBER_OK ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (st != EMBER_OK) return st;
    size_t len = js ? strlen(js) : 0, padded = (len + 7) / 8 * 8;
    char *buf = js ? malloc(8 + padded) : NULL;
    if (!buf) {
        free(js);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    }
    for (int i = 0; i < 8; i++) buf[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(buf + 8, js, len);
    memset(buf + 8 + len, ' ', padded - len);
    free(js);
    *out = buf;
    *out_len = 8 + padded;
    return EMBER_OK;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

ember_status ember_st_write(const char *path, const ember_st_tensor *t, size_t n,
                            const char *const *meta_keys, const char *const *meta_values, size_t n_meta) {
    if (!path || (n && !t) || (n_meta && (!meta_keys || !meta_values)))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_st_write: NULL path, tensors or metadata arrays");
    char *header = NULL;
    size_t header_len = 0;
    EMBER_TRY(build_header(path, t, n, meta_keys, meta_values, n_meta, &header, &header_len));

    /* a temporary file renamed over the target, through a symlink; a device or FIFO directly */
    ember_out o;
    ember_status st = ember_out_open(path, &o);
    if (st == EMBER_OK) {
        char eb[128];
        int ok = write_all(o.fd, header, header_len) == 0;
        for (size_t i = 0; ok && i < n; i++) ok = write_all(o.fd, t[i].data, t[i].nbytes) == 0;
        int e = errno;
        st = ember_out_close(&o, ok);
        if (!ok) st = ember_fail(EMBER_ERR_IO, "%s: write failed: %s", path, errno_text(e, eb, sizeof eb));
    }
    free(header);
    return st;
}
