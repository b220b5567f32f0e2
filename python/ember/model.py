"""ember.load and the Model: HuggingFace BertModel's call, over ember_forward."""
import ctypes
import os
import threading

import numpy as np

from . import _arrays, _lib
from ._arrays import device_str

_DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "f32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "f16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
_DTYPE_ENUM = {"float32": _lib.DTYPE_F32, "float16": _lib.DTYPE_F16, "bfloat16": _lib.DTYPE_BF16}
_ID_NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
_ENTRIES = ("input_ids", "inputs_embeds", "embedding_output")


def parse_device(device):
    """'cpu', 'cuda', 'cuda:N', an int N, or a torch.device -> ("cpu", None) / ("cuda", N)."""
    if isinstance(device, int) and not isinstance(device, bool):
        return ("cuda", device)
    text = str(device) if device is not None else "cpu"
    if text == "cpu":
        return ("cpu", None)
    if text == "cuda":
        return ("cuda", 0)
    if text.startswith("cuda:") and text[5:].isdigit():
        return ("cuda", int(text[5:]))
    raise ValueError("device: expected 'cpu', 'cuda' or 'cuda:N', got %r" % (device,))


def parse_dtype(dtype):
    """'float32' | 'float16' | 'bfloat16' (or torch / NumPy dtypes, 'fp16', 'bf16', ...)."""
    text = str(dtype).replace("torch.", "")
    if text not in _DTYPE_NAMES:
        raise ValueError("dtype: expected 'float32', 'float16' or 'bfloat16', got %r" % (dtype,))
    return _DTYPE_NAMES[text]


class ModelOutput:
    """HF's BaseModelOutputWithPooling, by attribute or by key: last_hidden_state [B,S,H],
    pooler_output [B,H] (None unless pooler=True), hidden_states (a tuple of L+1 [B,S,H] views
    of one [L+1,B,S,H] array, None unless output_hidden_states=True), logits (a head's
    [B,num_labels] or [B,S,num_labels], None unless logits=True)."""
    __slots__ = ("last_hidden_state", "pooler_output", "hidden_states", "logits")

    def __init__(self, last_hidden_state, pooler_output=None, hidden_states=None, logits=None):
        self.last_hidden_state = last_hidden_state
        self.pooler_output = pooler_output
        self.hidden_states = hidden_states
        self.logits = logits

    def __getitem__(self, key):
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]

    def keys(self):
        return [k for k in self.__slots__ if getattr(self, k) is not None]

    def to_tuple(self):
        return tuple(getattr(self, k) for k in self.keys())

    def __repr__(self):
        parts = ["%s=%s" % (k, _shape_of(getattr(self, k))) for k in self.keys()]
        return "ModelOutput(%s)" % ", ".join(parts)


def _shape_of(x):
    if isinstance(x, tuple):
        return "(%d x %s)" % (len(x), tuple(x[0].shape))
    return str(tuple(x.shape))


class Model:
    """A loaded ember model. Call it like HF's BertModel; see ember.load."""

    def __init__(self, handle, device, dtype, model_dir=None):
        self._h = ctypes.c_void_p(handle)
        self.device = device_str(device)
        self._device = device
        self.dtype = dtype
        self.model_dir = model_dir
        cfg = _lib.Config()
        _lib.check(_lib.model_config(self._h, ctypes.byref(cfg)), "ember_model_config")
        self._cfg = cfg
        self.config = {
            "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "intermediate_size": cfg.intermediate_size,
            "max_position_embeddings": cfg.max_position_embeddings,
            "type_vocab_size": cfg.type_vocab_size,
            "pad_token_id": cfg.pad_token_id,
            "layer_norm_eps": cfg.layer_norm_eps,
            "hidden_act": _lib.ACTIVATIONS.get(cfg.hidden_act, str(cfg.hidden_act)),
            "has_pooler": bool(cfg.has_pooler),
            "model_type": _lib.ARCHS.get(cfg.arch, str(cfg.arch)),
            "embedding_size": cfg.embedding_size,
            "head": _lib.HEADS.get(cfg.head, str(cfg.head)),
            "num_labels": cfg.num_labels,
        }
        # HF's config.id2label for a model with a head (ember_model_label)
        self.id2label = {i: _lib.model_label(self._h, i).decode() for i in range(cfg.num_labels)}
        self._grow_lock = threading.Lock()

    # ---- lifetime ------------------------------------------------------------------------
    def close(self):
        """Free the model now (it is freed when collected otherwise)."""
        h, self._h = self._h, None
        if h is not None and h.value:
            _lib.model_free(h)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if self._h is None:
            raise ValueError("the model was closed")
        return self._h

    def __repr__(self):
        c = self.config
        return "ember.Model(%s, device=%s, dtype=%s, layers=%d, hidden=%d)" % (
            self.model_dir or "random", self.device, self.dtype, c["num_hidden_layers"],
            c["hidden_size"])

    # ---- workspace ------------------------------------------------------------------------
    def reserve(self, max_batch, max_seq_len):
        """Grow the workspace to max_batch x max_seq_len tokens (ember_model_reserve). Calls
        that need more grow it by themselves; this avoids the growth (and, on CUDA, the
        device synchronisation of freeing the old workspace) inside a timed loop."""
        _lib.check(_lib.model_reserve(self._handle(), int(max_batch), int(max_seq_len)),
                   "ember_model_reserve")

    def synchronize(self):
        """CUDA: wait for the current stream and raise EmberError for bad values the device
        found in the inputs of the calls since the last synchronize() (ids, token types or
        positions outside their tables, mask values other than 0/1, NaN/Inf in embeddings).
        Calls on CUDA tensors do not wait for the device, as torch ops do not; this is where
        their input errors surface. CPU: nothing to do (inputs are checked before the call)."""
        if self._device[0] == "cpu":
            return
        stream = _default_device_stream(self._device)
        _lib.check(_lib.model_sync(self._handle(), stream), "ember_model_sync")

    # ---- forward --------------------------------------------------------------------------
    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None,
                 position_ids=None, inputs_embeds=None, embedding_output=None,
                 output_hidden_states=False, pooler=False, skip_masked=False, valid_tokens=None,
                 output_dtype=None, logits=False):
        """Run the encoder on exactly one of input_ids [B,S], inputs_embeds [B,S,E] (raw word
        vectors, as embed_tokens returns; E = embedding_size, hidden_size except ELECTRA) or
        embedding_output [B,S,H] (HF's hidden_states[0]). logits=True: also the head's logits
        (models with a classification head; see config["head"] and id2label).

        NumPy arrays in give NumPy arrays out. Torch tensors in give torch tensors out on the
        same device; CUDA tensors are read in place and the work goes on torch's current
        stream without a host synchronisation (bad values the device finds are reported by
        synchronize()). Ids, masks, types and positions may be any integer dtype (int32 is
        used in place; others are narrowed on their device), the mask also bool; embeddings
        are float32, float16 or bfloat16, read as they are.

        Outputs are in output_dtype: by default the embeddings' dtype when they are the entry,
        else the model's dtype (NumPy has no bfloat16: float32 then). A float16 model fed
        float16 embeddings returns float16 tensors written by its kernels, with no conversion
        pass on either side.

        skip_masked drops masked tokens before the encoder (their output rows are 0; see
        EMBER_FORWARD_SKIP_MASKED). On CUDA it reads the number of valid tokens back (one host
        synchronisation) unless valid_tokens gives it."""
        if pooler and not self._cfg.has_pooler:
            raise ValueError("pooler=True: this checkpoint has no pooler (pooler.dense.* absent)")
        if logits and not self._cfg.num_labels:
            raise ValueError("logits=True: this model has no classification head")
        given = {"input_ids": input_ids, "inputs_embeds": inputs_embeds,
                 "embedding_output": embedding_output}
        named = [k for k in _ENTRIES if given[k] is not None]
        if len(named) != 1:
            raise ValueError(
                "exactly one of input_ids, inputs_embeds, embedding_output must be given, got "
                + ("none" if not named else " and ".join(named)))
        entry = named[0]
        arrs = {
            entry: _arrays.view(entry, given[entry]),
            "attention_mask": _arrays.view("attention_mask", attention_mask),
            "token_type_ids": _arrays.view("token_type_ids", token_type_ids),
            "position_ids": _arrays.view("position_ids", position_ids),
        }
        e = arrs[entry]
        H = self._cfg.hidden_size
        W = self._cfg.embedding_size if entry == "inputs_embeds" else H
        if entry == "input_ids":
            if len(e.shape) != 2:
                raise ValueError("input_ids: expected a 2-D [batch, seq_len] array, got shape %s"
                                 % (e.shape,))
        elif len(e.shape) != 3 or e.shape[2] != W:
            raise ValueError("%s: expected a 3-D [batch, seq_len, %s = %d] array, got "
                             "shape %s" % (entry, "embedding_size" if W != H else "hidden_size",
                                            W, e.shape))
        B, S = e.shape[0], e.shape[1]
        for k, a in arrs.items():
            if a is None:
                continue
            if k != entry and a.shape != (B, S):
                raise ValueError("%s: expected shape (%d, %d) like %s, got %s"
                                 % (k, B, S, entry, a.shape))
            _check_dtype(k, a)
            if not a.contiguous:
                raise ValueError("%s: expected a C-contiguous array (call .contiguous() or "
                                 "numpy.ascontiguousarray), got strides of a view" % k)
        staged = self._place(entry, arrs)
        for k in _ID_NAMES:
            a = arrs[k] if k in arrs else None
            if a is not None and a.dtype != "int32":
                arrs[k] = a.fw.narrow_int32(a, clamp=a.dtype != "bool")
        fw, dev = arrs[entry].fw, arrs[entry].device
        odt = self._output_dtype(output_dtype, e.dtype if entry != "input_ids" else None,
                                 fw if not staged else _arrays.Numpy)
        L = self._cfg.num_hidden_layers
        hs = fw.empty((L + 1, B, S, H), odt, dev) if output_hidden_states else None
        last = fw.empty((B, S, H), odt, dev)
        pool = fw.empty((B, H), odt, dev) if pooler else None
        NL = self._cfg.num_labels
        lg = None
        if logits:
            shape = (B, S, NL) if self._cfg.head == 2 else (B, NL)
            lg = fw.empty(shape, odt, dev)

        inp = _lib.Inputs()
        inp.batch, inp.seq_len = B, S
        if entry != "input_ids":
            inp.embeds_dtype = _DTYPE_ENUM[arrs[entry].dtype]
        for k in _ENTRIES + _ID_NAMES[1:]:
            a = arrs.get(k)
            setattr(inp, k, a.ptr if a is not None else None)
        flags = 0
        mask = arrs["attention_mask"]
        if valid_tokens is not None and not (skip_masked and mask is not None):
            raise ValueError("valid_tokens: only read with skip_masked=True and an "
                             "attention_mask")
        if skip_masked:
            flags |= _lib.FORWARD_SKIP_MASKED
            if valid_tokens is not None:
                inp.valid_tokens = int(valid_tokens)
            elif mask is not None and mask.device[0] == "cpu":
                inp.valid_tokens = int(np.count_nonzero(mask.obj))
        on_gpu = dev[0] == "cuda"
        if on_gpu and not staged:
            flags |= _lib.FORWARD_ASYNC
        inp.flags = flags
        out = _lib.Outputs()
        out.dtype = _DTYPE_ENUM[odt]
        out.last_hidden_state = _ptr(last)
        out.pooler_output = _ptr(pool) if pool is not None else None
        out.hidden_states = _ptr(hs) if hs is not None else None
        out.logits = _ptr(lg) if lg is not None else None
        stream = fw.stream(dev)
        self._forward(inp, out, stream, B, S)
        if staged:  # host arrays given to a CUDA model: results back to the host
            _lib.check(_lib.model_sync(self._handle(), stream), "ember_model_sync")
            last, pool, hs, lg = (_to_numpy(x) for x in (last, pool, hs, lg))
        else:
            last, pool, hs, lg = (fw.wrap_out(x, e) if x is not None else None
                                  for x in (last, pool, hs, lg))
        return ModelOutput(last, pool, tuple(hs[i] for i in range(L + 1)) if hs is not None
                           else None, lg)

    def _output_dtype(self, requested, embeds_dtype, fw):
        if requested is not None:
            dt = parse_dtype(requested)
        else:
            dt = embeds_dtype or self.dtype
        if dt == "bfloat16" and fw is _arrays.Numpy:
            if requested is not None:
                raise TypeError("output_dtype: NumPy has no bfloat16; use float32 or float16, "
                                "or torch tensors")
            dt = "float32"
        return dt

    def _forward(self, inp, out, stream, B, S):
        h = self._handle()
        st = _lib.forward(h, ctypes.byref(inp), ctypes.byref(out), stream)
        if st == _lib.ERR_CAPACITY:
            # the workspace is checked before anything is read or written: grow it, run again
            with self._grow_lock:
                self.reserve(B, S)
            st = _lib.forward(h, ctypes.byref(inp), ctypes.byref(out), stream)
        _lib.check(st, "ember_forward")

    def _place(self, entry, arrs):
        """Check devices; host arrays for a CUDA model are copied to it (returns True then)."""
        model_dev = self._device
        e = arrs[entry]
        for k, a in arrs.items():
            if a is not None and a.device != e.device:
                raise ValueError("%s: expected an array on %s like %s, got one on %s"
                                 % (k, device_str(e.device), entry, device_str(a.device)))
        if e.device == model_dev:
            return False
        if model_dev[0] == "cpu":
            raise ValueError("%s: expected an array on the CPU (the model is on cpu), got one on "
                             "%s" % (entry, device_str(e.device)))
        if e.fw is not _arrays.Numpy:
            raise ValueError("%s: expected a tensor on %s (the model's device), got one on %s"
                             % (entry, self.device, device_str(e.device)))
        stage = _stager()
        for k, a in list(arrs.items()):
            if a is not None:
                arrs[k] = stage.view(stage.to_device(a.obj, model_dev))
        return True

    # ---- pooling ------------------------------------------------------------------------
    def pool(self, hidden, attention_mask=None, mode="mean", normalize=False):
        """Sentence-transformers pooling (ember_pool) of hidden [B,S,H] float32 over the tokens
        of attention_mask [B,S] (None = all): mode 'mean' | 'cls' | 'max', then L2
        normalisation if asked. Returns [B,H] where hidden lives (NumPy or torch)."""
        modes = {"mean": _lib.POOL_MEAN, "cls": _lib.POOL_CLS, "max": _lib.POOL_MAX}
        if mode not in modes:
            raise ValueError("mode: expected 'mean', 'cls' or 'max', got %r" % (mode,))
        h = _arrays.view("hidden", hidden)
        if h.dtype != "float32":
            raise TypeError("hidden: expected float32, got %s" % h.dtype)
        if len(h.shape) != 3 or h.shape[2] != self._cfg.hidden_size:
            raise ValueError("hidden: expected a 3-D [batch, seq_len, hidden_size = %d] array, "
                             "got shape %s" % (self._cfg.hidden_size, h.shape))
        B, S = h.shape[0], h.shape[1]
        arrs = {"hidden": h, "attention_mask": _arrays.view("attention_mask", attention_mask)}
        for k, a in arrs.items():
            if a is None:
                continue
            if k != "hidden":
                if a.shape != (B, S):
                    raise ValueError("attention_mask: expected shape (%d, %d) like hidden, got %s"
                                     % (B, S, a.shape))
                _check_dtype(k, a)
            if not a.contiguous:
                raise ValueError("%s: expected a C-contiguous array" % k)
        staged = self._place("hidden", arrs)
        m = arrs["attention_mask"]
        if m is not None and m.dtype != "int32":
            m = arrs["attention_mask"] = m.fw.narrow_int32(m, clamp=m.dtype != "bool")
        h = arrs["hidden"]
        out = h.fw.empty((B, self._cfg.hidden_size), "float32", h.device)
        stream = h.fw.stream(h.device)
        st = _lib.pool(self._handle(), h.ptr, m.ptr if m is not None else None, B, S,
                       modes[mode], 1 if normalize else 0, _ptr(out), stream)
        _lib.check(st, "ember_pool")
        if staged:
            _lib.check(_lib.model_sync(self._handle(), stream), "ember_model_sync")
            return _to_numpy(out)
        return h.fw.wrap_out(out, h)

    # ---- embeddings -----------------------------------------------------------------------
    def embed_tokens(self, input_ids, dtype=None):
        """The word-embedding gather (ember_embed_tokens_as): input_ids of any shape ->
        [..., embedding_size] in dtype (default: the model's dtype; float32 for NumPy when the
        model is bfloat16). Feeding the result as inputs_embeds gives bit-identical outputs to
        input_ids. On CUDA it does not wait for the GPU (bad ids raise at synchronize())."""
        a = _arrays.view("input_ids", input_ids)
        _check_dtype("input_ids", a)
        if not a.contiguous:
            raise ValueError("input_ids: expected a C-contiguous array")
        if a.size < 1:
            raise ValueError("input_ids: expected at least one id, got shape %s" % (a.shape,))
        staged = self._place("input_ids", {"input_ids": a})
        if staged:
            stage = _stager()
            a = stage.view(stage.to_device(a.obj, self._device))
        if a.dtype != "int32":
            a = a.fw.narrow_int32(a, clamp=True)
        odt = self._output_dtype(dtype, None, _arrays.Numpy if staged else a.fw)
        out = a.fw.empty(a.shape + (self._cfg.embedding_size,), odt, a.device)
        flags = _lib.FORWARD_ASYNC if a.device[0] == "cuda" and not staged else 0
        st = _lib.embed_tokens_as(self._handle(), a.ptr, a.size, _DTYPE_ENUM[odt], _ptr(out),
                                  flags, a.fw.stream(a.device))
        _lib.check(st, "ember_embed_tokens_as")
        return _to_numpy(out) if staged else a.fw.wrap_out(out, a)


def _check_dtype(name, a):
    if name in _ENTRIES[1:]:
        if a.dtype not in _arrays.FLOAT_DTYPES:
            raise TypeError("%s: expected float32, float16 or bfloat16, got %s"
                            % (name, a.dtype))
    elif a.dtype not in _arrays.INT_DTYPES and not (name == "attention_mask" and
                                                     a.dtype == "bool"):
        raise TypeError("%s: expected an integer array%s, got %s" % (
            name, " (or bool)" if name == "attention_mask" else "", a.dtype))


def _ptr(x):
    return _arrays.view("output", x).ptr


def _to_numpy(x):
    if x is None or isinstance(x, np.ndarray):
        return x
    if hasattr(x, "cpu"):  # torch
        return x.cpu().numpy()
    return x.get()  # cupy


def _default_device_stream(device):
    """The stream synchronize() waits for: torch's current stream if torch is loaded, else
    CuPy's, else the legacy default stream."""
    import sys  # noqa: PLC0415
    if "torch" in sys.modules:
        return _arrays.Torch.stream(device)
    if "cupy" in sys.modules:
        return _arrays.Cupy.stream(device)
    return None


class _Stager:
    """Copies host arrays to a CUDA model's device with torch (or CuPy)."""

    def __init__(self, fw, to_device):
        self.view, self.to_device = fw.view, to_device


def _stager():
    try:
        import torch  # noqa: PLC0415

        return _Stager(_arrays.Torch, lambda x, dev: torch.from_numpy(
            np.ascontiguousarray(x)).to("cuda:%d" % dev[1]))
    except ImportError:
        pass
    try:
        import cupy  # noqa: PLC0415

        def to_dev(x, dev):
            with cupy.cuda.Device(dev[1]):
                return cupy.asarray(x)
        return _Stager(_arrays.Cupy, to_dev)
    except ImportError:
        raise TypeError("NumPy arrays given to a CUDA model are copied to the GPU with torch or "
                        "cupy, and neither is installed") from None


def _load_options(device, dtype, max_batch, max_seq_len, cuda_graphs):
    dev = parse_device(device)
    dt = parse_dtype(dtype)
    opt = _lib.LoadOptions()
    _lib.load_options_init(ctypes.byref(opt))
    opt.backend = _lib.BACKEND_CPU if dev[0] == "cpu" else _lib.BACKEND_CUDA
    opt.compute_dtype = _DTYPE_ENUM[dt]
    opt.device = dev[1] or 0
    opt.max_batch, opt.max_seq_len = int(max_batch), int(max_seq_len)
    opt.cuda_graphs = 1 if cuda_graphs else 0
    return dev, dt, opt


def load(model_dir, device="cpu", dtype="float32", max_batch=8, max_seq_len=128,
         cuda_graphs=True):
    """Load a HuggingFace BERT directory (config.json + model.safetensors, or sharded).

    device: 'cpu', 'cuda' or 'cuda:N'. dtype: the compute dtype, 'float32', 'float16' or
    'bfloat16' (the CPU computes in float32 only). max_batch x max_seq_len sizes the workspace
    at load; a larger call grows it once (see Model.reserve)."""
    dev, dt, opt = _load_options(device, dtype, max_batch, max_seq_len, cuda_graphs)
    h = ctypes.c_void_p()
    path = os.fspath(model_dir)
    _lib.check(_lib.model_load(path.encode(), ctypes.byref(opt), ctypes.byref(h)),
               "ember_model_load")
    return Model(h.value, dev, dt, path)


def random_model(config, seed=0, device="cpu", dtype="float32", max_batch=8, max_seq_len=128):
    """A model with random weights (ember_model_init_random), for tests and benchmarks.
    config: a dict with Model.config's keys (hidden_act 'gelu' | 'gelu_new' | 'relu';
    model_type and head as Model.config names them)."""
    dev, dt, opt = _load_options(device, dtype, max_batch, max_seq_len, True)
    c = _lib.Config()
    names = {"hidden_act": {v: k for k, v in _lib.ACTIVATIONS.items()},
             "arch": {v: k for k, v in _lib.ARCHS.items()},
             "head": {v: k for k, v in _lib.HEADS.items()}}
    keys = {"arch": "model_type"}  # Config field -> Model.config key
    for name, _ in _lib.Config._fields_:
        key = keys.get(name, name)
        if key in config:
            v = config[key]
            setattr(c, name, names[name][v] if name in names else v)
    h = ctypes.c_void_p()
    _lib.check(_lib.model_init_random(ctypes.byref(c), int(seed), ctypes.byref(opt),
                                      ctypes.byref(h)), "ember_model_init_random")
    return Model(h.value, dev, dt)
