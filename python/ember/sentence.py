"""ember.SentenceEncoder: sentence-transformers' encode() over ember's tokenizer, forward and
pooling. The steps are separate methods (tokenize, embed_batch, plan_batches) so that a server
can batch requests its own way and reuse them."""
import ctypes
import os

import numpy as np

from . import _lib
from .model import load
from .tokenizer import Tokenizer

_POOL_NAMES = {_lib.POOL_MEAN: "mean", _lib.POOL_CLS: "cls", _lib.POOL_MAX: "max"}
_POOL_ENUM = {v: k for k, v in _POOL_NAMES.items()}


def pooling_config(model_dir):
    """What the model directory asks for (ember_pooling_config_load): a dict with pooling
    ('mean' | 'cls' | 'max'), normalize (bool), max_seq_length (0 = not given), do_lower_case
    (bool: sentence-transformers lower-cases texts first) and transformer_path (the folder of
    the BERT model and its tokenizer, relative; "" = the directory itself)."""
    pc = _lib.PoolingConfig()
    _lib.check(_lib.pooling_config_load(os.fspath(model_dir).encode(), ctypes.byref(pc)),
               "ember_pooling_config_load")
    return {"pooling": _POOL_NAMES[pc.mode], "normalize": bool(pc.normalize),
            "max_seq_length": pc.max_seq_length, "do_lower_case": bool(pc.do_lower_case),
            "transformer_path": pc.transformer_path.decode()}


class SentenceEncoder:
    """A sentence-transformers model directory (modules.json with Pooling and optional
    Normalize, sentence_bert_config.json's max_seq_length) or a plain BERT directory (mean
    pooling, no normalisation). A module ember cannot reproduce fails at load, naming it.

        enc = ember.SentenceEncoder(".pydeps/all-MiniLM-L6-v2")
        emb = enc.encode(["A man is eating food.", "A man is eating a piece of bread."])
    """

    def __init__(self, model_dir, device="cpu", dtype="float32", max_seq_length=None,
                 batch_size=32):
        cfg = pooling_config(model_dir)
        self.pooling = cfg["pooling"]
        self.normalize = cfg["normalize"]
        self.do_lower_case = cfg["do_lower_case"]
        # the Transformer module's folder holds the BERT model and its tokenizer
        bert_dir = os.path.join(os.fspath(model_dir), cfg["transformer_path"])
        self.tokenizer = Tokenizer(bert_dir)
        self.model = load(bert_dir, device=device, dtype=dtype, max_batch=batch_size,
                          max_seq_len=8)
        max_pos = self.model.config["max_position_embeddings"]
        limit = max_seq_length or cfg["max_seq_length"] or max_pos
        self.max_seq_length = min(int(limit), max_pos)
        self.model.reserve(batch_size, self.max_seq_length)
        self.device = self.model.device

    def get_sentence_embedding_dimension(self):
        return self.model.config["hidden_size"]

    # ---- the steps ------------------------------------------------------------------------
    def tokenize(self, texts):
        """A padded batch of texts, truncated at max_seq_length like sentence-transformers
        (which lower-cases them first when sentence_bert_config.json says do_lower_case)."""
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        return self.tokenizer.encode(texts, max_length=self.max_seq_length)

    @staticmethod
    def plan_batches(texts, batch_size):
        """Index batches, longest texts first (less padding per batch)."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]

    def embed_batch(self, enc, normalize=None, output_value="sentence_embedding",
                    skip_masked=None):
        """One padded batch (a tokenize() result) -> float32 [B, H] sentence embeddings, or,
        for output_value='token_embeddings', the [B, S, H] hidden states. NumPy on the CPU;
        torch tensors on the model's GPU for a CUDA model. skip_masked: padding removal
        (None: on the CPU only; True also on CUDA, where it pays for batches with much
        padding, e.g. a server's batches of unequal texts)."""
        norm = self.normalize if normalize is None else bool(normalize)
        m = self.model
        ids, mask, types = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
        valid = int(np.count_nonzero(mask))
        if m.device != "cpu":
            import torch  # noqa: PLC0415 - a CUDA SentenceEncoder works in torch tensors
            dev = m.device
            ids, mask, types = (torch.from_numpy(x).to(dev, non_blocking=True)
                                for x in (ids, mask, types))
        # padding removal: bit-identical rows on the CPU, less work for padded batches; on CUDA
        # the count from the host spares the synchronisation
        skip = m.device == "cpu" if skip_masked is None else bool(skip_masked)
        if not m.config["type_vocab_size"]:
            types = None  # DistilBERT takes no token types
        out = m(input_ids=ids, attention_mask=mask, token_type_ids=types,
                skip_masked=skip, valid_tokens=valid if skip else None,
                output_dtype="float32")  # ember_pool reads f32
        hidden = out.last_hidden_state
        if output_value == "token_embeddings":
            return hidden
        return m.pool(hidden, mask, self.pooling, normalize=norm)

    # ---- sentence-transformers' encode ------------------------------------------------------
    def encode(self, sentences, batch_size=32, show_progress_bar=None,
               output_value="sentence_embedding", precision="float32", convert_to_numpy=True,
               convert_to_tensor=False, device=None, normalize_embeddings=None):
        """sentence-transformers' SentenceTransformer.encode: a str gives a 1-D [H] embedding,
        a list a 2-D [N, H] NumPy array (convert_to_tensor=True: one torch tensor on the model's
        device; convert_to_numpy=False: a list of torch tensors). Normalisation follows the
        model's modules (a Normalize module normalises); normalize_embeddings=True normalises
        in any case, as sentence-transformers does (None and False leave the modules' choice).
        output_value='token_embeddings' gives a list of [tokens, H] arrays (padding cut).
        precision other than 'float32' and device other than the model's are not supported."""
        if precision not in (None, "float32"):
            raise ValueError("precision: only 'float32' is supported, got %r" % (precision,))
        if device is not None and str(device) not in (self.device, "cuda" if
                                                      self.device == "cuda:0" else self.device):
            raise ValueError("device: this encoder was loaded on %s, got %r (load another "
                             "SentenceEncoder for another device)" % (self.device, device))
        if output_value not in ("sentence_embedding", "token_embeddings"):
            raise ValueError("output_value: expected 'sentence_embedding' or 'token_embeddings', "
                             "got %r" % (output_value,))
        if convert_to_tensor:
            convert_to_numpy = False
        if output_value != "sentence_embedding":
            convert_to_tensor = convert_to_numpy = False
        singular = isinstance(sentences, str)
        texts = [sentences] if singular else list(sentences)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError("sentences[%d]: expected str, got %s" % (i, type(t).__name__))
        if int(batch_size) < 1:
            raise ValueError("batch_size: expected >= 1, got %r" % (batch_size,))
        norm = True if normalize_embeddings else None
        rows = [None] * len(texts)
        for idx in self.plan_batches(texts, int(batch_size)):
            enc = self.tokenize([texts[i] for i in idx])
            got = self.embed_batch(enc, normalize=norm, output_value=output_value)
            if output_value == "token_embeddings":
                for k, i in enumerate(idx):
                    rows[i] = got[k, :int(enc["lengths"][k])]
            else:
                for k, i in enumerate(idx):
                    rows[i] = got[k]
        if self.model.device != "cpu":
            self.model.synchronize()  # bad values the device found surface here
        return self._convert(rows, singular, convert_to_numpy, convert_to_tensor)

    def _convert(self, rows, singular, to_numpy, to_tensor):
        on_cpu = self.model.device == "cpu"
        if to_tensor:
            torch = _torch()
            if not rows:
                res = torch.tensor([], device=self.device)
            elif on_cpu:
                res = torch.from_numpy(np.stack(rows))
            else:
                res = torch.stack(rows)
        elif to_numpy:
            if on_cpu:
                res = np.stack(rows) if rows else np.asarray([], dtype=np.float32)
            else:
                res = (_torch().stack(rows).cpu().numpy() if rows
                       else np.asarray([], dtype=np.float32))
        else:
            res = rows
            try:
                torch = _torch()
                res = [torch.from_numpy(np.ascontiguousarray(r)) if isinstance(r, np.ndarray)
                       else r for r in rows]
            except ImportError:  # without torch the rows stay NumPy arrays
                pass
        if singular:
            return res[0]
        return res


def _torch():
    import torch  # noqa: PLC0415 - optional
    return torch


__all__ = ["SentenceEncoder", "pooling_config"]
