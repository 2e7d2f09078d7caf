"""Command line: `python -m beeline view FILE`, also installed as the `beeline` script."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beeline", description="Tools for beeline traces.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    view = commands.add_parser(
        "view",
        help="draw the traces in a JSON-lines file as waterfalls",
        description="Draw each trace in FILE (as written by BEELINE_TRACE_FILE or libhoney's "
        "FileTransmission) as a waterfall: spans as a tree, durations, a bar per span on the "
        "trace's time axis, errors highlighted.",
    )
    # Imported here so that `beeline --help` stays instant and the package import stays light.
    from .viewer import add_arguments

    add_arguments(view)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m beeline` and the `beeline` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "view":
        parser.print_help(sys.stderr)
        return 2
    from .viewer import run

    # Output may contain any character a span carried; never fail on an odd terminal encoding.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):
            pass
    try:
        return run(args)
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
