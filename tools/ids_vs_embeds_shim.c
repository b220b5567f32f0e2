/* A flat C entry for tools/ids_vs_embeds.py (ctypes): plain scalars and pointers only, so the
 * Python side never mirrors ember's structs (whose fields other work keeps adding). Built by
 * `tools/gpu-check.sh prepare` against the carried libember.so.
 *
 * Pointers are device memory for the CUDA backend (a torch CUDA tensor's data_ptr()) and host
 * memory for the CPU backend, as ember_forward expects. */
#include <stddef.h>
#include <stdint.h>

#include "ember.h"

/* Load `dir` on backend 0 = CPU, 1 = CUDA in dtype 0 = f32, 1 = f16, 2 = bf16. */
ember_model *ive_load(const char *dir, int cuda, int dtype, int max_batch, int max_seq) {
    static const ember_dtype dts[] = {EMBER_DTYPE_F32, EMBER_DTYPE_F16, EMBER_DTYPE_BF16};
    if (dtype < 0 || dtype > 2) return NULL;
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = cuda ? EMBER_BACKEND_CUDA : EMBER_BACKEND_CPU;
    opt.compute_dtype = dts[dtype];
    opt.max_batch = max_batch;
    opt.max_seq_len = max_seq;
    ember_model *m = NULL;
    return ember_model_load(dir, &opt, &m) == EMBER_OK ? m : NULL;
}

int ive_hidden_size(const ember_model *m) {
    ember_config c;
    return ember_model_config(m, &c) == EMBER_OK ? c.hidden_size : -1;
}

/* One forward: exactly one of ids / embeds is non-NULL; returns the ember_status. */
int ive_forward(ember_model *m, int batch, int seq, const int32_t *ids, const float *embeds,
                const int32_t *mask, const int32_t *types, float *out, void *stream) {
    ember_inputs in = {0};
    in.batch = batch;
    in.seq_len = seq;
    in.input_ids = ids;
    in.inputs_embeds = embeds;
    in.attention_mask = mask;
    in.token_type_ids = types;
    ember_outputs o = {0};
    o.last_hidden_state = out;
    return (int)ember_forward(m, &in, &o, (ember_stream)stream);
}

int ive_embed_tokens(ember_model *m, const int32_t *ids, int64_t n, float *out, void *stream) {
    return (int)ember_embed_tokens(m, ids, n, out, (ember_stream)stream);
}
