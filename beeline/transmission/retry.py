"""When to retry a batch, and how long to wait first.

Retried: connection errors, timeouts, 408, 429 and 5xx (except 501 and 505, which will not
change). Waits grow exponentially with "equal jitter" (half fixed, half random) so that many
processes restarting together do not retry in lockstep, and never undercut ``Retry-After``.
Every batch has a retry budget in attempts and in seconds; past it the batch is reported failed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Optional

_NOT_RETRIED_5XX = frozenset({501, 505})


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status <= 599 and status not in _NOT_RETRIED_5XX)


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    initial_delay: float = 0.1
    max_delay: float = 5.0
    max_attempts: int = 8          # attempts in total, the first one included
    max_elapsed: float = 30.0      # seconds from the first attempt to the last retry's start

    def delay(self, retry_number: int, retry_after: Optional[float] = None) -> float:
        """Wait before retry ``retry_number`` (1 for the first retry)."""
        cap = min(self.max_delay, self.initial_delay * (2 ** (retry_number - 1)))
        wait = cap / 2 + random.uniform(0, cap / 2)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def allows(self, retry_number: int, started: float, wait: float, now: float) -> bool:
        """Whether retry ``retry_number`` after ``wait`` seconds stays within the budget."""
        if retry_number >= self.max_attempts:
            return False
        return (now + wait) - started <= self.max_elapsed
