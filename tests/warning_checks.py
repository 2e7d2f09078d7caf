"""Asserting that code emits no warning, as honeycomb-beeline 3.6.0 emitted none."""

import contextlib
import warnings


@contextlib.contextmanager
def no_warnings():
    """Every warning inside becomes an error, as in a user's suite run with `-W error`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
