"""End to end: spans through libhoney's real client and a transmission to a loopback receiver."""

import json
import os
import subprocess
import sys
import textwrap

import beeline
from beeline.version import VERSION
from tests.receiver import LoopbackReceiver, strict_loads

CLASSIC = "0123456789abcdef0123456789abcdef"


def test_spans_arrive_on_the_wire_with_headers_and_types():
    with LoopbackReceiver() as rx:
        beeline.init(writekey=CLASSIC, dataset="wire ds", service_name="svc", api_host=rx.url)
        with beeline.tracer("root"):
            beeline.add_context_field("count", 3)
            with beeline.tracer("child"):
                pass
        beeline.close()
        events = rx.wait_for(2, timeout=10)
    by_name = {e["data"]["name"]: e for e in events}
    root = by_name["root"]
    assert root["dataset"] == "wire ds"
    assert root["samplerate"] == 1
    assert root["headers"]["X-Honeycomb-Team"] == CLASSIC
    assert f"beeline-tracer/{VERSION}" in root["headers"]["User-Agent"]
    assert root["data"]["count"] == 3 and isinstance(root["data"]["duration_ms"], float)
    assert by_name["child"]["data"]["trace.parent_id"] == root["data"]["trace.span_id"]
    assert root["time"].startswith("20")


def test_max_batch_size_takes_effect():
    # The reference silently ignored max_batch_size and send_frequency.
    with LoopbackReceiver() as rx:
        beeline.init(writekey=CLASSIC, dataset="d", service_name="s", api_host=rx.url,
                     max_batch_size=2, send_frequency=5)
        for i in range(6):
            with beeline.tracer(f"span-{i}"):
                pass
        rx.wait_for(4, timeout=10)
        beeline.close()
        rx.wait_for(6, timeout=10)
        sizes = [len(r["body"]) for r in rx.requests]
    assert max(sizes) <= 3 and len(sizes) >= 2


def run_child(code, env_extra=None):
    env = dict(os.environ)
    env.pop("BEELINE_DISABLED", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=60)


def test_queued_events_are_flushed_at_interpreter_exit():
    with LoopbackReceiver() as rx:
        result = run_child(f"""
            import beeline
            beeline.init(writekey="{CLASSIC}", dataset="d", service_name="s", api_host="{rx.url}",
                         send_frequency=30)
            for i in range(5):
                with beeline.tracer("exit-" + str(i)):
                    pass
            # no close(): the atexit handler must deliver these
        """)
        assert result.returncode == 0, result.stderr
        events = rx.wait_for(5, timeout=10)
    assert sorted(e["data"]["name"] for e in events) == [f"exit-{i}" for i in range(5)]


def test_a_forked_child_sends_its_events_without_calling_init_again():
    with LoopbackReceiver() as rx:
        result = run_child(f"""
            import os, beeline
            beeline.init(writekey="{CLASSIC}", dataset="d", service_name="s", api_host="{rx.url}")
            with beeline.tracer("before-fork"):
                pass
            pid = os.fork()
            if pid == 0:
                with beeline.tracer("in-child"):
                    beeline.add_context_field("pid", os.getpid())
                beeline.close()
                os._exit(0)
            os.waitpid(pid, 0)
            with beeline.tracer("in-parent"):
                pass
            beeline.close()
        """)
        assert result.returncode == 0, result.stderr
        rx.wait_for(3, timeout=10)
        names = sorted(e["data"]["name"] for e in rx.events)
    # Each event exactly once: the parent's queued span is not re-sent by the child.
    assert names == ["before-fork", "in-child", "in-parent"]


def test_init_in_a_post_fork_hook_also_works():
    with LoopbackReceiver() as rx:
        result = run_child(f"""
            import os, beeline
            beeline.init(writekey="{CLASSIC}", dataset="parent", service_name="s", api_host="{rx.url}")
            pid = os.fork()
            if pid == 0:
                beeline.init(writekey="{CLASSIC}", dataset="child", service_name="s", api_host="{rx.url}")
                with beeline.tracer("in-child"):
                    pass
                beeline.close()
                os._exit(0)
            os.waitpid(pid, 0)
            beeline.close()
        """)
        assert result.returncode == 0, result.stderr
        events = rx.wait_for(1, timeout=10)
    assert [(e["dataset"], e["data"]["name"]) for e in events] == [("child", "in-child")]


def test_without_a_write_key_nothing_goes_to_the_network(tmp_path):
    trace_file = tmp_path / "traces.jsonl"
    with LoopbackReceiver() as rx:
        result = run_child(f"""
            import beeline
            beeline.init(service_name="local-svc", api_host="{rx.url}")
            with beeline.tracer("outer"):
                with beeline.tracer("inner"):
                    pass
            beeline.close()
        """, {"BEELINE_TRACE_FILE": str(trace_file)})
        assert result.returncode == 0, result.stderr
        assert rx.requests == []
    assert result.stderr.count("no write key") == 1
    assert "beeline: trace" in result.stderr and "outer" in result.stderr and "  inner" in result.stderr
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert [line["data"]["name"] for line in lines] == ["inner", "outer"]
    assert set(lines[0]) == {"time", "samplerate", "dataset", "user_agent", "data"}
    assert lines[0]["data"]["trace.parent_id"] == lines[1]["data"]["trace.span_id"]


def test_trace_file_lines_are_strict_json_with_nan_as_a_string(tmp_path):
    trace_file = tmp_path / "traces.jsonl"
    result = run_child("""
        import beeline
        beeline.init(service_name="local-svc")
        with beeline.tracer("odd"):
            beeline.add_context_field("ratio", float("nan"))
            beeline.add_context_field("limits", [float("inf"), -float("inf"), 1.5])
        beeline.close()
    """, {"BEELINE_TRACE_FILE": str(trace_file)})
    assert result.returncode == 0, result.stderr
    [line] = [strict_loads(text) for text in trace_file.read_text().splitlines()]
    assert line["data"]["ratio"] == "NaN"
    assert line["data"]["limits"] == ["Infinity", "-Infinity", 1.5]


def test_explicit_transmission_wins_over_the_local_sink(beeline_recorder):
    with beeline.tracer("root"):
        pass
    assert len(beeline_recorder.events) == 1


def test_default_batches_hold_up_to_500_spans():
    # honeycomb-beeline always sent batches of 100 (or 101); ours default to 500, a fifth of the
    # requests, and still never more than max_batch_size.
    with LoopbackReceiver() as rx:
        beeline.init(writekey=CLASSIC, dataset="d", service_name="s", api_host=rx.url, send_frequency=30)
        for i in range(1200):
            with beeline.tracer(f"span-{i}"):
                pass
        beeline.close()
        rx.wait_for(1200, timeout=10)
        sizes = [len(r["body"]) for r in rx.requests]
    # The sender also sends what is pending beyond the full batches when it wakes, so the
    # count of requests depends on timing; the largest batch does not.
    assert max(sizes) == 500 and sum(sizes) == 1200
