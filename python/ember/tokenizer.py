"""ember.Tokenizer: HF BertTokenizer's WordPiece (ember_tokenizer_*), padded batches as NumPy."""
import ctypes
import os

import numpy as np

from . import _lib


class BatchEncoding(dict):
    """HF's names: input_ids, attention_mask, token_type_ids (int32 [batch, seq_len], padded on
    the right to the longest sequence), plus lengths [batch] (tokens per sequence, special
    tokens included) and truncated [batch] (word pieces dropped). Keys and attributes both
    work."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _utf8(name, i, text):
    if not isinstance(text, str):
        raise TypeError("%s[%d]: expected str, got %s" % (name, i, type(text).__name__))
    b = text.encode("utf-8", "surrogatepass")
    if b"\0" in b:
        # C strings end at NUL; BertTokenizer drops NUL anyway, so removing it changes nothing
        b = b.replace(b"\0", b"")
    return b


class Tokenizer:
    """ember's WordPiece tokenizer for a model directory holding vocab.txt (or a vocab.txt
    path). do_lower_case / strip_accents / tokenize_chinese_chars: None = tokenizer_config.json's.
    Immutable after load: safe to share between threads."""

    def __init__(self, model_dir, do_lower_case=None, strip_accents=None,
                 tokenize_chinese_chars=None):
        opt = _lib.TokenizerOptions()
        _lib.tokenizer_options_init(ctypes.byref(opt))
        for k, v in (("do_lower_case", do_lower_case), ("strip_accents", strip_accents),
                     ("tokenize_chinese_chars", tokenize_chinese_chars)):
            if v is not None:
                setattr(opt, k, 1 if v else 0)
        h = ctypes.c_void_p()
        self.path = os.fspath(model_dir)
        _lib.check(_lib.tokenizer_load(self.path.encode(), ctypes.byref(opt), ctypes.byref(h)),
                   "ember_tokenizer_load")
        self._h = h
        sp = _lib.SpecialTokens()
        _lib.check(_lib.tokenizer_special(h, ctypes.byref(sp)), "ember_tokenizer_special")
        self.special_ids = {k: getattr(sp, k) for k in ("cls", "sep", "pad", "unk", "mask")}
        self.vocab_size = int(_lib.tokenizer_vocab_size(h))

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None and h.value:
            _lib.tokenizer_free(h)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __len__(self):
        return self.vocab_size

    def tokenize(self, text):
        """Word-piece ids of one text, without [CLS]/[SEP] (a list of int)."""
        b = _utf8("text", 0, text)
        n = ctypes.c_int64()
        cap = len(b) + 8
        while True:
            buf = (ctypes.c_int32 * cap)()
            _lib.check(_lib.tokenize(self._h, b, len(b), buf, cap, ctypes.byref(n)),
                       "ember_tokenize")
            if n.value <= cap:
                return list(buf[:n.value])
            cap = n.value

    def convert_ids_to_tokens(self, ids):
        out = []
        for i in ids:
            t = _lib.tokenizer_token(self._h, int(i))
            out.append(t.decode("utf-8") if t is not None else None)
        return out

    def encode(self, texts, pairs=None, max_length=None):
        """Encode a text or a list of texts (with `pairs`: [CLS] A [SEP] B [SEP]) into one padded
        batch, truncated to max_length tokens like HF's truncation=True (None: the tokenizer
        config's model_max_length, or no truncation). Returns a BatchEncoding of NumPy int32
        arrays."""
        if isinstance(texts, str):
            texts = [texts]
            if isinstance(pairs, str):
                pairs = [pairs]
        texts = list(texts)
        if not texts:
            raise ValueError("texts: expected at least one text")
        enc_texts = [_utf8("texts", i, t) for i, t in enumerate(texts)]
        arr_pairs = None
        if pairs is not None:
            pairs = list(pairs)
            if len(pairs) != len(texts):
                raise ValueError("pairs: expected %d texts like texts, got %d"
                                 % (len(texts), len(pairs)))
            enc_pairs = [_utf8("pairs", i, t) for i, t in enumerate(pairs)]
            arr_pairs = (ctypes.c_char_p * len(pairs))(*enc_pairs)
        if max_length is not None and int(max_length) < (3 if pairs is not None else 2):
            raise ValueError("max_length: expected >= %d, got %r"
                             % (3 if pairs is not None else 2, max_length))
        arr = (ctypes.c_char_p * len(texts))(*enc_texts)
        enc = _lib.Encoding()
        _lib.check(_lib.tokenizer_encode(self._h, len(texts), arr, arr_pairs,
                                         int(max_length or 0), ctypes.byref(enc)),
                   "ember_tokenizer_encode")
        try:
            B, S = enc.batch, enc.seq_len

            def take(p, n):
                return np.ctypeslib.as_array(p, shape=(n,)).copy()
            return BatchEncoding(
                input_ids=take(enc.input_ids, B * S).reshape(B, S),
                attention_mask=take(enc.attention_mask, B * S).reshape(B, S),
                token_type_ids=take(enc.token_type_ids, B * S).reshape(B, S),
                lengths=take(enc.lengths, B),
                truncated=take(enc.truncated, B),
            )
        finally:
            _lib.encoding_free(ctypes.byref(enc))

    __call__ = encode
