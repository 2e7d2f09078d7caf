"""A Starlette app traced by beeline's ASGI middleware.

    python examples/asgi/app.py            # serves a few concurrent requests, prints the traces
    uvicorn app:app --app-dir examples/asgi   # or serve it (then: curl localhost:8000/orders/7)

No account needed: without a write key each trace is printed on stderr. `beeline.init()` runs at
import time, before uvicorn starts its event loop; concurrent requests still get a trace each.
"""

import asyncio
import os
import threading
import time

import beeline
import uvicorn
from beeline.middleware.asgi import HoneyASGIMiddleware
from beeline.threads import ContextExecutor
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

beeline.init(
    service_name=os.environ.get("SERVICE_NAME", "asgi-example"),
    api_host=os.environ.get("HONEYCOMB_API_HOST", "https://api.honeycomb.io"),
)

# Blocking calls go to a pool that keeps the request's trace (asyncio's default pool does not).
blocking_pool = ContextExecutor(max_workers=4)


@beeline.traced("fetch_inventory")
async def fetch_inventory(order_id: int) -> int:
    await asyncio.sleep(0.02)
    return order_id * 3


@beeline.traced("fetch_customer")
async def fetch_customer(order_id: int) -> str:
    await asyncio.sleep(0.03)
    beeline.add_rollup_field("db_ms", 30)
    return f"customer-{order_id % 5}"


def render_invoice(order_id: int) -> str:
    with beeline.tracer("render_invoice"):
        time.sleep(0.01)  # stands for a blocking library call
        return f"invoice {order_id}"


async def order(request):
    order_id = int(request.path_params["order_id"])
    beeline.add_trace_field("order_id", order_id)
    # Two concurrent tasks: each gets its own span, both children of this request's root.
    stock, customer = await asyncio.gather(fetch_inventory(order_id), fetch_customer(order_id))
    loop = asyncio.get_running_loop()
    invoice = await loop.run_in_executor(blocking_pool, render_invoice, order_id)
    return JSONResponse({"order": order_id, "stock": stock, "customer": customer, "invoice": invoice})


async def report(request):
    @beeline.traced("report_rows")
    async def rows():
        for i in range(3):
            await asyncio.sleep(0.01)
            yield f"row {i}\n"

    # The request's span ends after the last chunk is sent.
    return StreamingResponse(rows(), media_type="text/plain")


app = HoneyASGIMiddleware(Starlette(routes=[Route("/orders/{order_id:int}", order), Route("/report", report)]))


def demo() -> None:
    """Serve on 127.0.0.1, send a few concurrent requests, stop."""
    import httpx

    # Port 0: the OS picks a free one, read back once the server is listening.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    port = server.servers[0].sockets[0].getsockname()[1]

    async def requests():
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answers = await asyncio.gather(*(client.get(f"/orders/{i}") for i in range(1, 4)), client.get("/report"))
            for answer in answers:
                print(answer.status_code, answer.text.strip().replace("\n", " | "))

    asyncio.run(requests())
    server.should_exit = True
    thread.join(10)
    beeline.close()


if __name__ == "__main__":
    demo()
