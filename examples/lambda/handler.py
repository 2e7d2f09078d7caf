"""A traced AWS Lambda function: one handler for HTTP events, one for queue batches.

Deploy `handler.py` with `beeline-tracer` in the package, set HONEYCOMB_API_KEY (and
SERVICE_NAME) in the function's environment, and point Lambda at `handler.get_order` or
`handler.process_orders`. To try it here, with no account and no AWS:

    python examples/lambda/handler.py

runs both handlers on the sample events in `events/` and prints each trace on stderr.
"""

from __future__ import annotations

import json
import pathlib
import sys
import uuid

import beeline
from beeline.middleware.awslambda import beeline_wrapper

# Once per execution environment (cold start), outside the handler.
beeline.init(service_name="order-service")


@beeline.traced("load_order")
def load_order(order_id: str) -> dict:
    beeline.add_context_field("order_id", order_id)
    return {"id": order_id, "status": "paid"}


@beeline_wrapper
def get_order(event, context):
    """API Gateway (REST or HTTP API) or ALB: continues the caller's trace from the headers."""
    order_id = (event.get("pathParameters") or {}).get("id", "42")
    beeline.add_trace_field("order_id", order_id)
    return {"statusCode": 200, "body": json.dumps(load_order(order_id))}


@beeline_wrapper(record_input=False)
def process_orders(event, context):
    """SQS or SNS: one message continues its sender's trace; a batch links every sender's trace."""
    for record in event.get("Records", []):
        with beeline.tracer("process_message"):
            beeline.add_context_field("message_id", record.get("messageId"))
    return {"batchItemFailures": []}


class _LocalContext:
    """Stands in for the context object the Lambda runtime passes."""

    function_name = "order-service"
    function_version = "$LATEST"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


if __name__ == "__main__":
    events = pathlib.Path(__file__).resolve().parent / "events"
    for name in ("apigateway-v1", "apigateway-v2", "alb"):
        get_order(json.loads((events / f"{name}.json").read_text()), _LocalContext())
    for name in ("sqs", "sqs-batch", "sns"):
        process_orders(json.loads((events / f"{name}.json").read_text()), _LocalContext())
    beeline.close()
    sys.exit(0)
