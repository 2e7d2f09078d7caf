"""The smallest traced program: one trace with nested spans, a trace field, a rollup and an error.

Run it with no account:  python examples/hello-world/app.py
Each finished trace is printed on stderr; set BEELINE_TRACE_FILE=traces.jsonl to also keep the
events for `python -m beeline view traces.jsonl`. Set HONEYCOMB_API_KEY to send them to Honeycomb.
"""

import random
import time

import beeline


@beeline.traced("load_customer")
def load_customer(customer_id):
    beeline.add_context_field("customer_id", customer_id)
    time.sleep(0.003)
    beeline.add_rollup_field("db_ms", 3.0)
    return {"id": customer_id, "plan": "pro"}


@beeline.traced("charge_card")
def charge_card(amount):
    beeline.add_context_field("amount", amount)
    time.sleep(0.005)
    if amount > 100:
        raise ValueError("card declined")
    return "ok"


def handle_order(order_id, amount):
    with beeline.tracer("handle_order"):
        beeline.add_trace_field("order_id", order_id)
        customer = load_customer(random.randint(1, 99))
        beeline.add_context_field("plan", customer["plan"])
        try:
            charge_card(amount)
        except ValueError:
            beeline.add_context_field("declined", True)


def main():
    beeline.init(service_name="hello-world")
    handle_order("A-1", 42)
    handle_order("A-2", 250)
    beeline.close()


if __name__ == "__main__":
    main()
