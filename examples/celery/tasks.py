"""Celery tasks traced by beeline: each task run continues the trace that enqueued it.

The broker is a folder on disk (kombu's filesystem transport), so this runs with no server:

    cd examples/celery
    celery -A tasks worker --pool=prefork --concurrency=2 --loglevel=info   # terminal 1
    python enqueue.py                                                         # terminal 2

`beeline.init()` runs when the worker imports this module, in the worker's main process, before
the prefork pool forks its children: every child sends its own events with nothing more to
configure. With no write key the traces are printed on stderr.
"""

import os
import random
import time

import beeline
import beeline.middleware.celery  # noqa: F401  (connects the Celery signal handlers)
from celery import Celery

BROKER_DIR = os.environ.get("CELERY_BROKER_DIR", os.path.join(os.path.dirname(__file__), ".broker"))
for sub in ("queue", "processed", "control"):
    os.makedirs(os.path.join(BROKER_DIR, sub), exist_ok=True)

app = Celery("tasks", broker="filesystem://")
app.conf.update(
    broker_transport_options={
        "data_folder_in": os.path.join(BROKER_DIR, "queue"),
        "data_folder_out": os.path.join(BROKER_DIR, "queue"),
        "processed_folder": os.path.join(BROKER_DIR, "processed"),
        "control_folder": os.path.join(BROKER_DIR, "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    },
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
)

beeline.init(
    service_name=os.environ.get("SERVICE_NAME", "celery-example"),
    api_host=os.environ.get("HONEYCOMB_API_HOST", "https://api.honeycomb.io"),
)


@app.task(bind=True, max_retries=2)
def resize_image(self, image_id, fail_first=False):
    # Which pool process ran it: every one of them sends its events.
    beeline.add_context_field("worker_pid", os.getpid())
    with beeline.tracer("download"):
        time.sleep(float(os.environ.get("WORK_SECONDS", "0.05")))
    if fail_first and self.request.retries == 0:
        # The retry runs as a child of this attempt, in the same trace.
        raise self.retry(countdown=0, exc=IOError("storage busy"))
    with beeline.tracer("resize"):
        beeline.add_rollup_field("pixels", random.randint(1000, 5000))
    return image_id
