"""Run both services on 127.0.0.1, send a few requests, stop them, and draw the traces.

    python examples/distributed/run.py [TRACE_FILE]

Everything stays on this machine: with no write key, both services append their events to one
JSON-lines file, and `python -m beeline view` draws each trace across both services.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REQUESTS = ["ada", "bob", "ada"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port, deadline):
    """Wait for the port to accept connections (no HTTP request, so no extra trace)."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} in time")


def wait_for_quiet_file(path, deadline):
    """A root span finishes just after its response is sent: wait until the trace file has
    stopped growing before stopping the services."""
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if size != last:
            last, quiet_since = size, time.monotonic()
        elif time.monotonic() - quiet_since > 0.5:
            return
        time.sleep(0.05)


def main():
    trace_file = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "distributed-traces.jsonl")
    if os.path.exists(trace_file):
        os.remove(trace_file)
    workdir = tempfile.mkdtemp(prefix="beeline-demo-")
    backend_port, frontend_port = free_port(), free_port()
    env = dict(os.environ, BEELINE_TRACE_FILE=trace_file, BEELINE_LOCAL_STDERR="false",
               BACKEND_URL=f"http://127.0.0.1:{backend_port}")
    env.pop("HONEYCOMB_API_KEY", None)
    env.pop("HONEYCOMB_WRITEKEY", None)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    services = [
        subprocess.Popen([sys.executable, os.path.join(HERE, "backend.py"), str(backend_port),
                          os.path.join(workdir, "orders.sqlite3")], env=env, **quiet),
        subprocess.Popen([sys.executable, os.path.join(HERE, "frontend.py"), str(frontend_port)], env=env, **quiet),
    ]
    try:
        deadline = time.monotonic() + 30
        base = f"http://127.0.0.1:{frontend_port}"
        wait_until_up(backend_port, deadline)
        wait_until_up(frontend_port, deadline)
        for customer in REQUESTS:
            with urllib.request.urlopen(f"{base}/orders/{customer}", timeout=10) as response:
                print(f"GET /orders/{customer} -> {response.status} {response.read().decode().strip()}")
        wait_for_quiet_file(trace_file, time.monotonic() + 5)
    finally:
        for proc in services:
            proc.send_signal(signal.SIGINT)  # KeyboardInterrupt: each service closes the beeline
        for proc in services:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print()
    sys.stdout.flush()
    viewer = [sys.executable, "-m", "beeline", "view", trace_file]
    return subprocess.call(viewer)


if __name__ == "__main__":
    sys.exit(main())
