"""The Ray Serve deployment: one replica = one Engine + one Batcher, HTTP routed here (raw
Starlette requests, so that every error, 404 and 405 included, is JSON in the route's format).

Metrics (Ray's Prometheus export, names prefixed ray_ by Ray; each also carries Serve's
deployment / replica / application tags):
  ember_requests_total{route, status}          requests answered, by route and HTTP status
  ember_request_latency_ms{route}              histogram, arrival in the replica to response
  ember_inputs_total, ember_tokens_total       inputs and tokens embedded (rate() = tokens/s)
  ember_batch_size / ember_batch_tokens        histograms: sequences and tokens per forward
  ember_batch_padding_ratio                    histogram: padded tokens / real tokens
  ember_forward_tokens_per_second              gauge: tokens / forward time of the last batch
"""
import asyncio
import concurrent.futures
import logging
import os
import time

from ray import serve
from ray.serve.metrics import Counter, Gauge, Histogram
from starlette.responses import Response

from . import protocol
from .batcher import Batcher
from .engine import Engine
from .options import deployment_options, normalize

log = logging.getLogger("ember.serve")

_LATENCY_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000]
_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
_TOKENS = [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
_ROUTES = {"/v1/embeddings": ("POST", "openai"), "/embed": ("POST", "tei"),
           "/health": ("GET", "health"), "/v1/models": ("GET", "models")}


class _Metrics:
    def __init__(self):
        self.requests = Counter("ember_requests", "HTTP requests answered",
                                tag_keys=("route", "status"))
        self.latency = Histogram("ember_request_latency_ms", "request latency in the replica",
                                 boundaries=_LATENCY_MS, tag_keys=("route",))
        self.inputs = Counter("ember_inputs", "inputs (texts or token sequences) embedded")
        self.tokens = Counter("ember_tokens", "tokens embedded ([CLS]/[SEP] included)")
        self.batch_size = Histogram("ember_batch_size", "sequences per forward",
                                    boundaries=_SIZES)
        self.batch_tokens = Histogram("ember_batch_tokens", "tokens per forward",
                                      boundaries=_TOKENS)
        self.padding = Histogram("ember_batch_padding_ratio", "padded tokens / real tokens",
                                 boundaries=[1.0, 1.05, 1.1, 1.25, 1.5, 2, 3, 5, 10])
        self.rate = Gauge("ember_forward_tokens_per_second",
                          "tokens / forward time of the last batch")

    def batch(self, rows, tokens, padded, seconds):
        self.inputs.inc(rows)
        self.tokens.inc(tokens)
        self.batch_size.observe(rows)
        self.batch_tokens.observe(tokens)
        self.padding.observe(padded / tokens)
        if seconds > 0:
            self.rate.set(tokens / seconds)


def _json(obj, status=200):
    return Response(protocol.dumps(obj), status_code=status, media_type="application/json")


class EmbeddingServer:
    """One replica. Constructed by Ray Serve with the normalized options."""

    def __init__(self, opts):
        self.opts = opts
        self.name = opts["served_model_name"]
        self.engine = Engine(opts["model"], device=opts["device"], dtype=opts["dtype"],
                             max_batch_tokens=opts["max_batch_tokens"],
                             max_seq_length=opts["max_seq_length"])
        self.metrics = _Metrics()
        # one forward at a time per model; tokenization on its own thread so that it overlaps
        self._forward_pool = concurrent.futures.ThreadPoolExecutor(1, "ember-forward")
        self._token_pool = concurrent.futures.ThreadPoolExecutor(1, "ember-tokenize")
        self.batcher = Batcher(self.engine.run, opts["max_batch_tokens"],
                               opts["max_batch_wait_ms"] / 1000.0, self._forward_pool,
                               on_batch=self.metrics.batch)
        self.created = time.time()
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001 - outside a replica (tests)
            self.replica = "local"
        log.info("ember.serve replica: %s on %s (%s), pid %d, H=%d, max_seq_length=%d",
                 opts["model"], self.engine.device, opts["dtype"], os.getpid(),
                 self.engine.hidden_size, self.engine.max_seq_length)

    # ---- Ray Serve hooks --------------------------------------------------------------------
    def check_health(self):
        if not self.batcher.alive():
            raise RuntimeError("the batching task has stopped")
        if self.batcher.failures >= 3:
            raise RuntimeError("the last %d forwards failed" % self.batcher.failures)

    async def __call__(self, request):
        t0 = time.perf_counter()
        scope = request.scope
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        path = path.rstrip("/") or "/"
        method, route = _ROUTES.get(path, (None, "unknown"))
        fmt = protocol.tei_error if route == "tei" else protocol.openai_error
        try:
            if method is None:
                raise protocol.ApiError(404, "no route %s; this server has POST /v1/embeddings, "
                                        "POST /embed, GET /health, GET /v1/models" % path,
                                        code="not_found", tei_type="Validation")
            if request.method != method:
                raise protocol.ApiError(405, "%s %s: this route takes %s"
                                        % (request.method, path, method),
                                        code="method_not_allowed", tei_type="Validation")
            if route == "health":
                try:
                    self.check_health()
                except RuntimeError as e:
                    raise protocol.ApiError(503, "unhealthy: %s" % e, code="unhealthy",
                                            tei_type="Unhealthy") from None
                resp = _json({"status": "ok"})
            elif route == "models":
                resp = _json(protocol.models_response(self.name, self.created))
            else:
                resp = await self._embed(request, route)
        except protocol.ApiError as e:
            resp = _json(fmt(e), e.status)
        except asyncio.CancelledError:
            self._count(route, 499, t0)  # the client went away (nginx's code)
            raise
        except Exception as e:  # noqa: BLE001 - a server-side failure: JSON 500, logged
            log.exception("ember.serve: %s failed", path)
            err = protocol.ApiError(500, "internal error: %s: %s" % (type(e).__name__, e),
                                    code="internal_error", tei_type="Backend")
            resp = _json(fmt(err), 500)
        self._count(route, resp.status_code, t0)
        resp.headers["x-ember-replica"] = self.replica  # which replica answered
        return resp

    def _count(self, route, status, t0):
        self.metrics.requests.inc(tags={"route": route, "status": str(status)})
        self.metrics.latency.observe((time.perf_counter() - t0) * 1000.0, tags={"route": route})

    # ---- embeddings ---------------------------------------------------------------------------
    async def _read_body(self, request):
        limit = self.opts["max_body_bytes"]
        n = request.headers.get("content-length")
        if n is not None and n.isdigit() and int(n) > limit:
            raise protocol.ApiError(413, "the request body has %s bytes, over this server's "
                                    "limit of %d" % (n, limit), code="body_too_large",
                                    tei_type="Validation")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise protocol.ApiError(413, "the request body is over this server's limit of "
                                        "%d bytes" % limit, code="body_too_large",
                                        tei_type="Validation")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _embed(self, request, route):
        body = await self._read_body(request)
        obj = protocol.parse_body(body)
        H, lim = self.engine.hidden_size, self.opts["max_inputs"]
        if route == "openai":
            req = protocol.parse_openai(obj, self.name, H, lim)
            field = "input"
        else:
            req = protocol.parse_tei(obj, H, lim)
            field = "inputs"
        loop = asyncio.get_running_loop()
        seqs = await loop.run_in_executor(self._token_pool, self.engine.sequences, req["kind"],
                                          req["inputs"], req["truncate"], field,
                                          route == "tei")
        norm = req["normalize"]
        key = self.engine.normalize if norm is None else bool(norm)
        rows = await self.batcher.submit(seqs, key)
        if route == "openai":
            tokens = sum(len(s) for s in seqs)
            return _json(protocol.openai_response(rows, self.name, tokens, req["base64"]))
        return _json(protocol.tei_response(rows))


def build_app(args):
    """A Ray Serve application for the given options (a dict with options.DEFAULTS' keys;
    the config file's `args`); replicas as options.deployment_options says."""
    opts = normalize(dict(args))
    return serve.deployment(EmbeddingServer).options(**deployment_options(opts)).bind(opts)
