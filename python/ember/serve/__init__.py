"""ember.serve: sentence embeddings over HTTP on Ray Serve.

    python -m ember.serve --model DIR [--device cuda|cpu] [--replicas N | --autoscale MIN:MAX]

or, on a running Ray cluster, a Ray Serve config file whose application has
`import_path: ember.serve:build_app` and the options as `args` (see config.yaml here).

Routes: POST /v1/embeddings (OpenAI), POST /embed (Text Embeddings Inference), GET /health,
GET /v1/models. Needs `pip install "ray[serve]"` (python/requirements-serve.txt pins the
version the tests use); the modules protocol, batcher, engine and options do not import Ray.
"""


def build_app(args):
    """The Ray Serve application for `args` (a dict of options; see options.DEFAULTS)."""
    from .app import build_app as build  # noqa: PLC0415 - Ray only when serving

    return build(args)


__all__ = ["build_app"]
