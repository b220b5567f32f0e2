"""The model side of ember.serve, apart from Ray and HTTP: one SentenceEncoder, the requests'
inputs turned into token sequences, and batches of sequences turned into embeddings.

A batch is padded to its longest sequence and run with padding removal (skip_masked, with the
number of valid tokens given, so CUDA does not synchronise to count them). On the CPU backend
each row of the result equals SentenceEncoder.encode of that text alone to float32 rounding,
whatever else is in the batch (the fast CPU backend's sgemm gives a row's last bits by its
place in the matrix; the double-precision reference backend would be bit-identical, see
include/ember.h). tests/test_serve.py checks this within tests/tolerances.h's kCpuFastAbs
for random batch compositions."""
import numpy as np

from ..sentence import SentenceEncoder
from ..tokenizer import BatchEncoding
from .protocol import ApiError


class Engine:
    """A model directory loaded once per replica.

    max_batch_tokens sizes the workspace: every batch the server forms has B x S (padded)
    <= max_batch_tokens, so the forward never grows it."""

    def __init__(self, model_dir, device="cpu", dtype="float32", max_batch_tokens=16384,
                 max_seq_length=None):
        enc = SentenceEncoder(model_dir, device=device, dtype=dtype,
                                max_seq_length=max_seq_length, batch_size=1)
        S = enc.max_seq_length
        if max_batch_tokens < S:
            raise ValueError("max_batch_tokens = %d is less than one sequence of the model's "
                             "max_seq_length = %d tokens" % (max_batch_tokens, S))
        enc.model.reserve(-(-max_batch_tokens // S), S)
        self.encoder = enc
        self.device = enc.device
        self.max_seq_length = S
        self.hidden_size = enc.get_sentence_embedding_dimension()
        self.normalize = enc.normalize
        self.pooling = enc.pooling
        self.vocab_size = enc.model.config["vocab_size"]
        self.pad_id = enc.tokenizer.special_ids["pad"]

    # ---- inputs -> token sequences ------------------------------------------------------------
    def sequences(self, kind, inputs, truncate, field, tei=False):
        """Texts (tokenized with [CLS]/[SEP], cut at max_seq_length when truncate, else an
        ApiError for a text over it) or final token-id sequences (checked against the
        vocabulary; over max_seq_length is an error even with truncate, since cutting would drop
        the sequence's end token). Returns a list of int32 arrays. Statuses: OpenAI's 400, or
        for tei TEI's 413 for a limit and 422 for a bad value."""
        S = self.max_seq_length
        limit_status, value_status = (413, 422) if tei else (400, 400)
        if kind == "text":
            enc = self.encoder.tokenize(inputs)
            lengths, cut, ids = enc["lengths"], enc["truncated"], enc["input_ids"]
            if not truncate:
                over = np.flatnonzero(cut)
                if over.size:
                    i = int(over[0])
                    raise ApiError(limit_status, "%s[%d] has %d tokens, over this model's limit "
                                   "of %d (send truncate: true to cut it at %d tokens)"
                                   % (field, i, int(lengths[i] + cut[i]), S, S), param=field,
                                   code="context_length_exceeded", tei_type="Validation")
            return [ids[k, :int(n)].copy() for k, n in enumerate(lengths)]
        out = []
        for i, seq in enumerate(inputs):
            if len(seq) > S:
                raise ApiError(limit_status, "%s[%d] has %d token ids, over this model's limit "
                               "of %d (token-id inputs are final sequences and are never cut)"
                               % (field, i, len(seq), S), param=field,
                               code="context_length_exceeded", tei_type="Validation")
            bad = [t for t in seq if t >= self.vocab_size]
            if bad:
                raise ApiError(value_status, "%s[%d] holds token id %d, "
                               "outside this model's vocabulary of %d"
                               % (field, i, bad[0], self.vocab_size), param=field,
                               code="invalid_token_id", tei_type="Validation")
            out.append(np.asarray(seq, dtype=np.int32))
        return out

    # ---- a batch -> embeddings ------------------------------------------------------------------
    def run(self, seqs, normalize):
        """Sequences (int32 arrays) -> float32 [n, H] NumPy embeddings, pooled as the model
        directory says; normalize: True / False / None (the model's own choice)."""
        B = len(seqs)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=B)
        S = int(lengths.max())
        ids = np.full((B, S), self.pad_id, dtype=np.int32)
        mask = np.zeros((B, S), dtype=np.int32)
        for k, s in enumerate(seqs):
            ids[k, :len(s)] = s
            mask[k, :len(s)] = 1
        enc = BatchEncoding(input_ids=ids, attention_mask=mask,
                            token_type_ids=np.zeros((B, S), dtype=np.int32), lengths=lengths)
        out = self.encoder.embed_batch(enc, normalize=normalize, skip_masked=True)
        if self.device != "cpu":
            self.encoder.model.synchronize()  # device-side input errors surface here
            out = out.cpu().numpy()
        return out
