"""python -m ember.serve: start (or join) a Ray cluster, run the embedding server on Ray Serve,
and keep it up until SIGINT or SIGTERM, then take it down."""
import os
import signal
import sys
import threading

from .options import OptionError, from_args, parser


def main(argv=None):
    p = parser()
    ns = p.parse_args(argv)
    if ns.device is None:
        import ember  # noqa: PLC0415

        ns.device = "cuda" if ember.cuda_device_count() > 0 else "cpu"
    try:
        opts = from_args(ns)
    except OptionError as e:
        p.error(str(e))
    if opts["address"] is None and "RAY_ADDRESS" not in os.environ and \
            not os.path.isfile(os.path.join(opts["model"], "config.json")):
        p.error("--model %s: no config.json there (a local cluster reads the model from this "
                "machine)" % opts["model"])
    try:
        import ray  # noqa: PLC0415
        from ray import serve  # noqa: PLC0415
    except ImportError as e:
        sys.exit("ember.serve: Ray Serve is not installed (%s); pip install -r "
                 "python/requirements-serve.txt, or pip install 'ray[serve]'" % e)
    from .app import build_app  # noqa: PLC0415

    app = build_app(opts)  # checks the options before anything starts
    ray.init(address=opts["address"], include_dashboard=False, log_to_driver=False)
    serve.start(proxy_location=opts["proxy_location"],
                http_options={"host": opts["host"], "port": opts["port"]})
    serve.run(app, name="ember", route_prefix="/")
    scale = ("autoscaling %s replicas" % opts["autoscale"] if opts["autoscale"]
             else "%d replica%s" % (opts["replicas"], "s" if opts["replicas"] > 1 else ""))
    print("ember.serve: %s (%s, %s) on http://%s:%d as '%s', %s; Ctrl-C stops it"
          % (opts["model"], opts["device"], opts["dtype"], opts["host"], opts["port"],
             opts["served_model_name"], scale), flush=True)
    print("ember.serve: replica logs in the Ray session's logs/serve/ (by default "
          "/tmp/ray/session_latest/logs/serve/ on each node)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(3600):
        pass
    print("ember.serve: stopping", flush=True)
    serve.delete("ember")
    if not serve.status().applications:
        serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
