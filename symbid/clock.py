"""The only place that reads the real clock.

Instants are integer milliseconds since the Unix epoch (UTC). Everything else
in symbid receives ``now`` as an argument or asks an injected :class:`Clock`,
so tests drive time without patching anything.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Wall-clock time as epoch milliseconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; only differences are meaningful."""
        ...


class SystemClock:
    """The real clocks: ``CLOCK_REALTIME`` and ``CLOCK_MONOTONIC``."""

    def now(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()
