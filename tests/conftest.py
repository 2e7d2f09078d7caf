"""Every test starts with no beeline configured and no active span, whatever the last one did."""

import logging

import pytest

import beeline
from beeline.internal import reset_warnings
from beeline.trace import current_span_var

_ROOT_LEVEL = logging.getLogger().level


@pytest.fixture(autouse=True)
def _clean_beeline_state(monkeypatch):
    for name in ("BEELINE_DISABLED", "BEELINE_TRACE_FILE", "HONEYCOMB_WRITEKEY", "HONEYCOMB_API_KEY",
                 "HONEYCOMB_DATASET", "HONEYCOMB_SERVICE", "SERVICE_NAME", "PROCESS_EXECUTABLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    beeline.close()
    # init() sets this module global from the key's kind, and close() leaves it (as in the
    # reference): each test starts from the import-time value.
    monkeypatch.setattr(beeline.propagation, "propagate_dataset", True)
    token = current_span_var.set(None)
    reset_warnings()
    logger = logging.getLogger("beeline")
    level, handlers = logger.level, list(logger.handlers)
    # Some frameworks' test workers (Celery) reconfigure logging: raise the root level, disable
    # existing loggers. Each test starts from the logging setup the session started with.
    logger.disabled, logger.propagate = False, True
    logging.getLogger().setLevel(_ROOT_LEVEL)
    yield
    beeline.close()
    current_span_var.reset(token)
    logger.setLevel(level)
    logger.handlers[:] = handlers
