"""ctypes view of libember: finding the shared library, the structs of include/ember.h, errors.

The structs below mirror include/ember.h field for field; the header's structs and enums are
append-only, so new fields go at the end here too.
"""
import ctypes
import ctypes.util
import glob
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))  # the repository, when imported from python/


def _candidates():
    """Where libember is looked for, first match wins.

    1. $EMBER_LIBRARY (a path to the .so);
    2. the library installed next to this file by `pip install ./python`;
    3. a shared build in the source tree, when the package is imported from python/
       (build-python/ first: what tools/test.sh and the GPU check build; then build*/);
    4. the system's (ldconfig / LD_LIBRARY_PATH).
    """
    env = os.environ.get("EMBER_LIBRARY")
    if env:
        yield env
        return
    yield from sorted(glob.glob(os.path.join(_HERE, "libember.so*")))
    if os.path.isfile(os.path.join(_ROOT, "include", "ember.h")):
        for d in ["build-python"] + sorted(
                os.path.basename(p) for p in glob.glob(os.path.join(_ROOT, "build*"))):
            yield from sorted(glob.glob(os.path.join(_ROOT, d, "libember.so*")))
    for name in ("libember.so.0", "libember.so"):
        yield name
    found = ctypes.util.find_library("ember")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "ember: cannot load libember. Install the package with `pip install ./python`, or build "
        "ember (cmake -B build-python ...; it makes libember.so) and import from "
        "the source tree, or set EMBER_LIBRARY to the path of libember.so. Tried: "
        + ("; ".join(tried) if tried else "nothing"))


lib, path = _load()

# ---- enums (ember.h; append-only) ----------------------------------------------------------
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_CAPACITY = 9

BACKEND_CPU, BACKEND_CUDA = 0, 1
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2
POOL_MEAN, POOL_CLS, POOL_MAX = 0, 1, 2
FORWARD_SKIP_MASKED = 0x1
FORWARD_ASYNC = 0x2
ACTIVATIONS = {0: "gelu", 1: "gelu_new", 2: "relu"}
ARCHS = {0: "bert", 1: "roberta", 2: "xlm-roberta", 3: "distilbert", 4: "electra"}
HEADS = {0: None, 1: "sequence_classification", 2: "token_classification"}

_i32p = ctypes.POINTER(ctypes.c_int32)
_f32p = ctypes.POINTER(ctypes.c_float)


class Config(ctypes.Structure):
    _fields_ = [
        ("vocab_size", ctypes.c_int),
        ("hidden_size", ctypes.c_int),
        ("num_hidden_layers", ctypes.c_int),
        ("num_attention_heads", ctypes.c_int),
        ("intermediate_size", ctypes.c_int),
        ("max_position_embeddings", ctypes.c_int),
        ("type_vocab_size", ctypes.c_int),
        ("pad_token_id", ctypes.c_int),
        ("layer_norm_eps", ctypes.c_double),
        ("hidden_act", ctypes.c_int),
        ("has_pooler", ctypes.c_int),
        ("arch", ctypes.c_int),
        ("embedding_size", ctypes.c_int),
        ("head", ctypes.c_int),
        ("num_labels", ctypes.c_int),
    ]


class LoadOptions(ctypes.Structure):
    _fields_ = [
        ("backend", ctypes.c_int),
        ("compute_dtype", ctypes.c_int),
        ("device", ctypes.c_int),
        ("max_batch", ctypes.c_int),
        ("max_seq_len", ctypes.c_int),
        ("cuda_graphs", ctypes.c_int),
        ("tuning", ctypes.c_int),
    ]


class Inputs(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int),
        ("seq_len", ctypes.c_int),
        ("input_ids", ctypes.c_void_p),
        ("inputs_embeds", ctypes.c_void_p),
        ("embedding_output", ctypes.c_void_p),
        ("attention_mask", ctypes.c_void_p),
        ("token_type_ids", ctypes.c_void_p),
        ("position_ids", ctypes.c_void_p),
        ("flags", ctypes.c_uint),
        ("valid_tokens", ctypes.c_int),
        ("embeds_dtype", ctypes.c_int),
    ]


class Outputs(ctypes.Structure):
    _fields_ = [
        ("last_hidden_state", ctypes.c_void_p),
        ("pooler_output", ctypes.c_void_p),
        ("hidden_states", ctypes.c_void_p),
        ("dtype", ctypes.c_int),
        ("logits", ctypes.c_void_p),
    ]


class TokenizerOptions(ctypes.Structure):
    _fields_ = [
        ("do_lower_case", ctypes.c_int),
        ("strip_accents", ctypes.c_int),
        ("tokenize_chinese_chars", ctypes.c_int),
    ]


class Encoding(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int),
        ("seq_len", ctypes.c_int),
        ("input_ids", _i32p),
        ("attention_mask", _i32p),
        ("token_type_ids", _i32p),
        ("lengths", _i32p),
        ("truncated", _i32p),
    ]


class SpecialTokens(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("cls", "sep", "pad", "unk", "mask")]


class PoolingConfig(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_int), ("normalize", ctypes.c_int),
                ("max_seq_length", ctypes.c_int), ("do_lower_case", ctypes.c_int),
                ("transformer_path", ctypes.c_char * 256)]


def _proto(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_st = ctypes.c_int
_vp = ctypes.c_void_p
status_string = _proto("ember_status_string", ctypes.c_char_p, _st)
last_error = _proto("ember_last_error", ctypes.c_char_p)
load_options_init = _proto("ember_load_options_init", None, ctypes.POINTER(LoadOptions))
model_load = _proto("ember_model_load", _st, ctypes.c_char_p, ctypes.POINTER(LoadOptions),
                    ctypes.POINTER(_vp))
model_init_random = _proto("ember_model_init_random", _st, ctypes.POINTER(Config),
                           ctypes.c_uint64, ctypes.POINTER(LoadOptions), ctypes.POINTER(_vp))
model_free = _proto("ember_model_free", None, _vp)
model_config = _proto("ember_model_config", _st, _vp, ctypes.POINTER(Config))
model_label = _proto("ember_model_label", ctypes.c_char_p, _vp, ctypes.c_int)
model_reserve = _proto("ember_model_reserve", _st, _vp, ctypes.c_int, ctypes.c_int)
model_sync = _proto("ember_model_sync", _st, _vp, _vp)
forward = _proto("ember_forward", _st, _vp, ctypes.POINTER(Inputs), ctypes.POINTER(Outputs), _vp)
embed_tokens_as = _proto("ember_embed_tokens_as", _st, _vp, _vp, ctypes.c_int64, ctypes.c_int, _vp,
                         ctypes.c_uint, _vp)
pool = _proto("ember_pool", _st, _vp, _vp, _vp, ctypes.c_int, ctypes.c_int, ctypes.c_int,
              ctypes.c_int, _vp, _vp)
pooling_config_load = _proto("ember_pooling_config_load", _st, ctypes.c_char_p,
                             ctypes.POINTER(PoolingConfig))
cuda_device_count = _proto("ember_cuda_device_count", ctypes.c_int)
version = _proto("ember_version", ctypes.c_char_p, _vp, _vp, _vp)
tokenizer_options_init = _proto("ember_tokenizer_options_init", None,
                                ctypes.POINTER(TokenizerOptions))
tokenizer_load = _proto("ember_tokenizer_load", _st, ctypes.c_char_p,
                        ctypes.POINTER(TokenizerOptions), ctypes.POINTER(_vp))
tokenizer_free = _proto("ember_tokenizer_free", None, _vp)
tokenizer_vocab_size = _proto("ember_tokenizer_vocab_size", ctypes.c_int32, _vp)
tokenizer_special = _proto("ember_tokenizer_special", _st, _vp, ctypes.POINTER(SpecialTokens))
tokenizer_token = _proto("ember_tokenizer_token", ctypes.c_char_p, _vp, ctypes.c_int32)
tokenize = _proto("ember_tokenize", _st, _vp, ctypes.c_char_p, ctypes.c_size_t, _i32p,
                  ctypes.c_int64, ctypes.POINTER(ctypes.c_int64))
tokenizer_encode = _proto("ember_tokenizer_encode", _st, _vp, ctypes.c_int,
                          ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
                          ctypes.c_int, ctypes.POINTER(Encoding))
encoding_free = _proto("ember_encoding_free", None, ctypes.POINTER(Encoding))


class EmberError(RuntimeError):
    """A C call failed. `status` is the ember_status number, `status_name` its name
    (EMBER_ERR_OUT_OF_RANGE, ...), `detail` the text of ember_last_error()."""

    def __init__(self, status, detail, call=""):
        self.status = int(status)
        text = status_string(self.status).decode("utf-8", "replace")
        self.status_name = text.split(":", 1)[0]
        self.detail = detail
        self.call = call
        super().__init__("%s%s: %s" % (call + ": " if call else "", self.status_name, detail))


def check(status, call):
    """Raise EmberError for a non-OK status, with this thread's ember_last_error()."""
    if status != OK:
        raise EmberError(status, last_error().decode("utf-8", "replace"), call)
