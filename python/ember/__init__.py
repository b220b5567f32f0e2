"""ember: HuggingFace BertModel inference on the CPU or an NVIDIA GPU, over libember (C).

    import ember
    m = ember.load("path/to/bert", device="cuda", dtype="float16")
    out = m(input_ids=ids, attention_mask=mask)        # torch in -> torch out, same device
    out.last_hidden_state, out.pooler_output, out.hidden_states

    enc = ember.SentenceEncoder("path/to/all-MiniLM-L6-v2")
    emb = enc.encode(["A man is eating food.", "A man is eating a piece of bread."])

NumPy is required; torch (and CuPy, JAX) only when their arrays are passed. C errors raise
ember.EmberError with the status name and ember_last_error()'s text.
"""
from . import _lib
from ._lib import EmberError, path as library_path
from .model import Model, ModelOutput, load, random_model
from .sentence import SentenceEncoder, pooling_config
from .tokenizer import BatchEncoding, Tokenizer

# The loaded libember's version: the package is built from the same tree and its metadata
# version is read from the same macros of include/ember.h (pyproject.toml).
__version__ = _lib.version(None, None, None).decode()


def cuda_device_count():
    """CUDA devices libember sees (0 without a GPU or when built without CUDA)."""
    from . import _lib
    return int(_lib.cuda_device_count())


__all__ = ["EmberError", "Model", "ModelOutput", "load", "random_model", "SentenceEncoder",
           "pooling_config", "Tokenizer", "BatchEncoding", "cuda_device_count", "library_path",
           "__version__"]
