"""The post-fork hook that honeycomb-beeline's documentation asked for: initialise again in
every worker. beeline does not need it (forked workers are handled automatically), but an
existing configuration that has it keeps working, and each event is still sent exactly once."""

import os

import beeline

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
preload_app = True


def post_worker_init(worker):
    beeline.init(
        service_name=os.environ.get("SERVICE_NAME", "gunicorn-example"),
        api_host=os.environ.get("HONEYCOMB_API_HOST", "https://api.honeycomb.io"),
    )
