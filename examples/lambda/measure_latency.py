"""How much time the Lambda wrapper adds to each invocation, against a loopback Events API.

    .venv/bin/python examples/lambda/measure_latency.py [invocations]

Every invocation of the wrapped handler ends with its spans on the wire (that is the point of
the flush), so the added time is mostly one HTTP round trip to the receiver. Four runs of the
same handler (one child span, so two events per invocation):

* plain: no beeline at all (the baseline);
* wrapped: beeline_wrapper with beeline's transmission, flushed per invocation;
* wrapped, no flush possible: libhoney's own Transmission (the wrapper warns once and goes on);
* libhoney Client.flush() per invocation: what honeycomb-beeline did (close and restart the
  sender threads every time), for comparison.

The receiver runs on 127.0.0.1 in this process; real Honeycomb adds network latency on top.
"""

from __future__ import annotations

import logging
import pathlib
import statistics
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import libhoney.transmission  # noqa: E402

import beeline  # noqa: E402
from beeline.middleware.awslambda import beeline_wrapper  # noqa: E402
from beeline.transmission import BeelineTransmission  # noqa: E402
from tests.receiver import LoopbackReceiver  # noqa: E402

EVENT = {"Records": [{"messageId": "m-1", "body": "{}", "messageAttributes": {}, "eventSource": "aws:sqs"}]}


class Context:
    function_name = "latency-probe"
    function_version = "$LATEST"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def work(event, context):
    with beeline.tracer("work"):
        return {"ok": True}


def timed(fn, n: int) -> list:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn(EVENT, Context())
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def summary(samples: list) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"median {statistics.median(ordered):7.3f} ms   p90 {p(0.90):7.3f} ms   p99 {p(0.99):7.3f} ms"


def run(n: int) -> None:
    logging.getLogger("beeline").setLevel(logging.ERROR)  # the no-flush run warns once by design
    results = {}
    results["plain"] = timed(work, n)

    wrapped = beeline_wrapper(work)
    with LoopbackReceiver() as rx:
        beeline.init(writekey="0" * 32, dataset="latency", service_name="probe", api_host=rx.url,
                     transmission_impl=BeelineTransmission())
        timed(wrapped, 20)  # warm up connections and code paths
        results["wrapped (beeline transmission, flushed)"] = timed(wrapped, n)
        beeline.close()
        delivered = len(rx.events)

        beeline.init(writekey="0" * 32, dataset="latency", service_name="probe", api_host=rx.url,
                     transmission_impl=libhoney.transmission.Transmission())
        timed(wrapped, 20)
        results["wrapped (libhoney Transmission, no flush)"] = timed(wrapped, n)
        beeline.close()

        def reference_style(event, context):
            # honeycomb-beeline called libhoney's Client.flush() after every invocation.
            result = work(event, context)
            beeline.get_beeline().client.flush()
            return result

        beeline.init(writekey="0" * 32, dataset="latency", service_name="probe", api_host=rx.url,
                     transmission_impl=libhoney.transmission.Transmission())
        timed(reference_style, 5)
        results["libhoney Client.flush() per invocation"] = timed(reference_style, min(n, 200))
        beeline.close()

    base = statistics.median(results["plain"])
    print(f"{n} invocations, 2 events each; receiver on {rx.url}")
    for name, samples in results.items():
        print(f"  {name:45s} {summary(samples)}")
    for name, samples in list(results.items())[1:]:
        print(f"  added by {name:36s} {statistics.median(samples) - base:7.3f} ms (median)")
    print(f"  events delivered in the flushed run: {delivered} of {2 * (n + 20)}")


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
