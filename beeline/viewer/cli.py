"""`beeline view FILE`: options, and the two ways of running (whole file, or follow)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from .follow import FileTail, TraceGate, stream_lines
from .reading import LineParser, Span
from .render import Renderer, encoding_has_glyphs
from .tree import Trace, assemble, select


CHECK_EVERY_S = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="JSON-lines file of events, or - for stdin")
    parser.add_argument("--trace", metavar="ID", help="show only this trace (a unique prefix will do)")
    parser.add_argument("--slowest", metavar="N", type=_positive_int, help="show the N slowest traces, slowest first")
    parser.add_argument("--service", metavar="NAME", help="show only traces with a span from this service")
    parser.add_argument("--fields", action="store_true", help="list each span's other fields under it")
    parser.add_argument("--follow", "-f", action="store_true", help="keep reading as the file grows")
    parser.add_argument("--width", metavar="N", type=_positive_int, help="line width (default: terminal width, or 100)")
    colour = parser.add_mutually_exclusive_group()
    colour.add_argument("--color", dest="color", action="store_true", default=None, help="always use colours")
    colour.add_argument("--no-color", dest="color", action="store_false", help="never use colours")
    # Bounds for scripted and tested watches; not part of the everyday interface.
    parser.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--settle", type=float, default=1.0, help=argparse.SUPPRESS)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the viewer with parsed arguments; returns the exit code."""
    out = out if out is not None else sys.stdout
    if args.follow and args.slowest:
        print("beeline view: --slowest needs the whole file; it cannot be used with --follow", file=sys.stderr)
        return 2
    renderer = Renderer(
        width=args.width or _terminal_width(),
        color=_want_colour(args.color, out),
        unicode=encoding_has_glyphs(getattr(out, "encoding", None)),
        show_fields=args.fields,
    )
    try:
        if args.follow:
            return _follow(args, renderer, out)
        return _view_once(args, renderer, out)
    except FileNotFoundError as exc:
        print(f"beeline view: no such file: {exc.filename}", file=sys.stderr)
        return 1
    except IsADirectoryError as exc:
        print(f"beeline view: is a directory: {exc.filename}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # the reader left; the entry point ends quietly
    except OSError as exc:
        print(f"beeline view: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _view_once(args: argparse.Namespace, renderer: Renderer, out: TextIO) -> int:
    parser = LineParser()
    if args.file == "-":
        spans = _parse_all(parser, sys.stdin)
    else:
        with open(args.file, encoding="utf-8", errors="replace", newline="") as handle:
            spans = _parse_all(parser, handle)
    collection = assemble(spans)
    chosen = select(collection.traces, trace_id=args.trace, service=args.service, slowest=args.slowest)
    for trace in chosen:
        _write(out, renderer.trace(trace))
    # Events outside any trace go with a listing of traces, not with a choice of particular ones.
    picked = args.trace or args.slowest
    standalone = [] if picked else _standalone_matching(collection.standalone, args.service)
    if standalone:
        _write(out, renderer.standalone(standalone))
    if not chosen and collection.traces and (args.trace or args.service):
        _write(out, [_no_match(args)])
    traces = collection.traces
    out.write(
        renderer.summary(
            traces=len(traces),
            spans=sum(len(t.spans) for t in traces),
            standalone=len(collection.standalone),
            errors=sum(t.error_count for t in traces) + sum(e.error is not None for e in collection.standalone),
            shown=len(chosen),
            broken=parser.broken,
            broken_linenos=parser.broken_linenos,
        )
        + "\n"
    )
    out.flush()
    return 0


def _parse_all(parser: LineParser, lines: Iterable[str]) -> list[Span]:
    feed = parser.feed
    return [span for span in map(feed, lines) if span is not None]


def _follow(args: argparse.Namespace, renderer: Renderer, out: TextIO) -> int:
    parser = LineParser()
    gate = TraceGate(settle=args.settle)
    tail = FileTail(args.file) if args.file != "-" else None
    source: Iterator[str | None] = iter(tail) if tail is not None else stream_lines(sys.stdin)
    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    standalone = standalone_errors = 0
    checked = 0.0
    shown_ids: set[str] = set()

    def show(ready: list[tuple[Trace, str]]) -> None:
        for trace, note in ready:
            if _wanted(trace, args):
                shown_ids.add(trace.trace_id)
                _write(out, renderer.trace(trace, note=note))
        out.flush()

    try:
        for line in source:
            now = time.monotonic()
            if line is not None:
                span = parser.feed(line)
                if span is not None and span.trace_id is None:
                    standalone += 1
                    standalone_errors += span.error is not None
                    if not args.trace and _standalone_matching([span], args.service):
                        _write(out, renderer.standalone([span])[1:])
                        out.flush()
                elif span is not None:
                    gate.add(span, now)
            # Looking for quiet traces costs a pass over all open ones: during a burst of
            # lines do it a few times a second, not once per line.
            if line is None or now - checked >= CHECK_EVERY_S:
                checked = now
                show(gate.due(now))
            if deadline is not None and now >= deadline:
                break
    except KeyboardInterrupt:
        pass  # the usual way to end a watch: print what is held, then stop
    finally:
        if hasattr(source, "close"):
            source.close()
    if tail is not None and tail.pending:
        span = parser.feed(tail.pending)
        if span is not None and span.trace_id is not None:
            gate.add(span, time.monotonic())
    show(gate.rest(time.monotonic()))
    out.write(
        renderer.summary(
            traces=gate.traces_seen,
            spans=gate.spans_seen,
            standalone=standalone,
            errors=gate.errors_seen + standalone_errors,
            shown=len(shown_ids),
            broken=parser.broken,
            broken_linenos=parser.broken_linenos,
        )
        + "\n"
    )
    out.flush()
    return 0


def _wanted(trace: Trace, args: argparse.Namespace) -> bool:
    return bool(select([trace], trace_id=args.trace, service=args.service))


def _standalone_matching(events: list[Span], service: str | None) -> list[Span]:
    if not service:
        return events
    return [e for e in events if e.service == service]


def _no_match(args: argparse.Namespace) -> str:
    wanted = []
    if args.trace:
        wanted.append(f"trace id {args.trace!r}")
    if args.service:
        wanted.append(f"service {args.service!r}")
    return "no trace matches " + " and ".join(wanted)


def _write(out: TextIO, lines: list[str]) -> None:
    out.write("\n".join(lines) + "\n\n")


def _terminal_width() -> int:
    # COLUMNS first, then the terminal; a pipe gets 100 so that saved output reads well.
    return shutil.get_terminal_size((100, 24)).columns


def _want_colour(flag: bool | None, out: TextIO) -> bool:
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())
