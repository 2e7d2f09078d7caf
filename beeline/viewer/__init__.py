"""A terminal viewer for trace files: `python -m beeline view FILE`.

It reads the JSON lines written by the local sink (or libhoney's FileTransmission) and draws
each trace as a waterfall. Standard library only, so it works wherever beeline is installed,
including on a machine that only received a copy of the file.
"""

from .cli import add_arguments, run
from .reading import LineParser, Span
from .tree import Trace, assemble, select

__all__ = ["LineParser", "Span", "Trace", "add_arguments", "assemble", "run", "select"]
