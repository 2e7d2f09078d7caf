"""Enqueue a few tasks from inside a trace; the worker continues it (see tasks.py).

    python enqueue.py [count]
"""

import sys

import beeline
from tasks import resize_image


def main(count: int) -> str:
    with beeline.tracer("upload_batch") as span:
        beeline.add_trace_field("batch", "demo")
        for image_id in range(count):
            resize_image.delay(image_id, fail_first=(image_id == 0))
        trace_id = span.trace_id
    beeline.close()
    return trace_id


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4))
