"""Draw traces as text waterfalls.

Every line is composed from plain segments first and coloured last, so column widths are
counted on visible characters and plain output is the coloured output minus the escapes. All
text that came from the file is cleaned of control characters: a span name must not be able to
move the cursor or recolour the user's terminal.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .reading import DRAWN_FIELDS, ID_FIELDS, UTC, Span
from .tree import MISSING_PARENT, PARENT_LOOP, Row, Trace

RESET = "\x1b[0m"
BOLD, DIM, RED, YELLOW = "1", "2", "31", "33"
SERVICE_COLOURS = ("36", "35", "34", "32", "33", "96", "95", "94")

# C0 and C1 controls, and the bidirectional overrides that can make text read backwards.
_CONTROL = {
    code: "?"
    for code in [*range(32), 127, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}
_CONTROL.update({ord("\t"): " ", ord("\n"): " ", ord("\r"): " "})

HIDDEN_FIELDS = frozenset(ID_FIELDS + DRAWN_FIELDS)


class Glyphs:
    """Drawing characters; ASCII stand-ins when the output encoding has no box drawing."""

    def __init__(self, unicode: bool) -> None:
        if unicode:
            self.branch, self.last, self.pipe, self.space = "├─ ", "└─ ", "│  ", "   "
            self.bar, self.tick, self.error, self.more = "█", "▏", "✗", "…"
        else:
            self.branch, self.last, self.pipe, self.space = "|- ", "`- ", "|  ", "   "
            self.bar, self.tick, self.error, self.more = "#", "|", "x", "~"


def encoding_has_glyphs(encoding: str | None) -> bool:
    try:
        "├─└│█▏✗…".encode(encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def clean(text: str) -> str:
    return text.translate(_CONTROL)


def columns(text: str) -> int:
    """Terminal columns `text` takes: East Asian wide characters two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(_char_columns(char) for char in text)


def _char_columns(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit(text: str, width: int, more: str) -> str:
    """Cut `text` to `width` columns, marking the cut."""
    if width <= 0:
        return ""
    if text.isascii():
        return text if len(text) <= width else text[: width - 1] + more
    if columns(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += _char_columns(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + more


def pad(text: str, width: int) -> str:
    """`text` followed by spaces up to `width` columns."""
    return text + " " * (width - columns(text))


def format_ms(value: float | None) -> str:
    return "? ms" if value is None else f"{value:.2f} ms"


def format_time(epoch_us: int | None) -> str:
    if epoch_us is None:
        return "time unknown"
    moment = datetime.fromtimestamp(epoch_us // 1_000_000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{epoch_us // 1000 % 1000:03d} UTC"


class Renderer:
    """Turns traces and standalone events into lines of at most `width` visible characters."""

    def __init__(
        self,
        width: int = 100,
        color: bool = False,
        unicode: bool = True,
        show_fields: bool = False,
    ) -> None:
        self.width = max(40, width)
        self.color = color
        self.glyphs = Glyphs(unicode)
        self.show_fields = show_fields
        self._service_colours: dict[str, str] = {}

    # -- colour -------------------------------------------------------------------------------

    def paint(self, text: str, *codes: str) -> str:
        if not self.color or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}{RESET}"

    def _service_colour(self, service: str) -> str:
        colour = self._service_colours.get(service)
        if colour is None:
            colour = SERVICE_COLOURS[len(self._service_colours) % len(SERVICE_COLOURS)]
            self._service_colours[service] = colour
        return colour

    # -- traces -------------------------------------------------------------------------------

    def trace(self, trace: Trace, note: str = "") -> list[str]:
        """The waterfall of one trace: header, column titles, one line per span."""
        g = self.glyphs
        rows = trace.rows()
        t0 = trace.start_us
        total_ms = trace.duration_ms
        lines = self._header(trace, total_ms, note)

        cells = self._name_cells(rows)
        durations = [format_ms(row.span.duration_ms) for row in rows]
        services = [clean(row.span.service) or "-" for row in rows]
        name_w, svc_w, dur_w, bar_w = self._columns(
            max([len("span")] + [len(c[0]) + len(c[1]) + columns(c[2]) + columns(c[3]) for c in cells]),
            max([len("service")] + [columns(s) for s in services]),
            max([len("duration")] + [len(d) for d in durations]),
        )
        right = format_ms(total_ms)
        if bar_w >= len(right) + 2:
            axis = "0" + " " * (bar_w - 1 - len(right)) + right
        else:
            axis = fit(right, bar_w, g.more)
        titles = "  ".join(
            [fit("span", name_w, g.more).ljust(name_w), fit("service", svc_w, g.more).ljust(svc_w),
             "duration".rjust(dur_w), axis]
        )
        lines.append(self.paint(titles, DIM))

        for index, row in enumerate(rows):
            span = row.span
            prefix, marker, name, tag, child_guides = cells[index]
            prefix, name, tag = _fit_name(prefix, marker, name, tag, name_w, g.more)
            padding = " " * (name_w - len(prefix) - len(marker) - columns(name) - columns(tag))
            failed = span.error is not None
            colour = self._service_colour(span.service)
            bar = self._bar(span, t0, total_ms, bar_w)
            lines.append(
                self.paint(prefix, DIM)
                + self.paint(marker, RED, BOLD)
                + (self.paint(name, RED, BOLD) if failed else name)
                + self.paint(tag, YELLOW)
                + padding
                + "  "
                + self.paint(pad(fit(services[index], svc_w, g.more), svc_w), colour)
                + "  "
                + durations[index].rjust(dur_w)
                + "  "
                + self.paint(bar.rstrip(), RED if failed else colour)
            )
            # Lines under a span (its error, its fields) carry the tree's guides on, so the
            # line down to the span's children is not broken.
            has_children = index + 1 < len(rows) and rows[index + 1].depth > row.depth
            under = child_guides + (g.pipe if has_children else g.space)
            if len(under) > self.width // 2:
                under = g.more + under[len(under) - self.width // 2 + 1 :]
            if failed:
                text = fit(clean(span.error or ""), self.width - len(under) - 2, g.more)
                lines.append(self.paint(under, DIM) + "  " + self.paint(text, RED))
            if self.show_fields:
                lines.extend(self._fields(span, under + "  "))
        return [line.rstrip() for line in lines]

    def _header(self, trace: Trace, total_ms: float, note: str) -> list[str]:
        facts = [format_time(trace.start_us), format_ms(total_ms), _plural(len(trace.spans), "span")]
        services = trace.services
        if len(services) > 1:
            facts.append(_plural(len(services), "service"))
        if trace.error_count:
            facts.append(_plural(trace.error_count, "error"))
        if not trace.has_root:
            facts.append("no root span")
        if note:
            facts.append(note)
        title = clean(f"trace {trace.trace_id}")
        summary = "  ".join(facts)
        if columns(title) + 2 + len(summary) <= self.width:
            return [self.paint(f"{title}  {summary}", BOLD)]
        # A long id or many facts: wrap the facts under the id rather than cut any of them.
        lines = [fit(title, self.width, self.glyphs.more)]
        current = ""
        for fact in facts:
            if current and len(current) + 2 + len(fact) > self.width:
                lines.append(current)
                current = ""
            current = f"{current}  {fact}"
        lines.append(current)
        return [self.paint(fit(text, self.width, self.glyphs.more), BOLD) for text in lines]

    def _name_cells(self, rows: list[Row]) -> list[tuple[str, str, str, str, str]]:
        """(tree guides, error marker, name, parent tag, guides for the lines under it)."""
        g = self.glyphs
        # Guides are joined over the last `deep` levels only: a pathological chain thousands of
        # spans deep would otherwise cost quadratic time, and its guides get cut anyway.
        deep = self.width // 3
        cells = []
        cont: list[str] = []
        for row in rows:
            del cont[row.depth :]
            first = max(1, row.depth - deep)
            if row.depth == 0:
                prefix = ""
            else:
                prefix = "".join(cont[first : row.depth]) + (g.last if row.is_last else g.branch)
            cont.append(g.space if row.is_last else g.pipe)
            tag = ""
            if row.mark == MISSING_PARENT:
                tag = f" [parent {clean(row.span.parent_id or '')[:8]} missing]"
            elif row.mark == PARENT_LOOP:
                tag = " [parent loop]"
            marker = g.error + " " if row.span.error is not None else ""
            cells.append((prefix, marker, clean(row.span.name), tag, "".join(cont[first:])))
        return cells

    def _columns(self, name_natural: int, svc_natural: int, dur_w: int) -> tuple[int, int, int, int]:
        """Widths of the name, service, duration and bar columns (separated by two spaces).

        The duration column is never cut. The service column gets at most a quarter of the
        rest; names get what they need up to 60% of what remains, and the bars the rest.
        """
        rest = self.width - dur_w - 6
        svc_w = min(svc_natural, 24, max(4, rest // 4))
        rest -= svc_w
        name_w = max(8, min(name_natural, rest - max(6, int(rest * 0.4))))
        bar_w = max(3, rest - name_w)
        return name_w, svc_w, dur_w, bar_w

    def _bar(self, span: Span, t0: int | None, total_ms: float, width: int) -> str:
        g = self.glyphs
        if t0 is None or span.start_us is None:
            return g.tick
        if total_ms <= 0:
            return g.bar if span.duration_ms is not None else g.tick
        offset_ms = (span.start_us - t0) / 1000.0
        begin = min(max(int(offset_ms / total_ms * width), 0), width - 1)
        if span.duration_ms is None:
            return " " * begin + g.tick
        end = round((offset_ms + span.duration_ms) / total_ms * width)
        end = min(max(end, begin + 1), width)
        return " " * begin + g.bar * (end - begin)

    def _fields(self, span: Span, indent: str) -> list[str]:
        out = []
        keys = sorted(k for k in span.fields if k not in HIDDEN_FIELDS)
        room = self.width - len(indent)
        for key in keys:
            label = clean(key) + ": "
            text = fit(label + _show(span.fields[key]), room, self.glyphs.more)
            cut = min(len(label), len(text))
            out.append(self.paint(indent, DIM) + self.paint(text[:cut], DIM) + text[cut:])
        return out

    # -- standalone events and summary ---------------------------------------------------------

    def standalone(self, events: Sequence[Span]) -> list[str]:
        """Events sent outside any trace (e.g. `send_now`), one line each."""
        g = self.glyphs
        lines = [self.paint(f"standalone events (no trace id): {len(events)}", BOLD)]
        svc_w = min(max([len("service")] + [columns(clean(e.service) or "-") for e in events]), 24)
        for event in events:
            failed = event.error is not None
            when = format_time(event.start_us)
            service = pad(fit(clean(event.service) or "-", svc_w, g.more), svc_w)
            duration = "" if event.duration_ms is None else "  " + format_ms(event.duration_ms)
            marker = g.error + " " if failed else ""
            room = self.width - len(when) - svc_w - len(duration) - len(marker) - 4
            name = fit(clean(event.name), max(room, 8), g.more)
            lines.append(
                self.paint(when, DIM)
                + "  "
                + self.paint(service, self._service_colour(event.service))
                + "  "
                + self.paint(marker, RED, BOLD)
                + (self.paint(name, RED, BOLD) if failed else name)
                + duration
            )
            if failed:
                text = fit(clean(event.error or ""), self.width - 4, g.more)
                lines.append("    " + self.paint(text, RED))
            if self.show_fields:
                lines.extend(self._fields(event, "    "))
        return [line.rstrip() for line in lines]

    def summary(
        self,
        traces: int,
        spans: int,
        standalone: int,
        errors: int,
        shown: int,
        broken: int,
        broken_linenos: Sequence[int],
    ) -> str:
        """The closing line: what was read, what was shown, what had to be skipped."""
        parts = [_plural(traces, "trace"), _plural(spans, "span"), _plural(standalone, "standalone event")]
        if errors:
            parts.append(_plural(errors, "error"))
        text = ", ".join(parts)
        if shown != traces:
            text += f" (showing {shown} {'trace' if shown == 1 else 'traces'})"
        if not broken:
            return self.paint(text, DIM)
        where = ", ".join(str(n) for n in broken_linenos[:5])
        if broken > 5:
            where += ", ..."
        skipped = f"skipped {broken} broken {'line' if broken == 1 else 'lines'} (line {where})"
        if len(text) + 2 + len(skipped) <= self.width:
            return self.paint(text + "; ", DIM) + self.paint(skipped, YELLOW)
        return self.paint(text, DIM) + "\n" + self.paint(skipped, YELLOW)


def _fit_name(
    prefix: str, marker: str, name: str, tag: str, width: int, more: str
) -> tuple[str, str, str]:
    """Shorten a name cell: first the name (to 8 columns), then the tree guides, then the tag."""

    def excess() -> int:
        return len(prefix) + len(marker) + columns(name) + columns(tag) - width

    if excess() <= 0:
        return prefix, name, tag
    name = fit(name, max(columns(name) - excess(), min(columns(name), 8)), more)
    if excess() > 0 and prefix:
        keep = max(len(prefix) - excess(), min(len(prefix), 4))
        if keep < len(prefix):
            prefix = more + prefix[len(prefix) - keep + 1 :]
    if excess() > 0 and tag:
        tag = fit(tag, max(columns(tag) - excess(), 0), more)
    if excess() > 0:
        name = fit(name, max(columns(name) - excess(), 1), more)
    return prefix, name, tag


def _show(value: Any) -> str:
    if isinstance(value, str):
        return clean(value)
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    return clean(text)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
