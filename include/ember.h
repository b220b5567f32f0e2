/*
 * ember.h — BERT encoder inference in C, on the CPU (a fast float32 path, and a plain-C
 * reference in double precision) or on an NVIDIA GPU.
 *
 * ember reproduces HuggingFace `BertModel` and its family (RoBERTa, XLM-RoBERTa, DistilBERT,
 * ELECTRA; with or without a sequence- or token-classification head) and loads HF checkpoints
 * directly (config.json + model.safetensors, or a sharded model.safetensors.index.json).
 *
 * Three entry points, exactly one per forward call:
 *
 *   input_ids  [B,S] ──gather──┐
 *   inputs_embeds [B,S,H] ─────┴─> + position + token type ─> LayerNorm ─┐
 *   embedding_output [B,S,H] (= HF hidden_states[0]) ──────────────────────┴─> encoder ─> outputs
 *
 * `inputs_embeds` are RAW word vectors (what ember_embed_tokens() returns), not
 * hidden_states[0]: feeding hidden_states[0] as inputs_embeds adds position and
 * type embeddings and LayerNorm a second time. Pass it as embedding_output instead.
 *
 * Usage (CPU backend; host pointers):
 *
 *   ember_model *m = NULL;
 *   ember_load_options opt;
 *   ember_load_options_init(&opt);              // CPU, f32, workspace for 8 x 128 tokens
 *   if (ember_model_load("bert-dir", &opt, &m) != EMBER_OK) {
 *       fprintf(stderr, "%s\n", ember_last_error());
 *       return 1;
 *   }
 *   ember_config cfg;
 *   ember_model_config(m, &cfg);
 *   int32_t ids[2 * 5] = {101, 7592, 2088, 102, 0,   101, 2129, 2024, 2017, 102};
 *   int32_t mask[2 * 5] = {1, 1, 1, 1, 0,            1, 1, 1, 1, 1};
 *   float *h = malloc(sizeof(float) * 2 * 5 * cfg.hidden_size);
 *   ember_inputs in = {.batch = 2, .seq_len = 5, .input_ids = ids, .attention_mask = mask};
 *   ember_outputs out = {.last_hidden_state = h};
 *   ember_status st = ember_forward(m, &in, &out, NULL);
 *   ...
 *   ember_model_free(m);
 *
 * Where pointers live:
 *   EMBER_BACKEND_CPU, EMBER_BACKEND_REFERENCE — every input and output pointer is host memory;
 *                        `stream` must be NULL.
 *   EMBER_BACKEND_CUDA — every input and output pointer (ids, masks, types, positions,
 *                        embeds, outputs) is device memory on the model's device; work is
 *                        enqueued on `stream` (NULL = the legacy default stream).
 *
 * Threads: ember_model_load / ember_model_init_random may run concurrently. ember_forward,
 * ember_embed_tokens, ember_pool, ember_model_sync, ember_table_copy, ember_model_reserve and
 * ember_model_memory may be called from several threads on one model: each model has a mutex
 * that serialises them (the workspace, the cuBLAS handle and the CUDA graph cache are per
 * model), so every result is bit-identical to the same call made alone on one thread. They
 * run one at a time: for parallel CPU throughput load one model per thread (or let one model use
 * the cores: EMBER_BACKEND_CPU runs each call on ember's threads (OMP_NUM_THREADS, else one
 * per core) and OpenBLAS's (OPENBLAS_NUM_THREADS, else OMP_NUM_THREADS, else one per core); its
 * results do not depend on the number of ember's threads, and for a given number of OpenBLAS
 * threads they repeat bit for bit). ember_model_config,
 * _backend, _dtype, _label and ember_table_shape read immutable fields and take no lock.
 * ember_model_free must not race with any other call on the same model (free it after the
 * other threads are done with it). ember_last_error() is per thread: each thread sees the
 * message of its own last call. On CUDA the lock covers enqueueing, not the device: an
 * EMBER_FORWARD_ASYNC call returns with its work still queued, and a later call on another
 * stream (from any thread) waits on the device for it before it touches the workspace (see
 * EMBER_FORWARD_ASYNC); the caller still orders its own inputs and outputs.
 *
 * Memory: the workspace is sized at load for `max_batch x max_seq` tokens and only grows
 * when the caller asks (ember_model_reserve). Forward never allocates; a call larger than
 * the workspace fails with EMBER_ERR_CAPACITY. A workspace holds at most INT_MAX tokens
 * (batch x seq_len beyond that is EMBER_ERR_INVALID_ARGUMENT, for forward and reserve alike);
 * a load or reserve whose memory cannot be allocated fails with EMBER_ERR_OUT_OF_MEMORY, frees
 * what it took, and the model keeps its previous workspace and keeps serving.
 */
#ifndef EMBER_H
#define EMBER_H

#include <stddef.h>
#include <stdint.h>

/* EMBER_API marks the public functions, the only symbols libember.so exports: ember is compiled
 * with hidden visibility and EMBER_BUILDING defined. */
#if defined(_WIN32) && defined(EMBER_BUILDING)
#define EMBER_API __declspec(dllexport)
#elif defined(_WIN32) && defined(EMBER_USE_SHARED)
#define EMBER_API __declspec(dllimport)
#elif defined(__GNUC__) && defined(EMBER_BUILDING)
#define EMBER_API __attribute__((visibility("default")))
#else
#define EMBER_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. These three lines are where the version lives: CMake reads them
 * for the project version, libember.so.MAJOR, the CMake package and ember.pc. ember_version()
 * gives the version of the library a program actually runs with. */
#define EMBER_VERSION_MAJOR 0
#define EMBER_VERSION_MINOR 2
#define EMBER_VERSION_PATCH 0
#define EMBER_VERSION_NUMBER \
    (EMBER_VERSION_MAJOR * 10000 + EMBER_VERSION_MINOR * 100 + EMBER_VERSION_PATCH)
#define EMBER_STRINGIFY_(x) #x
#define EMBER_STRINGIFY(x) EMBER_STRINGIFY_(x)
#define EMBER_VERSION_STRING                                                   \
    EMBER_STRINGIFY(EMBER_VERSION_MAJOR) "." EMBER_STRINGIFY(EMBER_VERSION_MINOR) "." \
    EMBER_STRINGIFY(EMBER_VERSION_PATCH)

/* Same type as cudaStream_t, declared without including CUDA headers. */
typedef struct CUstream_st *ember_stream;

/* Append only: never renumber. */
typedef enum ember_status {
    EMBER_OK = 0,
    EMBER_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad size, conflicting entry points   */
    EMBER_ERR_IO = 2,               /* a file is missing or unreadable                     */
    EMBER_ERR_FORMAT = 3,           /* a file is corrupt: safetensors, JSON                */
    EMBER_ERR_UNSUPPORTED = 4,      /* valid but not supported (activation, dtype, ...)    */
    EMBER_ERR_MISSING_TENSOR = 5,   /* a required checkpoint tensor is absent              */
    EMBER_ERR_SHAPE = 6,            /* a tensor's shape disagrees with config.json         */
    EMBER_ERR_CONFIG = 7,           /* config.json value out of bounds or inconsistent     */
    EMBER_ERR_OUT_OF_RANGE = 8,     /* id / token type / position id outside its table     */
    EMBER_ERR_CAPACITY = 9,         /* batch x seq_len exceeds the reserved workspace      */
    EMBER_ERR_OUT_OF_MEMORY = 10,   /* host or device allocation failed; model still usable */
    EMBER_ERR_NO_DEVICE = 11,       /* no CUDA device, or built without CUDA               */
    EMBER_ERR_CUDA = 12,            /* a CUDA / cuBLAS call failed (recoverable)           */
    EMBER_ERR_DEVICE_LOST = 13,     /* sticky CUDA error: the model is poisoned, free it   */
    EMBER_ERR_INTERNAL = 14,        /* a bug in ember                                      */
} ember_status;

/* Short static name of a status ("EMBER_ERR_SHAPE: tensor shape mismatch"). Never NULL. */
EMBER_API const char *ember_status_string(ember_status status);

/* Detailed message of the last failed call on this thread (which argument, which tensor,
 * which file offset). Empty string if none. Valid until the next ember call on this thread. */
EMBER_API const char *ember_last_error(void);

/* Append only: never renumber. */
typedef enum ember_backend {
    EMBER_BACKEND_CPU = 0,       /* fast CPU path: float32, OpenBLAS sgemm, fused ops, threads */
    EMBER_BACKEND_CUDA = 1,      /* NVIDIA GPU                                                  */
    EMBER_BACKEND_REFERENCE = 2, /* plain-C reference on the CPU: fp32 storage, double
                                  * accumulators, one op at a time; the oracle of the tests     */
} ember_backend;

typedef enum ember_dtype {
    EMBER_DTYPE_F32 = 0,
    EMBER_DTYPE_F16 = 1,
    EMBER_DTYPE_BF16 = 2,
} ember_dtype;

typedef enum ember_activation {
    EMBER_ACT_GELU = 0,      /* "gelu": exact, 0.5 x (1 + erf(x / sqrt 2))            */
    EMBER_ACT_GELU_TANH = 1, /* "gelu_new", "gelu_pytorch_tanh": tanh approximation    */
    EMBER_ACT_RELU = 2,      /* "relu"                                                 */
} ember_activation;

/* The encoder family, from config.json's "model_type" (absent = "bert"). Append only. The
 * families share the encoder layers; they differ in the embeddings, the tensor names and the
 * heads (README, "Architectures"). */
typedef enum ember_arch {
    EMBER_ARCH_BERT = 0,        /* "bert"                                                       */
    EMBER_ARCH_ROBERTA = 1,     /* "roberta": default position ids count from pad_token_id + 1   */
    EMBER_ARCH_XLM_ROBERTA = 2, /* "xlm-roberta": as RoBERTa                                    */
    EMBER_ARCH_DISTILBERT = 3,  /* "distilbert": no token types (type_vocab_size = 0)            */
    EMBER_ARCH_ELECTRA = 4,     /* "electra": embedding_size-wide embeddings, embeddings_project */
} ember_arch;

/* The task head after the encoder, from config.json's "architectures". Append only. */
typedef enum ember_head {
    EMBER_HEAD_NONE = 0,                    /* *Model, or a head ember does not run          */
    EMBER_HEAD_SEQUENCE_CLASSIFICATION = 1, /* *ForSequenceClassification: logits [B, L]     */
    EMBER_HEAD_TOKEN_CLASSIFICATION = 2,    /* *ForTokenClassification: logits [B, S, L]     */
} ember_head;

typedef struct ember_config {
    int vocab_size;
    int hidden_size;
    int num_hidden_layers;
    int num_attention_heads;
    int intermediate_size;
    int max_position_embeddings;
    int type_vocab_size; /* 0 for DistilBERT (no token types)                              */
    int pad_token_id;    /* RoBERTa / XLM-R: padding_idx of the position rule               */
    double layer_norm_eps;
    ember_activation hidden_act;
    int has_pooler; /* 1 if the checkpoint holds pooler.dense */
    /* Appended in 0.2; zero-initialised configs mean BERT without a head. */
    ember_arch arch;
    int embedding_size; /* width of the embedding tables: hidden_size except ELECTRA (0 in a
                         * config given to ember_model_init_random means hidden_size)       */
    ember_head head;
    int num_labels;     /* classes of the head (len(id2label)); 0 without a head            */
} ember_config;

typedef struct ember_load_options {
    ember_backend backend;     /* default EMBER_BACKEND_CPU                                  */
    ember_dtype compute_dtype; /* default F32; CPU supports F32 only                        */
    int device;                /* CUDA device ordinal, default 0                            */
    int max_batch;             /* workspace sizing, default 8                               */
    int max_seq_len;           /* workspace sizing, default 128 (clamped to max positions)  */
    int cuda_graphs;           /* CUDA: 1 (default) = replay CUDA graphs for repeated shapes;
                                * 0 = launch every kernel on every call. See below.       */
    int tuning;                /* CUDA: -1 (default) = EMBER_TUNE from the environment, on
                                * when unset; 1 = time candidates per shape; 0 = fixed
                                * defaults. See "Tuning" below.                           */
} ember_load_options;

/* CUDA graphs (cuda_graphs = 1). A BERT forward is ~8 launches per layer; for small batches
 * launching them costs more than running them. The whole forward, embeddings to pooler, is
 * therefore captured into one CUDA graph the second time a shape is seen (batch, seq_len, and
 * which inputs and outputs are given: mask, token types, positions, the entry point, the
 * pooler, EMBER_FORWARD_ASYNC), and the graph is replayed on every later call of that shape;
 * the first call of a shape runs with ordinary launches (and makes the shape's tuning choices,
 * see "Tuning"). The graph works on model-owned copies: the call copies its inputs in, launches
 * the graph, and copies last_hidden_state (and pooler_output) out, device to device, so a
 * replayed call costs a few copies and one graph launch. Up to 8 shapes are kept (least
 * recently used dropped); ember_model_reserve drops them all. Calls with hidden_states or
 * EMBER_FORWARD_SKIP_MASKED, and calls of more than 8192 tokens (whose kernels hide their
 * launches anyway), are never captured. Replayed and launched forwards run the same kernels
 * with the same choices, so their outputs are bit-identical. */
typedef struct ember_model ember_model;

EMBER_API void ember_load_options_init(ember_load_options *opt);

/* Load a HuggingFace directory: config.json plus model.safetensors or
 * model.safetensors.index.json (sharded). Weights stored as F32, F16 or BF16 are
 * converted to the compute dtype. config.json's "model_type" picks the family (ember_arch)
 * and its "architectures" the head (ember_head, with "id2label" / "num_labels"); a model_type
 * or a family ember cannot reproduce is EMBER_ERR_UNSUPPORTED naming it. On failure *out is
 * NULL and ember_last_error() says why: EMBER_ERR_IO for a missing or unreadable file (or one
 * that is not a regular file), EMBER_ERR_FORMAT for a corrupt one (safetensors, or JSON that
 * does not parse), EMBER_ERR_CONFIG for config.json values out of bounds or inconsistent. */
EMBER_API ember_status ember_model_load(const char *model_dir, const ember_load_options *opt,
                                        ember_model **out);

/* A model with random weights (uniform, fixed by `seed`), for tests and benchmarks.
 * cfg->has_pooler chooses whether a pooler is created; cfg->arch, ->embedding_size, ->head and
 * ->num_labels the family and the head (labels "LABEL_0", "LABEL_1", ... as HF names them). */
EMBER_API ember_status ember_model_init_random(const ember_config *cfg, uint64_t seed,
                                               const ember_load_options *opt, ember_model **out);

EMBER_API void ember_model_free(ember_model *model);

EMBER_API ember_status ember_model_config(const ember_model *model, ember_config *out);
/* The name of class `index` of the model's head (config.json's id2label, "LABEL_<i>" when the
 * config has none); NULL when the model has no head or index is outside [0, num_labels).
 * Valid as long as the model. */
EMBER_API const char *ember_model_label(const ember_model *model, int index);
/* config.json's model_type of a family ("bert", "roberta", "xlm-roberta", "distilbert",
 * "electra"); "unknown" for other values. */
EMBER_API const char *ember_arch_name(ember_arch arch);
EMBER_API ember_backend ember_model_backend(const ember_model *model);
EMBER_API ember_dtype ember_model_dtype(const ember_model *model);

/* Grow the workspace to hold max_batch x max_seq_len tokens (never shrinks). This is the
 * only call besides load that allocates workspace. */
EMBER_API ember_status ember_model_reserve(ember_model *model, int max_batch, int max_seq_len);

/* Bytes currently held by the model: weights and workspace (device bytes on CUDA). */
EMBER_API ember_status ember_model_memory(const ember_model *model, size_t *weight_bytes,
                                          size_t *workspace_bytes);

/* ---- Tuning (CUDA) ------------------------------------------------------------------------
 * Several ops have more than one exact implementation ("candidates"), and which is fastest
 * depends on the GPU, the libraries and the shape:
 *   EMBER_TUNE_GEMM       every linear layer: cuBLASLt's heuristic algorithms (up to 8);
 *   EMBER_TUNE_FFN_IN     the FFN's input layer with its GELU: cuBLASLt with the bias
 *                         epilogue and ember's activation kernel, or cuDNN's fused
 *                         matmul -> bias -> GELU graph;
 *   EMBER_TUNE_ATTENTION  ember's attention kernel, or cuDNN's fused attention (SDPA):
 *                         padded with per-sequence lengths, ragged with padding removal.
 * Candidate 0 is always the default (cuBLASLt's first algorithm, ember's own kernels). Tuning a
 * shape costs tens of runs of each op once; a workload whose shapes keep changing pays that on
 * every new shape: declare its shapes with ember_model_reserve_shapes, or turn tuning off.
 * With tuning on, the first forward of a shape (batch, seq_len, mask or not, padding
 * removal or not) runs every candidate of every op it meets on that call's own data, checks
 * each against the default's output (relative L2 within a per-op, per-dtype bound), times it
 * (CUDA events, median of several runs), and keeps the fastest correct one for that op and
 * shape; that call therefore waits for its stream several times and takes longer. Every
 * later call of the shape runs the kept choices: the same kernels, so the same bits, with a
 * CUDA graph or without. Padding removal's GEMMs are sized by the call's number of valid
 * tokens, which changes from call to call: they use a kept choice when one exists for that
 * exact size and cuBLASLt's first algorithm otherwise, never timing anything themselves.
 * cuDNN is optional: when the library (libcudnn.so.9, or the file EMBER_CUDNN_LIB names; never
 * with EMBER_CUDNN=off) is not found at run time, or refuses a graph, or fails the check, its
 * candidate is skipped and the default runs; never an error. A cuDNN candidate is used only
 * after matching the default's output on this GPU, on the data of the call that tuned it.
 * EMBER_TUNE=off in the environment (or ember_load_options.tuning = 0) keeps every default:
 * what the determinism tests use. CPU models have nothing to tune.
 *   EMBER_TUNE_PDL        not an op but how a whole forward is launched: programmatic
 *                         dependent launch ("on": each of ember's kernels may be scheduled
 *                         while the one before it finishes, then waits for it) or not ("off",
 *                         the default). Only on GPUs of compute capability 9.0+ whose kernels
 *                         were compiled for them, only for forwards run as CUDA graphs: when a
 *                         shape's graph is captured (its second call), the forward is captured
 *                         both ways and each graph timed (that call waits for its stream, as a
 *                         tuning call does); both run the same kernels in the same order, so a
 *                         candidate whose output is not bit-identical is WRONG.
 *                         EMBER_PDL=on / off in the environment forces it for every launch of a
 *                         forward (graph or not) on such GPUs; unset, the tuning decides. */
typedef enum ember_tune_op {
    EMBER_TUNE_GEMM = 0,
    EMBER_TUNE_FFN_IN = 1,
    EMBER_TUNE_ATTENTION = 2,
    EMBER_TUNE_PDL = 3,
} ember_tune_op;

typedef enum ember_candidate_status {
    EMBER_CANDIDATE_OK = 0,          /* ran, matched the default, timed                  */
    EMBER_CANDIDATE_WRONG = 1,       /* ran, but its output is outside the bound: unused  */
    EMBER_CANDIDATE_UNAVAILABLE = 2, /* library absent, shape refused, or it failed      */
    EMBER_CANDIDATE_NOT_RUN = 3,     /* not timed (tuning off, or the choice was imported) */
} ember_candidate_status;

typedef enum ember_tune_source {
    EMBER_TUNE_TIMED = 0,    /* chosen by timing on this GPU                          */
    EMBER_TUNE_IMPORTED = 1, /* read by ember_model_tuning_load (checked at first use) */
    EMBER_TUNE_FIXED = 2,    /* tuning off: the default                               */
} ember_tune_source;

#define EMBER_TUNE_MAX_CANDIDATES 10

typedef struct ember_tuning_candidate {
    char name[32];          /* "cublaslt#3", "cudnn-fused", "ember", "cudnn-sdpa", "on" */
    ember_candidate_status status;
    float time_us;          /* median time of one run, -1 when not timed            */
    float rel_diff;         /* relative L2 distance to the default's output, -1 = n/a */
} ember_tuning_candidate;

typedef struct ember_tuning_entry {
    ember_tune_op op;
    ember_dtype dtype;
    char shape[96];         /* e.g. "N=4096 IN=768 OUT=3072 bias gelu", "B=1 S=128 no mask" */
    int choice;             /* index into candidates of what runs                    */
    ember_tune_source source;
    int n_candidates;
    ember_tuning_candidate candidates[EMBER_TUNE_MAX_CANDIDATES];
} ember_tuning_entry;

/* The choices this model has made so far, one entry per op and shape, in the order they were
 * made. Writes at most `cap` entries (entries may be NULL when cap is 0); *count is always the
 * full number, so a first call can size the array. CPU models have none (*count = 0). */
EMBER_API ember_status ember_model_tuning(const ember_model *model, ember_tuning_entry *entries,
                                          int cap, int *count);

/* Write the choices to `path` (text, replaced atomically) so that other machines with the same
 * GPU and libraries can skip the timing: ember_model_tuning_load reads them. The file names
 * the GPU, its compute capability and the cuBLASLt and cuDNN versions. EMBER_ERR_UNSUPPORTED
 * for a CPU model, EMBER_ERR_IO when the file cannot be written. */
EMBER_API ember_status ember_model_tuning_save(const ember_model *model, const char *path);

/* Read choices written by ember_model_tuning_save. The file is checked like any input:
 * malformed, truncated or out-of-range content is EMBER_ERR_FORMAT naming the line; a file
 * from another GPU or other library versions is EMBER_ERR_UNSUPPORTED naming the difference;
 * in both cases nothing is imported and the model keeps its choices. Imported choices replace
 * the model's for the same op and shape; a non-default one is checked against the default on
 * its first use, on that call's data, and dropped (with the default kept) if it fails. */
EMBER_API ember_status ember_model_tuning_load(ember_model *model, const char *path);

/* A shape to prepare for (ember_model_reserve_shapes). */
typedef struct ember_shape {
    int batch;      /* >= 1                                                       */
    int seq_len;    /* 1 <= seq_len <= max_position_embeddings                     */
    int has_mask;   /* 1 if the calls of this shape pass an attention_mask         */
    unsigned flags; /* the calls' EMBER_FORWARD_SKIP_MASKED (other bits ignored)    */
} ember_shape;

/* ember_model_reserve for the largest of `shapes`, then (CUDA, tuning on) one forward per
 * shape on random token ids (and a random right-padded mask where has_mask), so that the
 * timing happens here instead of in the first real call of each shape; where PDL is a
 * candidate (EMBER_TUNE_PDL), a second forward of each padded shape captures its graph and
 * times it with and without PDL. Allocates and frees
 * its own device buffers for those forwards and waits for them. CPU: the reserve only. */
EMBER_API ember_status ember_model_reserve_shapes(ember_model *model, const ember_shape *shapes,
                                                  int n_shapes);

/* ember_inputs.flags: bitwise OR of EMBER_FORWARD_*; 0 = exact HF semantics, synchronous.
 * Unknown bits are rejected with EMBER_ERR_INVALID_ARGUMENT. */

/* Padding removal. Tokens whose attention_mask is 0 are dropped before the encoder: the valid
 * tokens of each sequence are packed together, and every projection, FFN and attention runs
 * on valid tokens only (each sequence attends over its own valid tokens). Token types and
 * positions are those of the padded layout (position s of a row is still s, or the caller's
 * position_ids), so masks with holes, left padding and empty rows are all fine. Outputs:
 *   - rows of valid tokens in last_hidden_state and in every hidden_states layer are HF's
 *     (HF gives masked keys zero weight too), within the usual tolerance;
 *   - rows of masked tokens are written as exactly 0 (HF computes values there that no
 *     consumer should read), hidden_states[0] included;
 *   - pooler_output is tanh(dense(row 0)) of the written last_hidden_state, as always: HF's
 *     value when token 0 of the sequence is valid, tanh(pooler bias) when it is masked (in
 *     particular for a sequence with no valid token).
 * Without attention_mask the flag changes nothing. On EMBER_BACKEND_REFERENCE the valid rows are
 * bit-identical to a call without the flag; on EMBER_BACKEND_CPU they agree to float32 rounding
 * (sgemm's result for a row depends on where the row sits in the matrix, and packing moves it).
 * CUDA: the number of valid tokens T sizes every GEMM. The mask is device memory, so unless
 * the caller passes T in ember_inputs.valid_tokens (a tokenizer on the host knows it), the
 * call reads T back after a small packing kernel: one host synchronisation per call (also
 * under EMBER_FORWARD_ASYNC: the host waits for the stream up to that kernel, then enqueues
 * the rest without waiting). With valid_tokens the call synchronises only as any synchronous
 * call does, and an ASYNC call not at all; the device checks the count. Such calls are never
 * captured in a CUDA graph. Padding removal pays for batches with much padding, not for short
 * full batches. */
#define EMBER_FORWARD_SKIP_MASKED 0x1u
/* CUDA: return as soon as the work is enqueued, without waiting for the stream. Values the
 * device finds out of range (ids, token types, positions, mask values other than 0/1) are
 * then not reported by the call: they accumulate in the model's error flag until
 * ember_model_sync() reports them, and the outputs of such a call are not valid. As with any
 * stream work, the inputs must stay unchanged and the outputs unread until the stream has
 * passed the call. Calls on one model stay ordered across streams: a call on another stream
 * waits (on the device) for the model's previous call, whose workspace it reuses.
 * CPU: no effect (the CPU backend checks inputs on the host and returns when done). */
#define EMBER_FORWARD_ASYNC 0x2u

/* Forward inputs. Exactly one of input_ids / inputs_embeds / embedding_output is non-NULL.
 * inputs_embeds / embedding_output hold elements of embeds_dtype: F32 (the default of a zeroed
 * struct) or, for half-precision pipelines, F16 / BF16 (2-byte elements: cast the pointer).
 * The CUDA backend reads them as they are; the CPU backend converts them to f32 internally.
 * Widths: inputs_embeds rows are embedding_size wide (= hidden_size except ELECTRA, whose
 * embeddings_project maps them to hidden_size), embedding_output rows hidden_size wide.
 * Default position ids (position_ids NULL) follow HF per family: 0..S-1 (BERT, DistilBERT,
 * ELECTRA); RoBERTa / XLM-R count from pad_token_id + 1 over the tokens whose id is not
 * pad_token_id, which keep pad_token_id (create_position_ids_from_input_ids), and with
 * inputs_embeds are pad_token_id + 1 .. pad_token_id + S; so there S <= max_position_embeddings
 * - pad_token_id - 1. Explicit position_ids are used as given, as HF does. DistilBERT takes no
 * token_type_ids (EMBER_ERR_INVALID_ARGUMENT).
 * NaN and Inf: every value of inputs_embeds / embedding_output (all B*S*H, masked tokens
 * included) must be finite; otherwise the call fails with EMBER_ERR_INVALID_ARGUMENT naming the
 * first bad element [b][s][h] (HF would instead propagate it silently through the sequence's
 * attention). The CPU checks on the host before computing (one pass over the input) and then
 * writes nothing. CUDA checks on the device, like out-of-range ids: a synchronous call reports
 * it (without the element's index) and its outputs are not valid; under EMBER_FORWARD_ASYNC
 * ember_model_sync reports it. */
typedef struct ember_inputs {
    int batch;   /* B >= 1 */
    int seq_len; /* 1 <= S <= max_position_embeddings */
    const int32_t *input_ids;       /* [B,S], 0 <= id < vocab_size                          */
    const float *inputs_embeds;     /* [B,S,H] raw word vectors (see ember_embed_tokens)    */
    const float *embedding_output;  /* [B,S,H] = HF hidden_states[0]: embeddings skipped    */
    const int32_t *attention_mask;  /* [B,S] of 0/1, NULL = all ones; any pattern            */
    const int32_t *token_type_ids;  /* [B,S], NULL = zeros; ignored with embedding_output   */
    const int32_t *position_ids;    /* [B,S], NULL = the family's default (above); ignored
                                     * with embedding_output                                 */
    unsigned flags;                 /* EMBER_FORWARD_*, 0 by default                         */
    /* With EMBER_FORWARD_SKIP_MASKED and attention_mask only (0 otherwise): the number of
     * nonzero mask values, if the caller knows it; 0 = not given. On CUDA it saves padding
     * removal's host synchronisation. A count that differs from the mask's is
     * EMBER_ERR_INVALID_ARGUMENT (CUDA: found on the device, like a bad id; the outputs of
     * that call are not valid). */
    int valid_tokens;
    /* Element type of inputs_embeds / embedding_output (ignored with input_ids). */
    ember_dtype embeds_dtype;
} ember_inputs;

/* Forward outputs. last_hidden_state is required; the others are optional. All of them hold
 * elements of `dtype`: F32 (the default of a zeroed struct), F16 or BF16 (2-byte elements: cast
 * the pointers). The CUDA backend writes them from its kernels directly (a model computing in
 * f16 that returns f16 rounds nothing twice); the CPU backend computes in f32 and rounds each
 * value once to nearest even. */
typedef struct ember_outputs {
    float *last_hidden_state; /* [B,S,H]                                               */
    float *pooler_output;     /* [B,H] tanh(dense(h[:,0])), NULL = not computed        */
    float *hidden_states;     /* [L+1,B,S,H] like output_hidden_states=True, NULL = no */
    ember_dtype dtype;
    /* Appended in 0.2, in `dtype` like the others. The head's logits, as HF's `outputs.logits` (no activation: what
     * problem_type would apply is the caller's choice), NULL = not computed; a model without
     * a head gives EMBER_ERR_UNSUPPORTED. Sequence classification: [B, num_labels] from token 0
     * (BERT: classifier(pooler_output); RoBERTa / XLM-R: out_proj(tanh(dense(h0))); ELECTRA:
     * out_proj(gelu(dense(h0))); DistilBERT: classifier(relu(pre_classifier(h0)))). Token
     * classification: [B, S, num_labels] = classifier(h) for every token. Computed from the
     * written last_hidden_state, so with EMBER_FORWARD_SKIP_MASKED a masked token 0 (or a
     * masked token, for token classification) reads a zero row. */
    float *logits;
} ember_outputs;

/* Run the encoder. Attention follows HF eager semantics: mask 0 adds float32 min to the
 * score, so a fully masked row attends uniformly over its S keys (never NaN).
 * CUDA: enqueued on `stream`; unless in->flags has EMBER_FORWARD_ASYNC the call waits for
 * the stream before it returns so that out-of-range ids found on the device are reported as
 * EMBER_ERR_OUT_OF_RANGE. Repeated calls with the same shape replay a CUDA graph (see
 * ember_load_options.cuda_graphs). */
EMBER_API ember_status ember_forward(ember_model *model, const ember_inputs *in,
                                     const ember_outputs *out, ember_stream stream);

/* Wait for `stream` (pass the stream of the EMBER_FORWARD_ASYNC calls) and report what the
 * device found in the inputs of the ASYNC calls since the last ember_model_sync
 * (EMBER_ERR_OUT_OF_RANGE / EMBER_ERR_INVALID_ARGUMENT, naming every kind of bad value), then
 * clear it. Synchronous calls report their own bad inputs and never those of ASYNC calls.
 * CPU: returns EMBER_OK (stream must be NULL). */
EMBER_API ember_status ember_model_sync(ember_model *model, ember_stream stream);

/* The word-embedding gather alone: out[n,:] = word_embeddings[ids[n],:], n < n_tokens, rows of
 * embedding_size floats.
 * Feeding the result as inputs_embeds gives bit-identical outputs to input_ids. */
EMBER_API ember_status ember_embed_tokens(ember_model *model, const int32_t *input_ids,
                                          int64_t n_tokens, float *out, ember_stream stream);

/* ember_embed_tokens with out [n_tokens, embedding_size] in out_dtype (F32, F16 or BF16): the word table's
 * values, exact when out_dtype holds the model's compute dtype (e.g. F16 for an f16 model), so
 * that feeding them back as inputs_embeds (embeds_dtype = out_dtype) gives bit-identical
 * outputs to input_ids. flags: 0 or EMBER_FORWARD_ASYNC (CUDA: return without waiting for the
 * stream; ids outside the vocabulary are then reported by ember_model_sync, as for forward). */
EMBER_API ember_status ember_embed_tokens_as(ember_model *model, const int32_t *input_ids,
                                             int64_t n_tokens, ember_dtype out_dtype, void *out,
                                             unsigned flags, ember_stream stream);

typedef enum ember_table {
    EMBER_TABLE_WORD = 0,     /* [vocab_size, E]              */
    EMBER_TABLE_POSITION = 1, /* [max_position_embeddings, E] */
    EMBER_TABLE_TOKEN_TYPE = 2, /* [type_vocab_size, E] (0 rows for DistilBERT) */
} ember_table;

/* Rows and columns of an embedding table (E = embedding_size). */
EMBER_API ember_status ember_table_shape(const ember_model *model, ember_table table,
                                         int64_t *rows, int64_t *cols);

/* Copy an embedding table as F32 into `dst` (host for CPU, device for CUDA), which holds
 * dst_count floats (>= rows x cols). Values are the model's weights in its compute dtype,
 * widened to F32. CUDA: enqueued on `stream` and not waited for; synchronise the stream
 * before reading dst. */
EMBER_API ember_status ember_table_copy(const ember_model *model, ember_table table, float *dst,
                                        size_t dst_count, ember_stream stream);

/* ---- Text in: BERT WordPiece tokenizer ----------------------------------------------------
 * HuggingFace BertTokenizer's rules: clean text (drop NUL, U+FFFD and control characters;
 * whitespace becomes a space), spaces around CJK ideographs, lower-casing and accent stripping
 * (NFD, drop Mn) when asked, split on whitespace and punctuation (Unicode P* and the ASCII
 * symbol ranges), then greedy longest-match WordPiece with "##" continuations; a word longer
 * than 100 characters, or one with a piece not in the vocabulary, becomes [UNK].
 * The reference is transformers 5's BertTokenizer (the `tokenizers` library, what
 * sentence-transformers runs): ids equal it on tests/data/tokenizer's corpus, and where the old
 * pure-Python tokenizer differs (NFC, CJK ranges, unassigned code points, pair truncation) ember
 * does what the fast one does. As there, the special tokens' strings ("[SEP]", "[MASK]", ...)
 * in a text are matched exactly and give their ids. Unicode data is utf8proc's (Unicode 15).
 * Text is UTF-8; invalid UTF-8 is rejected with EMBER_ERR_INVALID_ARGUMENT naming the byte
 * offset (nothing is replaced silently). A tokenizer is immutable after load: any number of
 * threads may use one at once. */
typedef struct ember_tokenizer ember_tokenizer;

typedef struct ember_tokenizer_options {
    int do_lower_case;          /* -1 (default): tokenizer_config.json's, 1 if absent; 0/1 */
    int strip_accents;          /* -1: tokenizer_config.json's, else as do_lower_case; 0/1  */
    int tokenize_chinese_chars; /* -1: tokenizer_config.json's, 1 if absent; 0/1            */
} ember_tokenizer_options;

EMBER_API void ember_tokenizer_options_init(ember_tokenizer_options *opt);

/* `path`: a model directory holding vocab.txt (tokenizer_config.json and
 * special_tokens_map.json are read when present: do_lower_case, strip_accents,
 * tokenize_chinese_chars, the unk/sep/pad/cls/mask tokens, model_max_length), or a vocab.txt
 * file (defaults: bert-base-uncased's). opt may be NULL. vocab.txt is read like tokenizers
 * does: id = line number, lines end at '\n', trailing white space (a CRLF's '\r' too) is
 * dropped, a repeated token keeps its last line. Missing or unreadable vocab.txt:
 * EMBER_ERR_IO; a directory without vocab.txt whose tokenizer is not WordPiece (RoBERTa's
 * merges.txt, XLM-R's sentencepiece.bpe.model, a tokenizer.json of another model type):
 * EMBER_ERR_UNSUPPORTED naming it (such models take input_ids tokenized elsewhere). Invalid UTF-8 or NUL in vocab.txt, no unk token in it, malformed JSON or a
 * field of the wrong type: EMBER_ERR_FORMAT naming the file and line or field. */
EMBER_API ember_status ember_tokenizer_load(const char *path, const ember_tokenizer_options *opt,
                                            ember_tokenizer **out);
EMBER_API void ember_tokenizer_free(ember_tokenizer *tok);

/* Lines of vocab.txt: ids are 0..vocab_size-1 (0 for NULL). */
EMBER_API int32_t ember_tokenizer_vocab_size(const ember_tokenizer *tok);

typedef struct ember_special_tokens {
    int32_t cls, sep, pad, unk, mask; /* -1 when the vocabulary lacks it */
} ember_special_tokens;
EMBER_API ember_status ember_tokenizer_special(const ember_tokenizer *tok,
                                             ember_special_tokens *out);

/* The vocabulary string of an id ("##ing"), NULL when out of range. */
EMBER_API const char *ember_tokenizer_token(const ember_tokenizer *tok, int32_t id);

/* WordPiece ids of one text of `len` bytes (no terminator needed; text may be NULL when len is
 * 0), without added [CLS]/[SEP]. Writes at most `cap` ids into `ids` (may be NULL when cap is
 * 0); *n_ids is always the full count, so a caller can size the buffer with a first call.
 * Nothing past ids[min(cap, *n_ids) - 1] is written. On failure *n_ids is 0. */
EMBER_API ember_status ember_tokenize(const ember_tokenizer *tok, const char *text, size_t len,
                                      int32_t *ids, int64_t cap, int64_t *n_ids);

/* A padded batch, host memory owned by the encoding (free with ember_encoding_free). */
typedef struct ember_encoding {
    int batch;               /* number of texts                                      */
    int seq_len;             /* longest encoded sequence; shorter ones are padded     */
    int32_t *input_ids;      /* [batch, seq_len], padding = the [PAD] id              */
    int32_t *attention_mask; /* [batch, seq_len] 1 for tokens, 0 for padding          */
    int32_t *token_type_ids; /* [batch, seq_len] 0 for [CLS] A [SEP], 1 for B [SEP]   */
    int32_t *lengths;        /* [batch] tokens per sequence, special tokens included */
    int32_t *truncated;      /* [batch] word pieces dropped by truncation (0 = none) */
} ember_encoding;

/* Encode n >= 1 texts as [CLS] A [SEP], or as pairs [CLS] A [SEP] B [SEP] when texts_pair is
 * not NULL (texts and texts_pair: n NUL-terminated UTF-8 strings each). Sequences longer than
 * max_length (>= 2 for singles, >= 3 for pairs, else EMBER_ERR_INVALID_ARGUMENT) are truncated
 * like HF's truncation=True: pieces are dropped from the end, for pairs as tokenizers'
 * "longest_first" (the longer text is cut to what the shorter leaves; when both must be cut
 * each keeps half, the longer, or on a tie the second, the odd piece); out->truncated says
 * how many. max_length 0: tokenizer_config.json's model_max_length, or no truncation when it
 * gives none. The batch is padded to its longest sequence (right, with the pad id; texts of
 * different lengths need a pad token in the vocabulary, else EMBER_ERR_UNSUPPORTED). On
 * failure *out is zeroed and nothing needs freeing; the message names the failing texts[i]. */
EMBER_API ember_status ember_tokenizer_encode(const ember_tokenizer *tok, int n,
                                              const char *const *texts,
                                              const char *const *texts_pair, int max_length,
                                              ember_encoding *out);
EMBER_API void ember_encoding_free(ember_encoding *enc);

/* ---- Sentence embeddings: pooling ------------------------------------------------------ */
typedef enum ember_pooling {
    EMBER_POOL_MEAN = 0, /* mean over tokens with mask 1 (a row with none gives 0)        */
    EMBER_POOL_CLS = 1,  /* row 0 ([CLS])                                                 */
    EMBER_POOL_MAX = 2,  /* per-feature max over tokens with mask 1 (none: -1e9, like
                          * sentence-transformers)                                         */
} ember_pooling;

/* out[b,:] = pool(hidden[b,:,:]) over the tokens of mask[b,:] (NULL = all ones), then, if
 * `normalize`, divided by max(L2 norm, 1e-12). hidden is [batch, seq_len, H] as written by
 * ember_forward, out is [batch, H]; both live where the model's backend keeps tensors (host
 * for CPU, device for CUDA, enqueued on `stream` and not waited for). Accumulation is in
 * double (CPU) or float (CUDA). Mask values must be 0/1: the CPU rejects others with
 * EMBER_ERR_INVALID_ARGUMENT, CUDA does not check them (nonzero counts as 1).
 * These are the formulas of earlier sentence-transformers (2.x). Version 6 takes CLS from
 * the first unmasked token and masks max with -inf: the same vectors for [CLS]-first,
 * right-padded BERT inputs (what ember_tokenizer_encode makes); only a row without any
 * valid token differs (-1e9 here). */
EMBER_API ember_status ember_pool(ember_model *model, const float *hidden,
                                  const int32_t *attention_mask, int batch, int seq_len,
                                  ember_pooling mode, int normalize, float *out,
                                  ember_stream stream);

/* What a sentence-transformers model directory asks for, read as sentence-transformers reads
 * it: modules.json with a Transformer module first (its path: the BERT directory, "" = the
 * model directory), a Pooling module (its config.json: "pooling_mode" or the
 * pooling_mode_*_token(s) flags, read with Python's truth value) and optional Normalize
 * modules; the Transformer directory's sentence_bert_config.json (max_seq_length,
 * do_lower_case). A plain HF directory without modules.json gives the defaults: mean pooling,
 * no normalisation, max_seq_length 0 (= the model's maximum), no lower-casing, path "". What
 * ember cannot reproduce (a Dense module, other pooling modes, two modes concatenated) is
 * EMBER_ERR_UNSUPPORTED naming it. */
typedef struct ember_pooling_config {
    ember_pooling mode;
    int normalize;              /* 1 if a Normalize module follows the pooling           */
    int max_seq_length;         /* 0 when not given                                       */
    int do_lower_case;          /* 1: texts are lower-cased (Python's str.lower) first    */
    char transformer_path[256]; /* the Transformer module's directory, relative ("" = .)  */
} ember_pooling_config;

EMBER_API ember_status ember_pooling_config_load(const char *model_dir, ember_pooling_config *out);

/* Number of CUDA devices visible (0 without a GPU or when built without CUDA). */
EMBER_API int ember_cuda_device_count(void);

/* ---- Version and build ------------------------------------------------------------------- */

/* The version of the library running ("0.2.0"; it differs from EMBER_VERSION_STRING when a
 * program runs with another libember.so than it was compiled with). The numbers go to the
 * pointers that are not NULL. Never NULL. */
EMBER_API const char *ember_version(int *major, int *minor, int *patch);

/* What this libember was built with, and what CUDA it finds when it runs. CUDA versions are
 * CUDA's integers (13000 = 13.0); cuBLAS's are major * 10000 + minor * 100 + patch. Fields are
 * only ever appended. */
typedef struct ember_build {
    const char *version;      /* = ember_version()                                          */
    const char *backends;     /* backends compiled in, space-separated, as the CLI's --backend
                               * names them: "cpu reference" or "cpu reference cuda"        */
    const char *cuda_archs;   /* CUDA architectures compiled for ("80 90"); "" without CUDA */
    int cuda_toolkit_version; /* CUDA toolkit ember was compiled with; 0 without CUDA       */
    /* Found at run time; 0 when built without CUDA or when CUDA cannot say: */
    int cuda_runtime_version; /* the CUDA runtime library loaded (cudaRuntimeGetVersion)    */
    int cuda_driver_version;  /* newest CUDA the driver supports; 0 = no driver installed   */
    int cublas_version;       /* the cuBLASLt library loaded (cublasLtGetVersion)           */
    int cuda_device_count;    /* = ember_cuda_device_count()                                */
} ember_build;

/* Filled once, on the first call (which initialises CUDA, as ember_cuda_device_count does);
 * any thread may call it. Library-owned and immutable: never NULL, never freed. */
EMBER_API const ember_build *ember_build_info(void);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_H */
