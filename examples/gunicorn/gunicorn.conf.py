"""gunicorn settings for the example: two forked workers, the app (and beeline.init) loaded
once in the master. Any worker class works: sync (default), gthread (`--threads 4`), ..."""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
preload_app = True
