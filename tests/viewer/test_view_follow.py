"""`--follow`: traces printed as they complete in a file that another writer is appending to."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from beeline.viewer.follow import FileTail, TraceGate
from beeline.viewer.reading import LineParser

from .helpers import WAIT_S, StartViewer, line, span


def parsed(record: dict):
    result = LineParser().feed(line(record))
    assert result is not None
    return result


def test_gate_holds_a_trace_until_its_root_is_in_and_it_went_quiet() -> None:
    gate = TraceGate(settle=1.0)
    gate.add(parsed(span("t1", "b1", "a1", "child", 1, 5)), now=0.0)
    assert gate.due(now=5.0) == []  # no root yet, however long we wait
    gate.add(parsed(span("t1", "a1", None, "root", 0, 10)), now=5.0)
    assert gate.due(now=5.5) == []  # root in, but spans may still trail it
    ((trace, note),) = gate.due(now=6.0)
    assert [s.name for s in trace.spans] == ["child", "root"] and note == ""
    assert gate.due(now=9.0) == []  # printed once


def test_a_late_span_redraws_its_trace_marked() -> None:
    gate = TraceGate(settle=1.0)
    gate.add(parsed(span("t1", "a1", None, "root", 0, 10)), now=0.0)
    assert len(gate.due(now=1.0)) == 1
    gate.add(parsed(span("t1", "c1", "a1", "late", 2, 1)), now=2.0)
    ((trace, note),) = gate.due(now=3.0)
    assert [s.name for s in trace.spans] == ["root", "late"]
    assert note == "updated: 1 late span"
    assert (gate.traces_seen, gate.spans_seen) == (1, 2)


def test_at_the_end_everything_held_is_released_incomplete_ones_marked() -> None:
    gate = TraceGate(settle=1.0)
    gate.add(parsed(span("t2", "b1", "a1", "headless", 100, 5)), now=0.0)
    gate.add(parsed(span("t1", "a1", None, "root", 0, 10, error="boom")), now=0.0)
    released = gate.rest(now=0.1)
    assert [(t.trace_id, note) for t, note in released] == [("t1", ""), ("t2", "incomplete")]
    assert gate.errors_seen == 1


def test_file_tail_waits_holds_partial_lines_and_follows_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "grow.jsonl"
    tail = FileTail(str(path), poll=0.01)
    lines = iter(tail)
    assert next(lines) is None  # no file yet
    path.write_bytes(b"first\nsec")
    assert next(lines) == "first\n"
    assert next(lines) is None and tail.pending == "sec"
    with path.open("ab") as handle:
        handle.write(b"ond\n")
    assert next(lines) == "second\n"
    path.write_bytes(b"new\n")  # truncated and rewritten, shorter than before
    assert [text for text in (next(lines) for _ in range(3)) if text is not None][:1] == ["new\n"]
    rotated = tmp_path / "grow.next"
    rotated.write_bytes(b"rotated\n")
    os.replace(rotated, path)  # replaced by a new file, as log rotation does
    assert [text for text in (next(lines) for _ in range(3)) if text is not None][:1] == ["rotated\n"]


def test_follow_prints_traces_as_a_background_writer_completes_them(
    tmp_path: Path, follow_viewer: StartViewer
) -> None:
    path = tmp_path / "live.jsonl"  # does not exist yet: the viewer waits for it
    viewer = follow_viewer(str(path), "--settle", "0.3", "--max-seconds", "120")
    steps: queue.Queue[str] = queue.Queue()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with path.open("a", encoding="utf-8") as handle:
                for step in iter(steps.get, "stop"):
                    handle.write(step)
                    handle.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    background = threading.Thread(target=writer, daemon=True)
    background.start()
    child = line(span("aaaa", "b1", "a1", "first_child", 1, 5))
    steps.put(child[:30])  # half a line: must wait for the rest, not count it as broken
    steps.put(child[30:] + "\n")
    steps.put(line(span("aaaa", "a1", None, "first_root", 0, 10)) + "\n")
    viewer.wait_for("trace aaaa")
    viewer.wait_for("└─ first_child")

    steps.put("not json\n")
    steps.put(line(span(None, None, None, "an_event", 20, None)) + "\n")
    viewer.wait_for("an_event")
    steps.put(line(span("bbbb", "x1", None, "second_root", 50, 3)) + "\n")
    viewer.wait_for("trace bbbb")
    steps.put(line(span("cccc", "y2", "y1", "never_finished", 60, 1)) + "\n")
    steps.put(line(span(None, None, None, "last_event", 70, None)) + "\n")
    viewer.wait_for("last_event")  # so the viewer has read everything before it is stopped
    steps.put("stop")
    background.join(timeout=WAIT_S)
    assert not failures

    viewer.process.send_signal(signal.SIGINT)  # how a user ends a watch
    code, out, err = viewer.finish()
    assert code == 0, err
    assert "Traceback" not in err
    assert out.count("trace aaaa") == 1 and out.count("trace bbbb") == 1
    assert out.index("trace aaaa") < out.index("an_event") < out.index("trace bbbb")
    assert out.index("trace bbbb") < out.index("trace cccc")  # held until the end: no root
    assert "no root span" in out and "incomplete" in out
    assert out.splitlines()[-1] == (
        "3 traces, 4 spans, 2 standalone events; skipped 1 broken line (line 3)"
    )


def test_follow_stops_by_itself_after_max_seconds(tmp_path: Path, follow_viewer: StartViewer) -> None:
    path = tmp_path / "quiet.jsonl"
    path.write_text(line(span("dddd", "a1", None, "only_root", 0, 10)) + "\n" + '{"cut": ', encoding="utf-8")
    viewer = follow_viewer(str(path), "--settle", "0.2", "--max-seconds", "1")
    code, out, err = viewer.finish()
    assert code == 0, err
    assert out.count("trace dddd") == 1
    # The unfinished last line is parsed at exit, and counted as broken.
    assert out.splitlines()[-1] == "1 trace, 1 span, 0 standalone events; skipped 1 broken line (line 2)"


def test_follow_on_stdin_ends_when_the_pipe_closes(follow_viewer: StartViewer) -> None:
    viewer = follow_viewer("-", "--settle", "0.2", stdin=subprocess.PIPE)
    assert viewer.process.stdin is not None
    viewer.process.stdin.write(line(span("eeee", "a1", None, "piped_root", 0, 10)) + "\n")
    viewer.process.stdin.flush()
    viewer.wait_for("trace eeee")
    viewer.process.stdin.write(line(span("ffff", "b2", "b1", "piped_orphan", 5, 1)) + "\n")
    viewer.process.stdin.close()
    code, out, err = viewer.finish()
    assert code == 0, err
    assert "piped_orphan [parent b1 missing]" in out
    assert out.splitlines()[-1] == "2 traces, 2 spans, 0 standalone events"


@pytest.mark.parametrize("filters, shown, hidden", [
    (("--service", "billing"), "trace 1111", "trace 2222"),
    (("--trace", "2222"), "trace 2222", "trace 1111"),
])
def test_follow_applies_filters(
    tmp_path: Path, filters: tuple[str, str], shown: str, hidden: str, follow_viewer: StartViewer
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join([
        line(span("1111", "a1", None, "pay", 0, 10, service="billing")) + "\n",
        line(span("2222", "b1", None, "browse", 5, 10, service="shop")) + "\n",
    ]), encoding="utf-8")
    viewer = follow_viewer(str(path), *filters, "--settle", "0.2", "--max-seconds", "1")
    code, out, _ = viewer.finish()
    assert code == 0
    assert shown in out and hidden not in out
    assert "(showing 1 trace)" in out
