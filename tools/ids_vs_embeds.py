#!/usr/bin/env python3
"""ember's seed claim, in process: input_ids and the gathered inputs_embeds give the same bits.

For each dtype, on one model and one batch (random ids, a right-padded mask, token types):
  1. ember forward with input_ids;
  2. the word-embedding rows of those ids gathered outside ember, in the model's dtype and
     widened to float32 (with torch: a CUDA tensor, `weight.to(dtype).float()[ids]`, passed
     to ember by its data_ptr on torch's current stream; without torch: ember_embed_tokens);
  3. ember forward with those inputs_embeds;
and checks that (1) and (3) are equal bit for bit; with torch also that ember_embed_tokens
equals torch's gather and that its output as inputs_embeds gives (1) too. Outputs are
poisoned with NaN first.

ember is reached through tools/ids_vs_embeds_shim.c (built by `tools/gpu-check.sh prepare`
against libember.so), with ctypes: no numpy is needed without torch, so the CPU form runs
on a bare Python (`tools/gpu-check.sh rehearse` uses it to test the plumbing).

  python3 tools/ids_vs_embeds.py --lib .gpu-carry/lib/libember_ive.so --model DIR --device cuda
"""
import argparse
import array
import ctypes
import json
import os
import random
import struct
import sys

DTYPES = {"f32": 0, "f16": 1, "bf16": 2}


def load_lib(path):
    # The CUDA libraries libember needs: already in the process when torch is, else found by
    # the loader, else in EMBER_CUDA_LIB_DIRS (what tools/gpu-check.sh found on the machine).
    for name in ("libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13"):
        for d in [""] + [x for x in os.environ.get("EMBER_CUDA_LIB_DIRS", "").split(":") if x]:
            try:
                ctypes.CDLL(os.path.join(d, name), mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                continue
    lib = ctypes.CDLL(path)
    vp, i32p, f32p = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
    lib.ive_load.restype = vp
    lib.ive_load.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.ive_hidden_size.restype = ctypes.c_int
    lib.ive_hidden_size.argtypes = [vp]
    lib.ive_forward.restype = ctypes.c_int
    lib.ive_forward.argtypes = [vp, ctypes.c_int, ctypes.c_int, i32p, f32p, i32p, i32p, f32p, vp]
    lib.ive_embed_tokens.restype = ctypes.c_int
    lib.ive_embed_tokens.argtypes = [vp, i32p, ctypes.c_int64, f32p, vp]
    lib.ember_model_free.restype = None
    lib.ember_model_free.argtypes = [vp]
    lib.ember_last_error.restype = ctypes.c_char_p
    lib.ember_status_string.restype = ctypes.c_char_p
    lib.ember_status_string.argtypes = [ctypes.c_int]
    return lib


def why(lib, st):
    return "%s: %s" % (lib.ember_status_string(st).decode(), lib.ember_last_error().decode())


def batch_inputs(seed, batch, seq, vocab, types):
    rng = random.Random(seed)
    ids, mask, tt = [], [], []
    for b in range(batch):
        valid = seq if b == 0 else rng.randint(1, seq)
        for s in range(seq):
            ids.append(rng.randrange(1, vocab))  # never zeros
            mask.append(1 if s < valid else 0)
            tt.append(rng.randrange(0, types))
    return ids, mask, tt


def model_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def run_torch(lib, args, cfg, dt, torch):
    """CUDA tensors in place: ids, mask, types, gathered embeds and outputs are torch's."""
    from safetensors.torch import load_file
    dev = torch.device(args.device)
    B, S = args.batch, args.seq
    ids, mask, tt = batch_inputs(args.seed, B, S, cfg["vocab_size"], cfg.get("type_vocab_size", 2))
    t_ids = torch.tensor(ids, dtype=torch.int32, device=dev).view(B, S)
    t_mask = torch.tensor(mask, dtype=torch.int32, device=dev).view(B, S)
    t_tt = torch.tensor(tt, dtype=torch.int32, device=dev).view(B, S)
    weights = load_file(os.path.join(args.model, "model.safetensors"))
    key = [k for k in weights if k.endswith("word_embeddings.weight")]
    if len(key) != 1:
        return "FAIL", "word_embeddings.weight not found (keys: %d)" % len(weights)
    tdt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dt]
    table = weights[key[0]].to(dev).to(tdt).float()
    embeds = table[t_ids.long()].contiguous()  # [B,S,H] float32 on the GPU
    H = table.shape[1]
    m = lib.ive_load(args.model.encode(), 1, DTYPES[dt], B, S)
    if not m:
        return "FAIL", "load: " + lib.ember_last_error().decode()
    try:
        stream = torch.cuda.current_stream(dev).cuda_stream
        gathered = torch.full((B, S, H), float("nan"), dtype=torch.float32, device=dev)
        st = lib.ive_embed_tokens(m, t_ids.data_ptr(), B * S, gathered.data_ptr(), stream)
        if st != 0:
            return "FAIL", "embed_tokens: " + why(lib, st)
        outs = {}
        for name, e in (("ids", None), ("torch gather", embeds), ("ember gather", gathered)):
            out = torch.full((B, S, H), float("nan"), dtype=torch.float32, device=dev)
            st = lib.ive_forward(m, B, S, t_ids.data_ptr() if e is None else None,
                                 None if e is None else e.data_ptr(), t_mask.data_ptr(),
                                 t_tt.data_ptr(), out.data_ptr(), stream)
            if st != 0:
                return "FAIL", "forward with %s: %s" % (name, why(lib, st))
            outs[name] = out
        torch.cuda.current_stream(dev).synchronize()

        def same(a, b):
            return torch.equal(a.view(torch.int32), b.view(torch.int32))

        checks = {"ember_embed_tokens == torch's gather": same(gathered, embeds),
                  "ids == ember-gathered embeds": same(outs["ids"], outs["ember gather"]),
                  "ids == torch-gathered embeds": same(outs["ids"], outs["torch gather"])}
        nan = int(torch.isnan(outs["ids"]).sum())
        diff = float((outs["ids"] - outs["torch gather"]).abs().max())
        note = "B%d S%d H%d; %s; max |ids - torch embeds| %.3g; %d NaN" % (
            B, S, H, "; ".join("%s %s" % (k, "yes" if v else "NO") for k, v in checks.items()), diff, nan)
        return ("PASS" if all(checks.values()) and nan == 0 else "FAIL"), note
    finally:
        lib.ember_model_free(m)


def run_plain(lib, args, cfg, dt):
    """Host memory, no numpy or torch: the gather is ember_embed_tokens itself."""
    B, S = args.batch, args.seq
    ids, mask, tt = batch_inputs(args.seed, B, S, cfg["vocab_size"], cfg.get("type_vocab_size", 2))
    m = lib.ive_load(args.model.encode(), 0, DTYPES[dt], B, S)
    if not m:
        return "FAIL", "load: " + lib.ember_last_error().decode()
    try:
        H = lib.ive_hidden_size(m)
        c_ids = (ctypes.c_int32 * (B * S))(*ids)
        c_mask = (ctypes.c_int32 * (B * S))(*mask)
        c_tt = (ctypes.c_int32 * (B * S))(*tt)
        nan = struct.unpack("f", struct.pack("I", 0x7FC00000))[0]
        embeds = (ctypes.c_float * (B * S * H))(*([nan] * (B * S * H)))
        st = lib.ive_embed_tokens(m, c_ids, B * S, embeds, None)
        if st != 0:
            return "FAIL", "embed_tokens: " + why(lib, st)
        outs = []
        for use_ids in (True, False):
            out = (ctypes.c_float * (B * S * H))(*([nan] * (B * S * H)))
            st = lib.ive_forward(m, B, S, c_ids if use_ids else None, None if use_ids else embeds,
                                 c_mask, c_tt, out, None)
            if st != 0:
                return "FAIL", ("ids" if use_ids else "inputs_embeds") + " forward: " + why(lib, st)
            outs.append(bytes(out))
        nans = sum(1 for v in array.array("f", outs[0]) if v != v)
        same = outs[0] == outs[1]
        return ("PASS" if same and nans == 0 else "FAIL"), "B%d S%d H%d; %s; %d NaN" % (
            B, S, H, "bit-identical" if same else "DIFFERENT", nans)
    finally:
        lib.ember_model_free(m)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True, help="the shim built by gpu-check.sh prepare")
    ap.add_argument("--model", required=True, help="a HF BERT folder (config.json + model.safetensors)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--dtypes", default=None, help="default f32,f16,bf16 on cuda, f32 on cpu")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seq", type=int, default=37)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    a.model = os.path.abspath(a.model)
    cfg = model_config(a.model)
    cuda = a.device.startswith("cuda")
    dtypes = (a.dtypes or ("f32,f16,bf16" if cuda else "f32")).split(",")
    torch = None
    if cuda:  # torch first: its CUDA libraries are then the ones libember uses in this process
        import torch  # noqa: F811 (only the CUDA form needs it)
        if not torch.cuda.is_available():
            sys.exit("ids_vs_embeds: torch sees no CUDA device")
        torch.cuda.init()
    lib = load_lib(a.lib)
    rows = []
    for dt in dtypes:
        status, note = run_torch(lib, a, cfg, dt, torch) if cuda else run_plain(lib, a, cfg, dt)
        rows.append((dt, status, note))
    print("ids vs gathered inputs_embeds (%s, %s), bit for bit:" % (
        "torch CUDA tensors" if cuda else "host memory", os.path.basename(a.model)))
    for dt, status, note in rows:
        print("  %-5s %-4s %s" % (dt, status, note))
    failed = [r for r in rows if r[1] != "PASS"]
    print("ids_vs_embeds: %d dtypes, %d failed" % (len(rows), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
