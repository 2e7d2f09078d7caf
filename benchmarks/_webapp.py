"""Flask hello world for the web benchmark, run by gunicorn (one sync worker).

BENCH_MODE picks the instrumentation:
  none      no beeline at all
  discard   beeline + Flask middleware, a transmission that throws events away
  libhoney  beeline + Flask middleware, libhoney's threaded Transmission
  beeline   beeline + Flask middleware, beeline's own transmission
  beeline-stdlib  the same, its span events encoded by the stdlib json module even when
            orjson (the `fast` extra) is installed
BENCH_SINK is the receiver's URL. GET /__flush delivers what is queued and answers with the
number of spans handed to the transmission, so the benchmark can check every one arrived.
"""

from __future__ import annotations

import json
import os
import threading

from flask import Flask

MODE = os.environ.get("BENCH_MODE", "none")
SINK = os.environ.get("BENCH_SINK", "")

app = Flask(__name__)


class Counting:
    """Wraps a transmission to count the spans handed to it (one integer add per span)."""

    def __init__(self, inner=None):
        self.inner = inner
        self.count = 0

    def start(self):
        if self.inner is not None:
            self.inner.start()

    def send(self, ev):
        self.count += 1
        if self.inner is not None:
            self.inner.send(ev)

    def flush(self, timeout=None):
        return self.inner.flush(timeout) if hasattr(self.inner, "flush") else True

    def close(self, timeout=None):
        if self.inner is not None:
            self.inner.close()

    def get_response_queue(self):
        return self.inner.get_response_queue() if self.inner is not None else None


counting = None
if MODE != "none":
    import beeline
    from beeline.middleware.flask import HoneyMiddleware

    if MODE == "libhoney":
        from libhoney.transmission import Transmission

        inner = Transmission()
    elif MODE in ("beeline", "beeline-stdlib"):
        from beeline.transmission import BeelineTransmission

        if MODE == "beeline-stdlib":
            from beeline.transmission import encoding

            encoding.fast_dumps = None
        inner = BeelineTransmission()
    else:
        inner = None
    counting = Counting(inner)
    beeline.init(writekey="bench-key", dataset="bench", service_name="bench", api_host=SINK,
                 transmission_impl=counting)
    HoneyMiddleware(app, db_events=False)


@app.route("/")
def hello():
    return "Hello, World!"


@app.route("/__flush")
def flush():
    delivered = True
    if counting is not None and counting.inner is not None:
        if MODE == "libhoney":
            # libhoney's only way to deliver everything queued: close, then start again. Read
            # its responses meanwhile, or close() waits 10 s for room for its final None.
            responses = counting.inner.get_response_queue()

            def read():
                while responses.get() is not None:
                    pass

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            counting.inner.close()
            reader.join(5)
            counting.inner.start()
        else:
            delivered = counting.inner.flush(30)
    stats = getattr(counting.inner, "stats", None) if counting is not None else None
    return json.dumps({"spans": counting.count if counting else 0, "delivered": delivered, "stats": stats})
