"""The framework version matrix: each integration's tests against the oldest and the newest
release of its framework that beeline supports.

    make test-matrix          # every session (what CI runs after `make test`)
    .venv/bin/nox -l          # list the sessions
    .venv/bin/nox -s tornado  # both Tornado sessions; -s "tornado(oldest)" for one

Each session gets a virtualenv of its own (nox's default, under .nox/) holding beeline, the test
tools and only its framework at the pinned versions, and runs only that framework's tests, so a
framework's tests cannot lean on another framework being installed.

"oldest" is the newest patch release of the oldest supported minor series (users on an old
series run its last patch); "newest" is whatever the package index has today, within what
setup.cfg allows. Oldest pins were checked to install and run on Python 3.11.
"""

from __future__ import annotations

import glob
import os

import nox

nox.options.error_on_external_run = True

HERE = os.path.dirname(os.path.abspath(__file__))

# What every framework's tests need besides the framework (tests/receiver.py and the shared
# middleware helpers use only the standard library; the WSGI tests drive servers with requests).
TEST_TOOLS = ["pytest>=7", "pytest-timeout", "requests>=2.20"]

MATRIX = {
    "flask": {
        "about": "Flask + Flask-SQLAlchemy + SQLAlchemy, Werkzeug and plain WSGI.",
        # Flask 2.2 needs Werkzeug 2.2 (Werkzeug 2.3/3.x removed APIs it uses); Flask-SQLAlchemy
        # 3.0 is the series that supports Flask 2.2, and SQLAlchemy 1.4 the oldest it runs on.
        "oldest": ["flask~=2.2.0", "werkzeug~=2.2.0", "flask-sqlalchemy~=3.0.0", "sqlalchemy~=1.4.0"],
        "newest": ["flask", "werkzeug", "flask-sqlalchemy", "sqlalchemy"],
        # The generic WSGI and Werkzeug middlewares run on the Werkzeug that each Flask brings.
        "tests": [
            "tests/middleware/test_flask*.py",
            "tests/middleware/test_werkzeug.py",
            "tests/middleware/test_wsgi.py",
        ],
    },
    "django": {
        "about": "Django.",
        "oldest": ["django~=4.2.0"],
        "newest": ["django"],
        # The ASGI tests serve the project with uvicorn.
        "with": ["uvicorn"],
        "tests": ["tests/middleware/test_django*.py"],
    },
    "bottle": {
        "about": "Bottle.",
        "oldest": ["bottle~=0.12.0"],
        "newest": ["bottle"],
        # The Bottle app is served by werkzeug's threaded server in the tests.
        "with": ["werkzeug"],
        "tests": ["tests/middleware/test_bottle*.py"],
    },
    "requests": {
        "about": "The requests and urllib patches, with the destination allow-list.",
        # The outgoing-call patches: requests (and urllib from the standard library), and the
        # destination allow-list they share.
        "oldest": ["requests~=2.25.0"],
        "newest": ["requests"],
        "tests": [
            "tests/patch/test_requests.py",
            "tests/patch/test_urllib.py",
            "tests/patch/test_destinations.py",
        ],
    },
    "jinja2": {
        "about": "The jinja2 patch.",
        "oldest": ["jinja2~=3.0.0"],
        "newest": ["jinja2"],
        "tests": ["tests/patch/test_jinja2.py"],
    },
    "tornado": {
        "about": "Tornado (server tracing and AsyncHTTPClient).",
        # Tornado 6.0 is the first release with native-coroutine handlers, and it still
        # installs and runs on Python 3.11.
        "oldest": ["tornado~=6.0.0"],
        "newest": ["tornado"],
        "tests": ["tests/middleware/test_tornado*.py"],
    },
}

# Tests that fail on one end of the matrix because of a known, reported bug in the integration
# (not in the test): deselected there, and printed in the session log every time, so the rest
# of the matrix keeps guarding CI. Remove an entry as soon as its bug is fixed.
KNOWN_FAILURES: dict = {}

LEVELS = [nox.param(level, id=level) for level in ("oldest", "newest")]


def _test_files(patterns: list) -> list:
    found = []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(HERE, pattern))):
            relative = os.path.relpath(path, HERE)
            if relative not in found:
                found.append(relative)
    return found


def _run_framework(session: nox.Session, framework: str, level: str) -> None:
    entry = MATRIX[framework]
    files = _test_files(entry["tests"])
    if not files:
        session.skip(f"no {framework} tests in this checkout yet")
    session.install(*TEST_TOOLS, *entry.get("with", []))
    session.install("-e", ".")
    # Installed last and in one step, so these pins decide, whatever the steps before pulled in.
    session.install(*entry[level])
    session.run("python", "-m", "pip", "list", "--disable-pip-version-check", silent=False)
    deselect = []
    for test_id, reason in KNOWN_FAILURES.get((framework, level), {}).items():
        session.warn(f"KNOWN FAILURE, deselected: {test_id}: {reason}")
        deselect += ["--deselect", test_id]
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *deselect, *files, *session.posargs)


def _define_session(framework: str) -> None:
    """One session per MATRIX entry, named after it, run at each level: `nox -s "flask(oldest)"`."""

    def run(session: nox.Session, level: str) -> None:
        _run_framework(session, framework, level)

    run.__doc__ = MATRIX[framework]["about"]
    nox.session(name=framework)(nox.parametrize("level", LEVELS)(run))


for _framework in MATRIX:
    _define_session(_framework)
