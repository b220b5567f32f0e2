"""ember.serve on a real Ray Serve deployment: a local Ray cluster of two nodes on this machine
(a head and a worker, ray.cluster_utils.Cluster, one CPU each), the server started by its own
command line (python -m ember.serve --address ...) with 2 replicas on the CPU backend, loopback
HTTP only. Run by tools/serve-test.sh; exits non-zero on any failure.

  1. bad input: the error table over HTTP (status, JSON error shape, message naming the problem)
  2. load: CLIENTS concurrent clients send REQUESTS requests of mixed lengths and kinds (OpenAI
     float / base64 / token ids, TEI normalize true / false); none may fail, and every vector
     must equal SentenceEncoder.encode of its text alone (within tests/tolerances.h's
     kCpuFastAbs: the fast CPU backend's rows depend on their batch to float32 rounding); prints
     throughput and
     p50/p99 latency
  3. metrics: Ray's Prometheus endpoints of both nodes carry ember's metrics, and the request
     counter reaches the number of requests sent
  4. fault: one replica is killed (ray.kill) mid-load; every request must succeed with the
     right vectors or get an HTTP 5xx (no hang, no dropped connection, no wrong answer); then
     the deployment must be back to 2 running replicas and serve again
  5. the command line stops cleanly on SIGINT

The model is a small random BERT over the real uncased vocabulary (serve_model.py) unless
--model names another, so that the figures measure serving, not the model (all-MiniLM-L6-v2
runs at about 100 tokens/s on one core of the CPU reference backend)."""
import argparse
import base64
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
ROOT = os.path.dirname(os.path.dirname(HERE))


def _cpu_fast_abs():
    with open(os.path.join(ROOT, "tests", "tolerances.h")) as f:
        return float(re.search(r"kCpuFastAbs\s*=\s*([0-9.eE+-]+);", f.read()).group(1))


CPU_FAST_ABS = _cpu_fast_abs()

import ember  # noqa: E402
from serve_model import write_small_model  # noqa: E402

T_START = time.monotonic()
FAILURES = []


def say(*a):
    print("serve-test [%5.1f s]" % (time.monotonic() - T_START), *a, flush=True)


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        say("FAIL:", what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average():
    return "load average %.2f %.2f %.2f on %d cores" % (os.getloadavg() + (os.cpu_count(),))


# ---- HTTP ---------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection, reopened after a failure."""

    def __init__(self, port, timeout=120):
        self.port, self.timeout, self.conn = port, timeout, None

    def request(self, method, path, body=None, headers=None, chunked=False):
        """-> (status, body bytes); raises OSError / http.client errors when no response.
        self.replica is the x-ember-replica header of the last response."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=h, encode_chunked=chunked)
            r = self.conn.getresponse()
            data = r.read()
            self.replica = r.getheader("x-ember-replica")
            if r.getheader("connection", "").lower() == "close":
                self.close()
            return r.status, data
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- the workload --------------------------------------------------------------------------------
class Workload:
    """A pool of texts of mixed lengths, their direct embeddings (encode of each text alone),
    and a deterministic mix of requests over them."""

    def __init__(self, model_dir, n_texts, seed):
        self.enc = ember.SentenceEncoder(model_dir)
        with open(os.path.join(ROOT, "tests", "data", "tokenizer", "corpus.txt"),
                  encoding="utf-8") as f:
            words = f.read().split()
        rng = random.Random(seed)
        sizes = [1, 2, 3, 4, 6, 9, 14, 22, 35, 60, 120]
        self.texts = [" ".join(rng.choice(words) for _ in range(rng.choice(sizes)))
                      for _ in range(n_texts)]
        t0 = time.perf_counter()
        self.want = [self.enc.encode(t) for t in self.texts]
        self.want_raw = [self.enc.embed_batch(self.enc.tokenize([t]), normalize=False)[0]
                         for t in self.texts]
        self.ids = []
        self.tokens = []
        for t in self.texts:
            e = self.enc.tokenize([t])
            n = int(e["lengths"][0])
            self.ids.append([int(x) for x in e["input_ids"][0, :n]])
            self.tokens.append(n)
        say("workload: %d texts, %d-%d tokens (max_seq_length %d), direct results in %.1f s"
            % (n_texts, min(self.tokens), max(self.tokens), self.enc.max_seq_length,
               time.perf_counter() - t0))

    def requests(self, n, seed):
        """n requests: (path, body bytes, [text indices], kind) with kind one of openai-float,
        openai-base64, openai-ids, tei, tei-raw."""
        rng = random.Random(seed)
        kinds = ["openai-float"] * 8 + ["openai-base64"] * 3 + ["openai-ids"] * 2 + \
                ["tei"] * 5 + ["tei-raw"] * 2
        out = []
        for _ in range(n):
            kind = rng.choice(kinds)
            idx = [rng.randrange(len(self.texts)) for _ in range(rng.choice([1, 1, 1, 2, 3, 5]))]
            if kind.startswith("openai"):
                body = {"model": "small", "truncate": True}
                if kind == "openai-ids":
                    body["input"] = [self.ids[i] for i in idx]
                else:
                    body["input"] = [self.texts[i] for i in idx] if len(idx) > 1 \
                        else self.texts[idx[0]]
                if kind == "openai-base64":
                    body["encoding_format"] = "base64"
                path = "/v1/embeddings"
            else:
                body = {"inputs": [self.texts[i] for i in idx], "truncate": True}
                if kind == "tei-raw":
                    body["normalize"] = False
                path = "/embed"
            out.append((path, json.dumps(body).encode(), idx, kind))
        return out

    def verify(self, kind, idx, data):
        """A 200 response -> None if every vector is the direct result (within CPU_FAST_ABS),
        else why not."""
        try:
            obj = json.loads(data)
            if kind.startswith("openai"):
                if obj.get("object") != "list" or \
                        [d["index"] for d in obj["data"]] != list(range(len(idx))):
                    return "bad OpenAI response shape"
                if obj["usage"]["prompt_tokens"] != sum(self.tokens[i] for i in idx):
                    return "usage.prompt_tokens %r" % obj["usage"]
                if kind == "openai-base64":
                    rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
                            for d in obj["data"]]
                else:
                    rows = [np.asarray(d["embedding"], dtype=np.float32) for d in obj["data"]]
            else:
                rows = [np.asarray(r, dtype=np.float32) for r in obj]
            want = self.want_raw if kind == "tei-raw" else self.want
            if len(rows) != len(idx):
                return "%d vectors for %d inputs" % (len(rows), len(idx))
            for i, r in zip(idx, rows):
                if r.shape != want[i].shape or \
                        not np.all(np.abs(r - want[i]) <= CPU_FAST_ABS):
                    d = float(np.max(np.abs(r - want[i]))) if r.shape == want[i].shape else -1
                    return "text %d: vector differs from encode() (max |diff| %g)" % (i, d)
        except Exception as e:  # noqa: BLE001
            return "unreadable response: %r" % e
        return None


def run_load(port, reqs, work, clients, on_progress=None):
    """Send reqs from `clients` threads; returns a list of (status or exception text,
    latency s, problem or None) in request order, and the wall time."""
    results = [None] * len(reqs)
    nxt = [0]
    done = [0]
    lock = threading.Lock()

    def worker():
        c = Client(port)
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(reqs):
                break
            path, body, idx, kind = reqs[i]
            t0 = time.perf_counter()
            try:
                status, data = c.request("POST", path, body)
            except Exception as e:  # noqa: BLE001 - no response: recorded as lost
                results[i] = ("%s: %s" % (type(e).__name__, e), time.perf_counter() - t0, None,
                              None, time.monotonic())
            else:
                dt = time.perf_counter() - t0
                problem = work.verify(kind, idx, data) if status == 200 else None
                results[i] = (status, dt, problem if status == 200 else data[:300], c.replica,
                              time.monotonic())
            with lock:
                done[0] += 1
                n = done[0]
            if on_progress is not None:
                on_progress(n, c.replica)
        c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def peer(work, reqs, served_wall):
    """The same inputs through SentenceEncoder.encode in this one process (batch 32, sorted
    by length as encode does), for scale: what the served figures compare with."""
    texts = [work.texts[i] for r in reqs for i in r[2]]
    t0 = time.perf_counter()
    work.enc.encode(texts, batch_size=32)
    dt = time.perf_counter() - t0
    say("peer: the load's %d inputs through encode(batch_size=32) in this process: %.1f s, "
        "%.1f inputs/s; served over HTTP by 2 replicas: %.2fx that (%s)"
        % (len(texts), dt, len(texts) / dt, dt / served_wall, load_average()))


def figures(label, results, wall, reqs, work):
    lat = np.array([r[1] for r in results if r[0] == 200]) * 1000.0
    n_in = sum(len(r[2]) for r in reqs)
    n_tok = sum(work.tokens[i] for r in reqs for i in r[2])
    if lat.size:
        say("%s: %d requests (%d inputs, %d tokens) in %.1f s: %.1f requests/s, %.1f inputs/s, "
            "%.0f tokens/s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (%s)"
            % (label, len(reqs), n_in, n_tok, wall, len(reqs) / wall, n_in / wall,
               n_tok / wall, np.percentile(lat, 50), np.percentile(lat, 99), lat.max(),
               load_average()))


# ---- the error table --------------------------------------------------------------------------
def error_table(port, max_body):
    long_text = " ".join(["word"] * 200)
    big = b'{"input": "' + b"a" * (max_body + 10) + b'"}'
    cases = [
        # method, path, body, headers, status, format, words in the message
        ("POST", "/v1/embeddings", b'{"input": ', {}, 400, "openai", "not valid JSON"),
        ("POST", "/embed", b'{"inputs": [}', {}, 400, "tei", "not valid JSON"),
        ("POST", "/v1/embeddings", b"", {}, 400, "openai", "body is empty"),
        ("POST", "/v1/embeddings", b'{"input": []}', {}, 400, "openai", "empty array"),
        ("POST", "/v1/embeddings", b'{"input": ""}', {}, 400, "openai", "empty string"),
        ("POST", "/embed", b'{"inputs": []}', {}, 400, "tei", "empty array"),
        ("POST", "/v1/embeddings", json.dumps({"input": ["a"] * 2049}).encode(), {}, 400,
         "openai", "2049 inputs"),
        ("POST", "/embed", json.dumps({"inputs": ["a"] * 2049}).encode(), {}, 413, "tei",
         "2049 inputs"),
        ("POST", "/v1/embeddings", json.dumps({"input": long_text}).encode(), {}, 400,
         "openai", "202 tokens, over this model's limit of 96"),
        ("POST", "/embed", json.dumps({"inputs": long_text, "truncate": False}).encode(), {},
         413, "tei", "202 tokens"),
        ("POST", "/v1/embeddings", b'{"input": "caf\xe9"}', {}, 400, "openai",
         "not valid UTF-8: byte 0xe9"),
        ("POST", "/embed", b'{"inputs": ["\xc3\x28"]}', {}, 400, "tei", "not valid UTF-8"),
        ("POST", "/v1/embeddings", b'{"input": ["ok", "\\ud83d"]}', {}, 400, "openai",
         "lone surrogate"),
        ("POST", "/v1/embeddings", b'{"input": 42}', {}, 400, "openai", "got a number"),
        ("POST", "/v1/embeddings", b'{"input": [[101, "x", 102]]}', {}, 400, "openai",
         "input[0][1] must be a token id"),
        ("POST", "/v1/embeddings", b'{"input": [[101, 99999, 102]]}', {}, 400, "openai",
         "outside this model's vocabulary"),
        ("POST", "/embed", b'{"inputs": "a", "normalize": "yes"}', {}, 422, "tei",
         "'normalize' must be true or false"),
        ("POST", "/v1/embeddings", b'{"input": "a", "encoding_format": "hex"}', {}, 400,
         "openai", "'float' or 'base64'"),
        ("POST", "/v1/embeddings", b'{"input": "a", "dimensions": 16}', {}, 400, "openai",
         "cannot be shortened"),
        ("POST", "/v1/embeddings", b'{"input": "a", "model": "gpt-4"}', {}, 404, "openai",
         "does not exist"),
        ("POST", "/v1/embeddings", b'["a"]', {}, 400, "openai", "must be a JSON object"),
        ("POST", "/v1/embeddings", big, {}, 413, "openai", "over this server's limit"),
        ("GET", "/v1/embeddings", None, {}, 405, "openai", "takes POST"),
        ("GET", "/nowhere", None, {}, 404, "openai", "no route /nowhere"),
    ]
    c = Client(port)
    for method, path, body, headers, status, fmt, words in cases:
        try:
            got, data = c.request(method, path, body, headers)
        except Exception as e:  # noqa: BLE001
            check(False, "error table: %s %s: no response (%r)" % (method, path, e))
            continue
        label = "error table: %s %s %s" % (method, path, (body or b"")[:40])
        try:
            obj = json.loads(data)
        except ValueError:
            check(False, "%s: not JSON: %r" % (label, data[:200]))
            continue
        if fmt == "openai":
            ok = isinstance(obj, dict) and set(obj.get("error", {})) == \
                {"message", "type", "param", "code"}
            msg = obj["error"]["message"] if ok else ""
        else:
            ok = isinstance(obj, dict) and set(obj) == {"error", "error_type"}
            msg = obj.get("error", "") if ok else ""
        check(got == status and ok and words in msg,
              "%s: got %d %s, want %d with %r" % (label, got, data[:200], status, words))
    # a body sent in chunks, without Content-Length, is bounded as well
    try:
        got, data = c.request("POST", "/v1/embeddings",
                              iter([b'{"input": "'] + [b"b" * 65536] * (max_body // 65536 + 2)
                                   + [b'"}']), chunked=True)
        check(got == 413, "error table: chunked body over the limit: got %d" % got)
    except Exception as e:  # noqa: BLE001
        check(False, "error table: chunked body over the limit: no response (%r)" % e)
    c.close()
    say("error table: %d cases + a chunked body checked" % len(cases))


# ---- Ray ----------------------------------------------------------------------------------------
def replicas():
    """[(actor name, state)] of the ember deployment, from Serve's status."""
    from ray import serve  # noqa: PLC0415
    st = serve.status()
    app = st.applications.get("ember")
    if app is None:
        return None, {}
    dep = app.deployments.get("ember")
    return app.status, (dict(dep.replica_states) if dep is not None else {})


def replica_actors():
    import ray  # noqa: PLC0415
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith("SERVE_REPLICA::ember#ember#"))


def wait_running(n, timeout, gone=None):
    """Wait until Serve reports n RUNNING replicas, n replica actors exist and `gone` (an
    actor name) is not among them; returns the seconds waited, None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        status, states = replicas()
        actors = replica_actors()
        if str(status).endswith("RUNNING") and states.get("RUNNING", 0) == n and \
                sum(states.values()) == n and len(actors) == n and gone not in actors:
            return time.monotonic() - t0
        time.sleep(0.5)
    return None


def scrape(ports):
    text = ""
    for p in ports:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % p, timeout=10) as r:
                text += r.read().decode()
        except OSError:
            pass
    return text


def metric_sum(text, name, label=None):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if label is None or label in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def _terminate(signum, frame):
    raise SystemExit("serve-test: stopped by signal %d" % signum)  # runs the cleanup below


def main():
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="model directory (default: a small random BERT)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--fault-requests", type=int, default=600)
    ap.add_argument("--texts", type=int, default=400)
    args = ap.parse_args()
    say(load_average())
    tmp = tempfile.mkdtemp(prefix="ember-serve-test-")
    model = args.model or write_small_model(os.path.join(tmp, "small"))
    work = Workload(model, args.texts, seed=7)
    check_config(model)

    import ray  # noqa: PLC0415
    from ray.cluster_utils import Cluster  # noqa: PLC0415

    # Ray Serve's proxies prefer replicas on their own node; with the one proxy on the head
    # (two nodes on one machine cannot both bind the port) that would send everything to the
    # head's replica. Spread the load over both, as proxies on every node would.
    os.environ["RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING"] = "0"
    mports = [free_port(), free_port()]
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "metrics_export_port": mports[0]})
    cluster.add_node(num_cpus=1, metrics_export_port=mports[1])
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    say("Ray cluster: head + 1 worker node, %d nodes alive, address %s"
        % (len([n for n in ray.nodes() if n["Alive"]]), cluster.address))
    check_health_route(model)
    port = free_port()
    max_body = 1 << 20
    cmd = [sys.executable, "-m", "ember.serve", "--model", model, "--device", "cpu",
           "--replicas", "2", "--port", str(port), "--address", cluster.address,
           "--proxy-location", "HeadOnly", "--max-batch-tokens", "4096",
           "--max-batch-wait-ms", "5", "--max-body-bytes", str(max_body),
           "--served-model-name", "small"]
    say("starting:", " ".join(cmd))
    cli_log = open(os.path.join(tmp, "cli.log"), "w+")
    cli = subprocess.Popen(cmd, stdout=cli_log, stderr=subprocess.STDOUT)
    try:
        t = wait_ready(port, cli, timeout=300)
        if not check(t is not None, "the server did not come up within 300 s"):
            return
        say("server up in %.1f s: replicas %s" % (t, replica_actors()))
        check(wait_running(2, 60) is not None, "2 replicas RUNNING")

        error_table(port, max_body)

        reqs = work.requests(args.requests, seed=1)
        results, wall = run_load(port, reqs, work, args.clients)
        ok = sum(1 for r in results if r[0] == 200 and r[2] is None)
        bad = [(i, r) for i, r in enumerate(results) if not (r[0] == 200 and r[2] is None)]
        figures("load (%d clients)" % args.clients, results, wall, reqs, work)
        by = {}
        for r in results:
            by[r[3]] = by.get(r[3], 0) + 1
        say("load: answers by replica: %s" % by)
        check(len(by) == 2, "load: both replicas should answer")
        say("load: %d of %d requests answered 200 with every vector equal to encode() alone"
            % (ok, len(reqs)))
        for i, r in bad[:5]:
            say("  request %d (%s): %r" % (i, reqs[i][3], r))
        check(not bad, "load: %d requests failed or differ" % len(bad))
        peer(work, reqs, wall)

        check_metrics(mports, expected=len(reqs))

        fault(port, work, args)

        say("stopping the command line (SIGINT)")
        cli.send_signal(signal.SIGINT)
        try:
            rc = cli.wait(timeout=90)
            check(rc == 0, "the command line exited with %d after SIGINT" % rc)
        except subprocess.TimeoutExpired:
            check(False, "the command line did not stop within 90 s of SIGINT")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        if FAILURES:
            cli_log.seek(0)
            print("---- the command line's output (last 60 lines) ----")
            print("".join(cli_log.readlines()[-60:]))
        ray.shutdown()
        cluster.shutdown()
    say("%s (%s)" % ("FAILED: %d checks" % len(FAILURES) if FAILURES else "all checks passed",
                     load_average()))


def check_config(model):
    """The shipped Ray Serve config parses under Ray's own schema, its import path is
    ember.serve:build_app, and its args build an application (with this test's model on the
    CPU in place of the example's GPU settings)."""
    import importlib  # noqa: PLC0415

    import yaml  # noqa: PLC0415 - PyYAML comes with ray[serve]
    from ray.serve import Application  # noqa: PLC0415
    from ray.serve.schema import ServeDeploySchema  # noqa: PLC0415
    path = os.path.join(os.path.dirname(ember.__file__), "serve", "config.yaml")
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    schema = ServeDeploySchema.model_validate(cfg)
    app = schema.applications[0]
    mod, attr = app.import_path.split(":")
    builder = getattr(importlib.import_module(mod), attr)
    args = dict(app.args, model=model, device="cpu", dtype="float32")
    check(isinstance(builder(args), Application), "config.yaml: build_app gave no Application")
    check([d.name for d in app.deployments] == ["ember"], "config.yaml: deployment name")
    say("config.yaml: valid Ray Serve config, %s builds with its args" % app.import_path)


def check_health_route(model):
    """A replica object outside Serve: GET /health is 200, then 503 (JSON) once its forwards
    keep failing, as Ray's health check then reports too."""
    import asyncio  # noqa: PLC0415

    from starlette.requests import Request  # noqa: PLC0415

    from ember.serve.app import EmbeddingServer  # noqa: PLC0415
    from ember.serve.options import normalize  # noqa: PLC0415
    srv = EmbeddingServer(normalize({"model": model}))

    async def get_health():
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        scope = {"type": "http", "method": "GET", "path": "/health", "root_path": "",
                 "headers": [], "query_string": b""}
        return await srv(Request(scope, receive))
    ok = asyncio.run(get_health())
    srv.batcher.failures = 3
    bad = asyncio.run(get_health())
    check(ok.status_code == 200 and bad.status_code == 503 and
          json.loads(bad.body)["error"]["code"] == "unhealthy",
          "health route: got %d then %d %r" % (ok.status_code, bad.status_code, bad.body))
    say("health route: %d, then %d after 3 failed forwards" % (ok.status_code, bad.status_code))


def wait_ready(port, cli, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cli.poll() is not None:
            return None
        try:
            c = Client(port, timeout=5)
            status, _ = c.request("GET", "/health")
            c.close()
            if status == 200:
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(1)
    return None


def check_metrics(ports, expected):
    t0 = time.monotonic()
    names = ["ray_ember_requests_total", "ray_ember_request_latency_ms_bucket",
             "ray_ember_batch_size_bucket", "ray_ember_batch_tokens_bucket",
             "ray_ember_tokens_total", "ray_ember_forward_tokens_per_second"]
    text, n = "", 0.0
    while time.monotonic() - t0 < 60:
        text = scrape(ports)
        n = metric_sum(text, "ray_ember_requests_total", 'status="200"')
        if n >= expected and all(k in text for k in names):
            break
        time.sleep(2)
    missing = [k for k in names if k not in text]
    check(not missing, "metrics: %s not exported" % missing)
    check(n >= expected, "metrics: ray_ember_requests_total{status=200} = %d, expected >= %d"
          % (n, expected))
    batches = metric_sum(text, "ray_ember_batch_size_count")
    rows = metric_sum(text, "ray_ember_batch_size_sum")
    say("metrics after %.1f s: requests_total{200} %d, %d batches of %.1f sequences on average, "
        "tokens_total %d, 400s %d" % (time.monotonic() - t0, n, batches, rows / max(batches, 1),
                                      metric_sum(text, "ray_ember_tokens_total"),
                                      metric_sum(text, "ray_ember_requests_total",
                                                 'status="400"')))


def fault(port, work, args):
    import ray  # noqa: PLC0415
    reqs = work.requests(args.fault_requests, seed=2)
    before = replica_actors()
    killed = []

    def on_progress(n, replica):
        # kill the replica that has just answered, a quarter into the load, while it has
        # requests in flight
        if n >= len(reqs) // 4 and replica and not killed:
            name = [a for a in before if a.endswith("#" + replica)][0]
            killed.append((name, time.monotonic()))
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
            say("fault: killed replica %s after %d requests" % (name, n))

    results, wall = run_load(port, reqs, work, args.clients, on_progress)
    ok = sum(1 for r in results if r[0] == 200 and r[2] is None)
    wrong = [r for r in results if r[0] == 200 and r[2] is not None]
    e5xx = [r for r in results if isinstance(r[0], int) and 500 <= r[0] < 600]
    other = [r for r in results if not (r[0] == 200 or (isinstance(r[0], int)
                                                          and 500 <= r[0] < 600))]
    figures("fault load", results, wall, reqs, work)
    say("fault: %d requests: %d succeeded with the right vectors, %d got a 5xx, %d wrong "
        "answers, %d lost or other" % (len(reqs), ok, len(e5xx), len(wrong), len(other)))
    for r in (e5xx[:2] + wrong[:3] + other[:3]):
        say("  %r" % (r,))
    check(killed, "fault: no replica was killed")
    check(not wrong, "fault: %d wrong answers" % len(wrong))
    check(not other, "fault: %d requests lost or answered other than 200/5xx" % len(other))
    if killed:
        name, t_kill = killed[0]
        tag = name.rsplit("#", 1)[1]
        by = {}
        for r in results:
            key = ("killed" if r[3] == tag else "other") + \
                (" before" if r[4] < t_kill else " after")
            by[key] = by.get(key, 0) + 1
        say("fault: answers by replica, before / after the kill: %s" % by)
    t = wait_running(2, 120, gone=killed[0][0] if killed else None)
    check(t is not None, "fault: the deployment is not back to 2 RUNNING replicas in 120 s")
    if killed:
        say("fault: deployment back to 2 running replicas %.1f s after the kill: %s"
            % (time.monotonic() - killed[0][1], replica_actors()))
    reqs = work.requests(200, seed=3)
    results, wall = run_load(port, reqs, work, args.clients)
    ok = sum(1 for r in results if r[0] == 200 and r[2] is None)
    figures("after recovery", results, wall, reqs, work)
    check(ok == len(reqs), "fault: after recovery %d of %d requests succeeded"
          % (ok, len(reqs)))


if __name__ == "__main__":
    main()
    sys.exit(1 if FAILURES else 0)
