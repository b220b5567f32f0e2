/* libFuzzer target: vocab.txt (+ tokenizer_config.json, special_tokens_map.json) loading and
 * WordPiece tokenization (host/tokenizer.c, weights/vocab.c) on arbitrary bytes.
 *
 * Input: [flags] [max_length] vocab.txt 0xFF text_a 0xFF text_b 0xFF tokenizer_config.json
 *        0xFF special_tokens_map.json   (0xFF never occurs in UTF-8; missing parts are empty
 *        or, for the JSON files, absent)
 *   flags: bits 0-1, 2-3, 4-5 do_lower_case, strip_accents, tokenize_chinese_chars
 *          (-1, 0, 1 or the invalid 7); bit 6 encode text_a/text_b as one pair (else as two
 *          texts); bit 7 NULL options.
 * The files are written to a per-process directory in /dev/shm (ember_tokenizer_load reads a
 * directory); vocab.txt is also parsed from memory (ember_vocab_parse).
 *
 * Checks: a status and a message on every failure; text is accepted exactly when it is valid
 * UTF-8 (an independent validator); ids in [0, vocab size); a second call with an exact or a
 * smaller buffer gives the same count and the same prefix; encodings are [CLS] ... [SEP]
 * (... [SEP]) rows with masks, types, padding and max_length as ember.h says; text_a
 * lower-cased as sentence-transformers' do_lower_case (ember_sbert_lower) is valid UTF-8 of at
 * most 3/2 the bytes, ASCII as tolower(), and tokenizes. */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"
#include "weights/st_config.h"
#include "weights/vocab.h"

enum { N_PARTS = 5 };

/* RFC 3629 UTF-8, written independently of weights/vocab.h. */
static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t cp = len == 1 ? b : len == 2 ? b & 0x1fu : len == 3 ? b & 0x0fu : b & 0x07u;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

static char g_dir[128];

static void write_file(const char *name, const uint8_t *p, size_t n, int present) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    if (!present) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static void cleanup(void) {
    write_file("vocab.txt", NULL, 0, 0);
    write_file("tokenizer_config.json", NULL, 0, 0);
    write_file("special_tokens_map.json", NULL, 0, 0);
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    atexit(cleanup);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/ember_fuzz_tok_%ld", base, (long)getpid());
    mkdir(g_dir, 0700);
    return 0;
}

static void check_tokenize(const ember_tokenizer *tok, const uint8_t *text, size_t len) {
    const int32_t V = ember_tokenizer_vocab_size(tok);
    int64_t n = -1;
    ember_status st = ember_tokenize(tok, (const char *)text, len, NULL, 0, &n);
    fuzz_check_status(st, "ember_tokenize");
    FUZZ_CHECK((st == EMBER_OK) == valid_utf8(text, len), "ember_tokenize: %s for %s UTF-8 (%s)",
               ember_status_string(st), valid_utf8(text, len) ? "valid" : "invalid", ember_last_error());
    if (st != EMBER_OK) return;
    FUZZ_CHECK(n >= 0 && (size_t)n <= 4 * len + 1, "ember_tokenize: %lld ids for %zu bytes", (long long)n, len);
    int32_t *ids = malloc(sizeof *ids * (size_t)(n ? n : 1)); /* exact: ASan sees overruns */
    int64_t half = n / 2, m = -1;
    int32_t *part = malloc(sizeof *part * (size_t)(half ? half : 1));
    FUZZ_CHECK(ids && part, "out of memory");
    FUZZ_CHECK(ember_tokenize(tok, (const char *)text, len, ids, n, &m) == EMBER_OK && m == n,
               "second call: %lld ids, first said %lld", (long long)m, (long long)n);
    FUZZ_CHECK(ember_tokenize(tok, (const char *)text, len, part, half, &m) == EMBER_OK && m == n,
               "call with cap %lld: %lld ids, want %lld", (long long)half, (long long)m, (long long)n);
    FUZZ_CHECK(memcmp(ids, part, sizeof *ids * (size_t)half) == 0, "prefix differs with a smaller cap");
    for (int64_t i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d outside [0, %d)", ids[i], V);
        FUZZ_CHECK(ember_tokenizer_token(tok, ids[i]) != NULL, "no string for id %d", ids[i]);
    }
    free(ids);
    free(part);
}

/* sentence-transformers' do_lower_case (Python's str.lower): accepted exactly on valid UTF-8,
 * gives valid UTF-8 of at most 3/2 the bytes, ASCII as tolower() would, and text that tokenizes. */
static void check_lower(const ember_tokenizer *tok, const uint8_t *text, size_t len) {
    char *lo = (char *)text;
    size_t n = 0;
    ember_status st = ember_sbert_lower((const char *)text, len, &lo, &n);
    fuzz_check_status(st, "ember_sbert_lower");
    FUZZ_CHECK((st == EMBER_OK) == valid_utf8(text, len), "ember_sbert_lower: %s for %s UTF-8",
               ember_status_string(st), valid_utf8(text, len) ? "valid" : "invalid");
    if (st != EMBER_OK) {
        FUZZ_CHECK(lo == NULL, "*out not NULL after failure");
        return;
    }
    FUZZ_CHECK(n <= len + len / 2 && lo[n] == 0 && valid_utf8((const uint8_t *)lo, n),
               "lower-cased %zu bytes into %zu", len, n);
    int ascii = 1;
    for (size_t i = 0; i < len; i++) ascii &= text[i] < 0x80 && text[i] != 0;
    for (size_t i = 0; ascii && i < len; i++)
        FUZZ_CHECK(lo[i] == (text[i] >= 'A' && text[i] <= 'Z' ? text[i] + 32 : text[i]),
                   "ASCII byte %zu: 0x%02x -> 0x%02x", i, text[i], (unsigned char)lo[i]);
    int64_t ids = -1;
    FUZZ_CHECK(ember_tokenize(tok, lo, n, NULL, 0, &ids) == EMBER_OK, "lower-cased text: %s",
               ember_last_error());
    free(lo);
}

static void check_encode(const ember_tokenizer *tok, const char *a, const char *b, int pair,
                         int max_length) {
    const char *texts[2] = {a, b}, *pairs[1] = {b};
    const int n = pair ? 1 : 2;
    ember_encoding enc;
    ember_status st = ember_tokenizer_encode(tok, n, texts, pair ? pairs : NULL, max_length, &enc);
    fuzz_check_status(st, "ember_tokenizer_encode");
    if (!valid_utf8((const uint8_t *)a, strlen(a)) || !valid_utf8((const uint8_t *)b, strlen(b)))
        FUZZ_CHECK(st != EMBER_OK, "encode accepted invalid UTF-8");
    if (st != EMBER_OK) {
        FUZZ_CHECK(enc.batch == 0 && !enc.input_ids && !enc.lengths, "*out not zeroed on failure");
        return;
    }
    ember_special_tokens sp;
    FUZZ_CHECK(ember_tokenizer_special(tok, &sp) == EMBER_OK, "special");
    const int32_t V = ember_tokenizer_vocab_size(tok);
    const int S = enc.seq_len;
    FUZZ_CHECK(enc.batch == n && S >= (pair ? 3 : 2), "batch %d seq_len %d", enc.batch, S);
    if (max_length > 0) FUZZ_CHECK(S <= max_length, "seq_len %d > max_length %d", S, max_length);
    int longest = 0;
    for (int i = 0; i < n; i++) {
        const int32_t *ids = enc.input_ids + (size_t)i * S, *mask = enc.attention_mask + (size_t)i * S;
        const int32_t *types = enc.token_type_ids + (size_t)i * S;
        const int L = enc.lengths[i];
        FUZZ_CHECK(L >= (pair ? 3 : 2) && L <= S, "row %d: length %d of %d", i, L, S);
        FUZZ_CHECK(enc.truncated[i] >= 0, "row %d: truncated %d", i, enc.truncated[i]);
        FUZZ_CHECK(ids[0] == sp.cls && ids[L - 1] == sp.sep, "row %d: not [CLS] ... [SEP]", i);
        int seps = 0;
        for (int s = 0; s < S; s++) {
            FUZZ_CHECK(mask[s] == (s < L), "row %d: mask[%d] = %d", i, s, mask[s]);
            FUZZ_CHECK(s < L ? ids[s] >= 0 && ids[s] < V : ids[s] == sp.pad, "row %d: id[%d] = %d", i,
                       s, ids[s]);
            FUZZ_CHECK(types[s] == 0 || (pair && types[s] == 1 && s < L), "row %d: type[%d] = %d", i, s,
                       types[s]);
            seps += s < L && ids[s] == sp.sep && (s == L - 1 || types[s + 1] != types[s]);
        }
        FUZZ_CHECK(!pair || seps >= 2, "pair row without two [SEP]");
        if (L > longest) longest = L;
    }
    FUZZ_CHECK(longest == S, "seq_len %d but the longest row is %d", S, longest);
    ember_encoding_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const uint8_t flags = data[0];
    const int max_length = data[1] == 0xff ? -1 : data[1];
    static const uint8_t empty[1] = {0};
    const uint8_t *part[N_PARTS] = {empty, empty, empty, empty, empty};
    size_t len[N_PARTS] = {0};
    int present[N_PARTS] = {0}, np = 0;
    const uint8_t *p = data + 2, *end = data + size;
    while (np < N_PARTS) {
        const uint8_t *sep = memchr(p, 0xff, (size_t)(end - p));
        part[np] = p;
        len[np] = (size_t)((sep ? sep : end) - p);
        present[np++] = 1;
        if (!sep) break;
        p = sep + 1;
    }

    /* vocab.txt from memory */
    ember_vocab v;
    ember_status vst = ember_vocab_parse((const char *)part[0], len[0], "fuzz/vocab.txt", &v);
    fuzz_check_status(vst, "ember_vocab_parse");
    int32_t vocab_tokens = vst == EMBER_OK ? v.n_tokens : -1;
    if (vst == EMBER_OK) ember_vocab_free(&v);

    /* the directory the tokenizer reads */
    write_file("vocab.txt", part[0], len[0], 1);
    write_file("tokenizer_config.json", part[3], len[3], present[3]);
    write_file("special_tokens_map.json", part[4], len[4], present[4]);
    static const int flag_value[4] = {-1, 0, 1, 7};
    ember_tokenizer_options opt = {flag_value[flags & 3], flag_value[(flags >> 2) & 3],
                                   flag_value[(flags >> 4) & 3]};
    ember_tokenizer *tok = (ember_tokenizer *)&opt; /* poison: must come back NULL on failure */
    ember_status st = ember_tokenizer_load(g_dir, (flags & 0x80) ? NULL : &opt, &tok);
    fuzz_check_status(st, "ember_tokenizer_load");
    if (st != EMBER_OK) {
        FUZZ_CHECK(tok == NULL, "*out not NULL after failure");
        return 0;
    }
    const int32_t V = ember_tokenizer_vocab_size(tok);
    FUZZ_CHECK(V > 0 && V == vocab_tokens, "vocab size %d, parsed from memory %d", V, vocab_tokens);
    FUZZ_CHECK(ember_tokenizer_token(tok, V) == NULL && ember_tokenizer_token(tok, -1) == NULL,
               "token() out of range not NULL");
    FUZZ_CHECK(ember_tokenizer_token(tok, 0) && ember_tokenizer_token(tok, V - 1), "token() NULL in range");
    ember_special_tokens sp;
    FUZZ_CHECK(ember_tokenizer_special(tok, &sp) == EMBER_OK, "ember_tokenizer_special");
    const int32_t sps[5] = {sp.cls, sp.sep, sp.pad, sp.unk, sp.mask};
    for (int i = 0; i < 5; i++) FUZZ_CHECK(sps[i] >= -1 && sps[i] < V, "special id %d", sps[i]);
    FUZZ_CHECK(sp.unk >= 0, "loaded without [UNK]");

    check_tokenize(tok, part[1], len[1]);
    check_tokenize(tok, part[2], len[2]);
    check_lower(tok, part[1], len[1]);
    char *a = strndup((const char *)part[1], len[1]), *b = strndup((const char *)part[2], len[2]);
    FUZZ_CHECK(a && b, "out of memory");
    check_encode(tok, a, b, (flags >> 6) & 1, max_length);
    free(a);
    free(b);
    ember_tokenizer_free(tok);
    return 0;
}
