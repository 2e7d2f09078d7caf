"""A Flask app traced by beeline, served by gunicorn with forked workers.

`beeline.init()` runs when this module is imported. With `preload_app = True` (see
gunicorn.conf.py) that happens once, in the gunicorn master, before it forks the workers: each
worker gets a working transmission of its own automatically, with nothing to add to the
gunicorn configuration. Without preloading, every worker imports this module and initialises
its own beeline, which works too.

    cd examples/gunicorn
    gunicorn -c gunicorn.conf.py app:app          # then: curl localhost:8000/work
"""

import os
import time

import beeline
from beeline.middleware.flask import HoneyMiddleware
from beeline.trace import active_span
from flask import Flask, jsonify

beeline.init(
    # With no write key the traces are printed on stderr (set HONEYCOMB_API_KEY to send them).
    service_name=os.environ.get("SERVICE_NAME", "gunicorn-example"),
    api_host=os.environ.get("HONEYCOMB_API_HOST", "https://api.honeycomb.io"),
)

app = Flask(__name__)
HoneyMiddleware(app, db_events=False)


@app.route("/work")
def work():
    # Which worker served the request: the point of this example is that every one sends.
    beeline.add_context_field("worker_pid", os.getpid())
    with beeline.tracer("compute"):
        # Long enough that concurrent requests are spread over the workers.
        time.sleep(float(os.environ.get("WORK_SECONDS", "0.05")))
    span = active_span()
    return jsonify(pid=os.getpid(), trace_id=span.trace_id if span else None)


@app.route("/health")
def health():
    return "ok"
