"""The command line, run as a user runs it: `python -m beeline view ...` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ANSI, REPO, clean_env, line, span, view, write_lines

SHOP = "4bf92f3577b34da6a3ce929d0e0e4736"
SEARCH = "00f067aa0ba902b7aaaaaaaaaaaaaaaa"


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    good = [
        # Written in finishing order, children before parents, like the sink writes them.
        line(span(SHOP, "b1", "a1", "load_cart", 2, 20.5)),
        line(span(SHOP, "c1", "a1", "charge_card", 25, 40.25, service="billing",
                  **{"meta.span_type": "subroot", "app.exception_type": "<class 'ValueError'>",
                     "app.exception_string": "card declined"})),
        line(span(SHOP, "a1", None, "checkout", 0, 70, **{"meta.span_type": "root", "response.status_code": 500}),
             style="offset"),
        line(span(SEARCH, "s2", "gone", "rank", 1010, 5, service="search"), style="naive"),
        line(span(SEARCH, "s1", None, "search", 1000, 300, service="search"), style="bare"),
        line(span(None, None, None, "audit_event", 2000, None, ok=True)),
    ]
    broken = [good[0][:40], "garbage", '{"data": 7}']
    return write_lines(tmp_path / "traces.jsonl", [good[0], good[1], broken[0], good[2], broken[1], good[3],
                                                   good[4], broken[2], good[5]])


def test_draws_every_trace_in_start_order_and_counts_broken_lines(trace_file: Path) -> None:
    result = view(str(trace_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ANSI not in out  # stdout is a pipe: plain text
    assert out.index(f"trace {SHOP}") < out.index(f"trace {SEARCH}") < out.index("standalone events")
    assert "checkout" in out and "├─ load_cart" in out and "└─ ✗ charge_card" in out
    assert "rank [parent gone missing]" in out
    assert "ValueError: card declined" in out and "HTTP 500" in out
    assert "audit_event" in out
    assert out.rstrip().endswith(
        "2 traces, 5 spans, 1 standalone event, 2 errors; skipped 3 broken lines (line 3, 5, 8)"
    )
    assert result.stderr == ""


def test_service_column_shows_each_span_service(trace_file: Path) -> None:
    out = view(str(trace_file), "--trace", SHOP).stdout
    charge = next(text for text in out.splitlines() if "charge_card" in text)
    load = next(text for text in out.splitlines() if "load_cart" in text)
    assert " billing " in charge and " shop " in load
    assert "2 services" in out


def test_filters(trace_file: Path) -> None:
    only_search = view(str(trace_file), "--trace", SEARCH[:8]).stdout
    assert f"trace {SEARCH}" in only_search and f"trace {SHOP}" not in only_search
    assert "standalone events" not in only_search  # they belong to no trace

    billing = view(str(trace_file), "--service", "billing").stdout
    assert f"trace {SHOP}" in billing and f"trace {SEARCH}" not in billing
    assert "(showing 1 trace)" in billing

    slowest = view(str(trace_file), "--slowest", "1").stdout
    assert f"trace {SEARCH}" in slowest and f"trace {SHOP}" not in slowest
    assert "standalone events" not in slowest
    assert "audit_event" in view(str(trace_file), "--service", "shop").stdout
    assert "audit_event" not in billing

    nothing = view(str(trace_file), "--trace", "ffffffff")
    assert nothing.returncode == 0
    assert "no trace matches trace id 'ffffffff'" in nothing.stdout


def test_fields_on_demand(trace_file: Path) -> None:
    plain = view(str(trace_file), "--trace", SHOP).stdout
    detailed = view(str(trace_file), "--trace", SHOP, "--fields").stdout
    assert "meta.local_hostname: web-1" not in plain
    assert "meta.local_hostname: web-1" in detailed
    assert "response.status_code: 500" in detailed
    assert "trace.span_id" not in detailed and "duration_ms" not in detailed


def test_colour_is_forced_on_or_off(trace_file: Path) -> None:
    assert ANSI in view(str(trace_file), "--color").stdout
    assert ANSI not in view(str(trace_file), "--no-color").stdout
    # NO_COLOR is honoured when nothing is forced; --color still wins over it.
    assert ANSI in view(str(trace_file), "--color", env=clean_env(NO_COLOR="1")).stdout


def test_colour_by_default_on_a_terminal(trace_file: Path) -> None:
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "beeline", "view", str(trace_file)],
            stdout=follower, stderr=subprocess.PIPE, cwd=REPO, env=clean_env(TERM="xterm"),
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the viewer exits
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    finally:
        os.close(leader)
    assert ANSI.encode() in b"".join(chunks)


def test_width(trace_file: Path) -> None:
    for width in ("50", "140"):
        out = view(str(trace_file), "--width", width).stdout
        assert max(len(text) for text in out.splitlines()) <= int(width)
    wide = view(str(trace_file), "--width", "140").stdout
    assert max(len(text) for text in wide.splitlines()) > 100
    # Without --width and without a terminal, COLUMNS decides, then the default of 100.
    env_wide = view(str(trace_file), env=clean_env(COLUMNS="140")).stdout
    assert env_wide == wide
    default = view(str(trace_file)).stdout
    assert max(len(text) for text in default.splitlines()) <= 100


def test_stdin(trace_file: Path) -> None:
    from_file = view(str(trace_file)).stdout
    from_pipe = view("-", stdin=trace_file.read_text(encoding="utf-8"))
    assert from_pipe.returncode == 0
    assert from_pipe.stdout == from_file


def test_empty_and_all_broken_files(tmp_path: Path) -> None:
    empty = view(str(write_lines(tmp_path / "empty.jsonl", [])))
    assert empty.returncode == 0
    assert empty.stdout.strip() == "0 traces, 0 spans, 0 standalone events"
    junk = view(str(write_lines(tmp_path / "junk.jsonl", ["\x00\x01", "{", "null"])))
    assert junk.returncode == 0
    assert "skipped 3 broken lines (line 1, 2, 3)" in junk.stdout


def test_invalid_bytes_do_not_stop_the_viewer(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    good = line(span(SHOP, "a1", None, "checkout", 0, 70)).encode()
    path.write_bytes(b"\xff\xfe\x00garbage\n" + good.replace(b"checkout", b"check\xe9out") + b"\n" + good + b"\n")
    result = view(str(path))
    assert result.returncode == 0
    assert "check\ufffdout" in result.stdout and "skipped 1 broken line (line 1)" in result.stdout


def test_usage_errors(tmp_path: Path) -> None:
    missing = view(str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    directory = view(str(tmp_path))
    assert directory.returncode == 1 and "is a directory" in directory.stderr
    assert view(str(tmp_path), "--slowest", "0").returncode == 2
    combined = view(str(tmp_path / "x.jsonl"), "--follow", "--slowest", "3")
    assert combined.returncode == 2 and "--slowest" in combined.stderr
    bare = subprocess.run([sys.executable, "-m", "beeline"], capture_output=True, text=True, cwd=REPO,
                          env=clean_env(), timeout=60)
    assert bare.returncode == 2 and "view" in bare.stderr


def test_console_script(trace_file: Path) -> None:
    script = Path(sys.executable).with_name("beeline")
    if not script.exists():
        pytest.skip("the package is not installed with its console script in this environment")
    result = subprocess.run([str(script), "view", str(trace_file)], capture_output=True, text=True,
                            env=clean_env(), timeout=60)
    assert result.returncode == 0
    assert result.stdout == view(str(trace_file)).stdout


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    lines = [line(span(f"{i:032x}", "a1", None, f"request_{i}", i, 1.0)) for i in range(2000)]
    path = write_lines(tmp_path / "many.jsonl", lines)
    viewer = subprocess.Popen([sys.executable, "-m", "beeline", "view", str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=REPO, env=clean_env())
    assert viewer.stdout is not None
    viewer.stdout.readline()
    viewer.stdout.close()  # like `| head -1`
    _, err = viewer.communicate(timeout=60)
    assert viewer.returncode == 0
    assert b"Traceback" not in err
