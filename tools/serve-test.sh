#!/usr/bin/env bash
# The Ray Serve tests of ember.serve (python/tests/serve_cluster.py): a two-node local Ray
# cluster on this machine, the server started by `python -m ember.serve` with 2 replicas on the
# CPU backend, loopback HTTP only: the error table, 2,000 requests from 32 concurrent clients
# (every vector equal to SentenceEncoder.encode within kCpuFastAbs; throughput and p50/p99 latency
# printed), Ray's Prometheus metrics, one replica killed mid-load (each request succeeds or gets
# a 5xx; the deployment recovers), a clean stop on SIGINT.
#
#   bash tools/serve-test.sh        ray[serve] (python/requirements-serve.txt) and
#                                   `pip install ./python` into a fresh venv (build-serve/venv),
#                                   then the test, bounded by EMBER_SERVE_TEST_TIMEOUT seconds
#                                   (default 900)
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_USAGE_STATS_ENABLED=0  # Ray reports no usage statistics from tests
venv=build-serve/venv
rm -rf "$venv"
python3 -m venv "$venv"
t0=$SECONDS
"$venv/bin/pip" install -q -r python/requirements-serve.txt
"$venv/bin/pip" install -q ./python -C cmake.define.EMBER_CUDA=OFF
echo "serve-test: venv with ray[serve] and ember ready in $((SECONDS - t0)) s"
# from a folder outside the source tree, so that `import ember` is the installed package
cd build-serve
timeout -k 30 "${EMBER_SERVE_TEST_TIMEOUT:-900}" venv/bin/python ../python/tests/serve_cluster.py
echo "serve-test: passed in $((SECONDS - t0)) s"
