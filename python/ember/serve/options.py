"""The server's options, shared by the command line (python -m ember.serve) and the Ray Serve
config file's `args` (import_path: ember.serve:build_app). No Ray here."""
import argparse
import os

DEFAULTS = {
    "model": None,
    "device": "cpu",
    "dtype": "float32",
    "replicas": 1,
    "autoscale": None,            # "MIN:MAX"
    "host": "127.0.0.1",
    "port": 8000,
    "max_batch_tokens": 16384,
    "max_batch_wait_ms": 5.0,
    "max_seq_length": None,       # None: the model directory's (sentence_bert_config.json)
    "served_model_name": None,    # None: the model directory's name
    "max_inputs": 2048,           # per request, as OpenAI's embeddings API
    "max_body_bytes": 8 << 20,
    "max_ongoing_requests": 256,  # per replica; batching needs many requests in flight
    "replica_cpus": 1.0,
    "proxy_location": "EveryNode",
    "address": None,              # a Ray cluster to join; None: RAY_ADDRESS or a new local one
}


class OptionError(ValueError):
    pass


def _positive(name, v, kind=int, allow_zero=False):
    try:
        x = kind(v)
    except (TypeError, ValueError):
        raise OptionError("%s: expected a %s, got %r" % (name, kind.__name__, v)) from None
    if isinstance(v, bool) or x < 0 or (x == 0 and not allow_zero):
        raise OptionError("%s: expected a %s > 0, got %r" % (name, kind.__name__, v))
    return x


def parse_autoscale(text):
    """'MIN:MAX' -> (min, max) with 0 <= MIN <= MAX, MAX >= 1."""
    parts = str(text).split(":")
    try:
        lo, hi = (int(p) for p in parts)
    except ValueError:
        raise OptionError("autoscale: expected MIN:MAX (two integers), got %r" % (text,)) from None
    if lo < 0 or hi < 1 or lo > hi:
        raise OptionError("autoscale: expected 0 <= MIN <= MAX and MAX >= 1, got %r" % (text,))
    return lo, hi


def normalize(opts):
    """A dict of options (any subset of DEFAULTS) -> the full, checked dict. Unknown keys and
    bad values raise OptionError naming them."""
    unknown = sorted(set(opts) - set(DEFAULTS))
    if unknown:
        raise OptionError("unknown option%s %s (known: %s)" % (
            "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(DEFAULTS)))
    o = dict(DEFAULTS)
    o.update({k: v for k, v in opts.items() if v is not None})
    if not o["model"]:
        raise OptionError("model: the model directory is required")
    o["model"] = os.path.abspath(os.fspath(o["model"]))
    if o["device"] not in ("cpu", "cuda"):
        raise OptionError("device: expected 'cpu' or 'cuda', got %r" % (o["device"],))
    if o["dtype"] not in ("float32", "float16", "bfloat16"):
        raise OptionError("dtype: expected float32, float16 or bfloat16, got %r" % (o["dtype"],))
    if o["device"] == "cpu" and o["dtype"] != "float32":
        raise OptionError("dtype: the CPU backend computes in float32 only, got %s" % o["dtype"])
    if opts.get("autoscale") is not None and opts.get("replicas") not in (None, 1):
        raise OptionError("replicas and autoscale exclude each other")
    o["replicas"] = _positive("replicas", o["replicas"])
    if o["autoscale"] is not None:
        o["autoscale"] = "%d:%d" % parse_autoscale(o["autoscale"])
    o["port"] = _positive("port", o["port"])
    o["max_batch_tokens"] = _positive("max_batch_tokens", o["max_batch_tokens"])
    o["max_batch_wait_ms"] = _positive("max_batch_wait_ms", o["max_batch_wait_ms"], float,
                                       allow_zero=True)
    if o["max_seq_length"] is not None:
        o["max_seq_length"] = _positive("max_seq_length", o["max_seq_length"])
    for k in ("max_inputs", "max_body_bytes", "max_ongoing_requests"):
        o[k] = _positive(k, o[k])
    o["replica_cpus"] = _positive("replica_cpus", o["replica_cpus"], float, allow_zero=True)
    if o["proxy_location"] not in ("EveryNode", "HeadOnly"):
        raise OptionError("proxy_location: expected EveryNode or HeadOnly, got %r"
                          % (o["proxy_location"],))
    if o["served_model_name"] is None:
        o["served_model_name"] = os.path.basename(o["model"].rstrip(os.sep)) or "model"
    return o


def deployment_options(opts):
    """Normalized options -> Ray Serve deployment options: `replicas`, or autoscaling between
    the two bounds of `autoscale`; one GPU per replica on cuda, `replica_cpus` CPUs each."""
    actor = {"num_cpus": opts["replica_cpus"]}
    if opts["device"] == "cuda":
        actor["num_gpus"] = 1
    kw = {"name": "ember", "ray_actor_options": actor,
          "max_ongoing_requests": opts["max_ongoing_requests"],
          "health_check_period_s": 5, "health_check_timeout_s": 30}
    if opts["autoscale"]:
        lo, hi = parse_autoscale(opts["autoscale"])
        kw["autoscaling_config"] = {"min_replicas": lo, "max_replicas": hi,
                                    "initial_replicas": max(lo, 1),
                                    "target_ongoing_requests": 32}
    else:
        kw["num_replicas"] = opts["replicas"]
    return kw


def parser():
    p = argparse.ArgumentParser(
        prog="python -m ember.serve",
        description="Serve sentence embeddings of a BERT model directory over HTTP on Ray "
                    "Serve: POST /v1/embeddings (OpenAI), POST /embed (Text Embeddings "
                    "Inference), GET /health, GET /v1/models. Each replica holds one model, "
                    "on one GPU or on the CPU backend; requests are batched across clients "
                    "by a token budget.")
    a = p.add_argument
    a("--model", required=True, metavar="DIR",
      help="a sentence-transformers or plain BERT directory (config.json, model.safetensors, "
           "vocab.txt), at the same path on every node of the cluster")
    a("--device", choices=("cuda", "cpu"), default=None,
      help="where each replica computes (default: cuda when this machine sees a GPU, else cpu)")
    a("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
      help="compute dtype (float16/bfloat16 on cuda only; default float32)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--replicas", type=int, default=None, metavar="N",
                   help="a fixed number of replicas (default 1)")
    g.add_argument("--autoscale", metavar="MIN:MAX",
                   help="let Ray Serve scale between MIN and MAX replicas by load")
    a("--host", default=DEFAULTS["host"], help="HTTP address (default 127.0.0.1)")
    a("--port", type=int, default=DEFAULTS["port"], help="HTTP port (default 8000)")
    a("--max-batch-tokens", type=int, default=DEFAULTS["max_batch_tokens"], metavar="N",
      help="token budget of one forward: rows x longest row (default 16384)")
    a("--max-batch-wait-ms", type=float, default=DEFAULTS["max_batch_wait_ms"], metavar="MS",
      help="how long the first request of a batch waits for others (default 5)")
    a("--max-seq-length", type=int, default=None, metavar="N",
      help="token limit per input (default: the model directory's max_seq_length)")
    a("--served-model-name", default=None, metavar="NAME",
      help="the name in /v1/models and the 'model' field (default: the directory's name)")
    a("--max-inputs", type=int, default=DEFAULTS["max_inputs"], metavar="N",
      help="inputs per request (default 2048)")
    a("--max-body-bytes", type=int, default=DEFAULTS["max_body_bytes"], metavar="N",
      help="request body limit (default 8 MiB)")
    a("--max-ongoing-requests", type=int, default=DEFAULTS["max_ongoing_requests"],
      metavar="N", help="requests in flight per replica (default 256)")
    a("--replica-cpus", type=float, default=DEFAULTS["replica_cpus"], metavar="N",
      help="CPUs Ray reserves per replica (default 1)")
    a("--proxy-location", choices=("EveryNode", "HeadOnly"), default="EveryNode",
      help="where Ray Serve runs HTTP proxies (default EveryNode)")
    a("--address", default=None,
      help="the Ray cluster to join (default: RAY_ADDRESS, else start a local one)")
    return p


def from_args(ns):
    """argparse namespace -> normalized options."""
    d = {k: v for k, v in vars(ns).items()}
    return normalize(d)
