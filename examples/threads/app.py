"""Thread pools inside a trace: work handed to other threads stays in the request's trace.

    python examples/threads/app.py

Two "requests" run at once, each fanning out to one shared pool. Every span lands in its own
request's trace, under the span that submitted it; rollups and trace fields recorded in the
workers reach the request's root span. Without a write key the traces are printed on stderr.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import beeline
from beeline.threads import ContextExecutor, submit

beeline.init(
    service_name=os.environ.get("SERVICE_NAME", "threads-example"),
    api_host=os.environ.get("HONEYCOMB_API_HOST", "https://api.honeycomb.io"),
)

# A pool created once, shared by every request: the trace is taken at submit time.
pool = ContextExecutor(max_workers=4)


def fetch_price(sku: str) -> float:
    with beeline.tracer("fetch_price"):
        beeline.add_context_field("sku", sku)
        time.sleep(0.01)
        beeline.add_rollup_field("remote_ms", 10)
        return len(sku) * 1.5


def audit(user: str) -> None:
    with beeline.tracer("audit"):
        beeline.add_trace_field("audited", True)
        time.sleep(0.005)


def handle_request(user: str, skus: list) -> None:
    with beeline.tracer("checkout"):
        beeline.add_trace_field("user", user)
        prices = list(pool.map(fetch_price, skus))
        beeline.add_context_field("total", sum(prices))

        # A pool you did not create (a library's): the submit helper carries the trace in.
        with ThreadPoolExecutor(max_workers=1) as other_pool:
            submit(other_pool, audit, user).result()

        # A plain thread: traced_thread carries the trace active where it is applied.
        notifier = threading.Thread(target=beeline.traced_thread(audit), args=(user,))
        notifier.start()
        notifier.join()


if __name__ == "__main__":
    requests = [
        threading.Thread(target=handle_request, args=("ada", ["apple", "pear", "fig"])),
        threading.Thread(target=handle_request, args=("bob", ["kiwi", "plum"])),
    ]
    for r in requests:
        r.start()
    for r in requests:
        r.join()
    pool.shutdown()
    beeline.close()
