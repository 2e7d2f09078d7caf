"""The frontend service: a Flask app that calls the backend through `requests`.

    python frontend.py PORT BACKEND_URL
"""

import os
import sys

import requests
from flask import Flask, jsonify

import beeline
import beeline.patch.requests  # noqa: F401  (outgoing calls become client spans with trace headers)
from beeline.middleware.flask import HoneyMiddleware

app = Flask(__name__)
BACKEND = os.environ.get("BACKEND_URL", "http://127.0.0.1:8001")


@app.route("/orders/<customer>")
def orders(customer):
    beeline.add_trace_field("customer", customer)  # travels to the backend in the trace header
    with beeline.tracer("fetch_orders"):
        response = requests.get(f"{BACKEND}/orders/{customer}", timeout=5)
    orders = response.json()["orders"]
    beeline.add_context_field("order_count", len(orders))
    return jsonify({"customer": customer, "orders": orders})


def main():
    port = int(sys.argv[1])
    beeline.init(service_name="frontend")
    HoneyMiddleware(app, db_events=False)
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"frontend listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        beeline.close()


if __name__ == "__main__":
    main()
