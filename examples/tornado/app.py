"""A traced Tornado service: every request is a trace, and calls to another service continue it.

    python examples/tornado/app.py          # serve on http://127.0.0.1:8888 until Ctrl-C
    python examples/tornado/app.py --demo   # serve, send a few requests to itself, print, exit

Try `curl -X POST 'http://127.0.0.1:8888/orders?sku=tea&qty=2'` (and `sku=gold` for a failing
order). The /orders handler calls the /inventory handler over HTTP with AsyncHTTPClient, so
each order is one trace spanning both "services", joined by the X-Honeycomb-Trace header.

With no write key the traces are printed on stderr; set BEELINE_TRACE_FILE=traces.jsonl to keep
them for `python -m beeline view traces.jsonl`, or HONEYCOMB_API_KEY to send them to Honeycomb.
"""

import asyncio
import json
import sys

import tornado.httpclient
import tornado.web

import beeline
import beeline.patch.tornado  # noqa: F401  (importing it traces Tornado)

PORT = 8888
STOCK = {"tea": 10, "coffee": 3}


@beeline.traced("check_stock")
async def check_stock(sku, qty):
    await asyncio.sleep(0.002)  # a database call, say
    beeline.add_context_field("app.in_stock", STOCK.get(sku, 0))
    return STOCK.get(sku, 0) >= qty


class InventoryHandler(tornado.web.RequestHandler):
    async def get(self, sku):
        qty = int(self.get_query_argument("qty", "1"))
        if sku not in STOCK:
            raise tornado.web.HTTPError(404, "unknown sku %s", sku)
        self.write({"sku": sku, "available": await check_stock(sku, qty)})


class OrdersHandler(tornado.web.RequestHandler):
    async def post(self):
        sku = self.get_query_argument("sku")
        qty = int(self.get_query_argument("qty", "1"))
        beeline.add_trace_field("sku", sku)  # on every span from here on, here and downstream
        with beeline.tracer("reserve"):
            url = "http://127.0.0.1:%d/inventory/%s?qty=%d" % (PORT, sku, qty)
            response = await tornado.httpclient.AsyncHTTPClient().fetch(url)
            if not json.loads(response.body)["available"]:
                raise ValueError("not enough %s" % sku)
        self.set_status(201)
        self.write({"ordered": sku, "qty": qty})


def make_app():
    return tornado.web.Application(
        [
            (r"/inventory/([a-z]+)", InventoryHandler),
            (r"/orders", OrdersHandler),
        ]
    )


async def demo():
    client = tornado.httpclient.AsyncHTTPClient()
    for query in ("sku=tea&qty=2", "sku=coffee&qty=5", "sku=gold"):
        response = await client.fetch(
            "http://127.0.0.1:%d/orders?%s" % (PORT, query), method="POST", body="", raise_error=False
        )
        print("POST /orders?%s -> %d" % (query, response.code))


async def main(run_demo):
    make_app().listen(PORT, address="127.0.0.1")
    if run_demo:
        await demo()
    else:
        print("serving on http://127.0.0.1:%d (Ctrl-C to stop)" % PORT)
        await asyncio.Event().wait()


if __name__ == "__main__":
    beeline.init(service_name="tornado-example")
    try:
        asyncio.run(main("--demo" in sys.argv[1:]))
    except KeyboardInterrupt:
        pass
    finally:
        beeline.close()
