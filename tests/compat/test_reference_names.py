"""Every public name of honeycomb-beeline 3.6.0 exists here, in the same module, so code written
for it imports and subclasses without an AttributeError. The names are read from the reference's
source once (tests/compat/reference_names.py); the few left out are listed with the reason."""

from __future__ import annotations

import importlib
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "reference_names.json"), encoding="utf-8") as _handle:
    REFERENCE = json.load(_handle)

# module -> name (or "Class.method") -> why it is not here.
ALLOWED_ABSENCES = {
    "beeline.aiotrace": {
        "traced_impl": "the reference decorators' internal helper; beeline.traced covers sync and async alike",
    },
    "beeline.trace": {
        "traced_impl": "the reference decorators' internal helper; beeline.traced covers sync and async alike",
        "system_random": "the reference's random source for ids; ids come from generate_trace_id/generate_span_id",
        "Trace.copy": "a trace is shared by its spans across threads and tasks, never copied",
    },
    "beeline.patch.requests": {
        "request": "the reference's wrapt wrapper, installed at import; the patch is applied with patch()",
    },
    "beeline.patch.tornado": {
        "log_exception": "the reference's replacement of a Tornado method; patch() wraps Tornado's own",
        "log_request": "the reference's replacement of a Tornado method; patch() wraps Tornado's own",
    },
}

# Modules whose framework is not installed in every test environment (the framework matrix runs
# one framework per virtualenv).
NEEDS = {
    "beeline.middleware.bottle": "bottle",
    "beeline.middleware.django": "django",
    "beeline.middleware.flask": "flask",
    "beeline.middleware.werkzeug": "werkzeug",
    "beeline.patch.jinja2": "jinja2",
    "beeline.patch.requests": "requests",
    "beeline.patch.tornado": "tornado",
}


def _expected():
    for module, names in REFERENCE.items():
        allowed = ALLOWED_ABSENCES.get(module, {})
        for name, methods in names.items():
            if name not in allowed:
                yield module, name, None
            for method in methods or ():
                if f"{name}.{method}" not in allowed:
                    yield module, name, method


@pytest.mark.parametrize(
    "module,name,method",
    list(_expected()),
    ids=[f"{m}.{n}" + (f".{meth}" if meth else "") for m, n, meth in _expected()],
)
def test_reference_name_exists(module: str, name: str, method) -> None:
    if module in NEEDS:
        pytest.importorskip(NEEDS[module])
    ours = importlib.import_module(module)
    assert hasattr(ours, name), f"{module}.{name} is missing"
    if method is not None:
        assert hasattr(getattr(ours, name), method), f"{module}.{name}.{method} is missing"


def test_every_allowed_absence_is_really_absent() -> None:
    """An entry above that we have since added must go, so the list stays the truth."""
    for module, entries in ALLOWED_ABSENCES.items():
        if module in NEEDS:
            pytest.importorskip(NEEDS[module])
        ours = importlib.import_module(module)
        for entry in entries:
            name, _, method = entry.partition(".")
            target = getattr(ours, name, None)
            present = target is not None and (not method or hasattr(target, method))
            assert not present, f"{module}.{entry} exists now: remove it from ALLOWED_ABSENCES"
            assert name in REFERENCE[module], f"{module}.{name} is not a reference name"
