"""Heartbeat wake-ups: assess -> act -> sleep, as iterations of one run.

A job with ``heartbeat { enabled: true }`` runs iterations on each wake-up (one run of
its slot, holding one ``max_concurrent`` place) until one of these, recorded as the
run's ``stop_reason``:

- ``sleep``: the agent's output ends with the line ``sleep``;
- ``max_iterations``: that many iterations ran;
- ``max_runtime``: the wake-up's ``max_runtime`` ran out (the run is ``timed_out``);
- ``failed`` / ``cancelled`` / ``interrupted``: an iteration did not succeed; the
  wake-up ends with that iteration's status.

Between iterations the context follows ``context_mode`` (:mod:`symbid.sessions`).
The run lists its iterations (number, status, summary, duration); only the last
:data:`ITERATIONS_KEPT` are kept, each summary cut to :data:`ITERATION_SUMMARY_CAP`
characters, so a wake-up's memory stays bounded however long it iterates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Optional

from symbid.model import Heartbeat, RunStatus
from symbid.records import Iteration

ITERATIONS_KEPT = 1000
ITERATION_SUMMARY_CAP = 200

SLEEP = "sleep"
MAX_ITERATIONS = "max_iterations"
MAX_RUNTIME = "max_runtime"


def says_sleep(output: Optional[str]) -> bool:
    """True when the output's last non-empty line is ``sleep``."""
    if not output:
        return False
    lines = output.rstrip().splitlines()
    return bool(lines) and lines[-1].strip() == SLEEP


@dataclass
class Wakeup:
    """One wake-up's iterations so far."""

    heartbeat: Heartbeat
    count: int = 0
    elapsed: float = 0.0  # seconds spent in iterations
    kept: deque[Iteration] = field(default_factory=lambda: deque(maxlen=ITERATIONS_KEPT))

    def add(self, status: RunStatus, summary: Optional[str], seconds: float) -> None:
        self.count += 1
        self.elapsed += seconds
        cut = None if summary is None else summary[:ITERATION_SUMMARY_CAP]
        self.kept.append(Iteration(number=self.count, status=status, summary=cut,
                                   duration_ms=round(seconds * 1000)))

    @property
    def iterations(self) -> tuple[Iteration, ...]:
        return tuple(self.kept)

    def stop_reason(self, status: RunStatus, output: Optional[str]) -> Optional[str]:
        """After an iteration ended ``status`` with ``output``: why the wake-up stops
        now, or None to run the next iteration."""
        if status is RunStatus.TIMED_OUT:
            return MAX_RUNTIME
        if status is not RunStatus.SUCCEEDED:
            return str(status.value)
        if says_sleep(output):
            return SLEEP
        if self.count >= self.heartbeat.max_iterations:
            return MAX_ITERATIONS
        return None

    def remaining(self, max_runtime: Optional[float]) -> Optional[float]:
        """Seconds left of the wake-up's max_runtime (None: unbounded)."""
        return None if max_runtime is None else max(0.0, max_runtime - self.elapsed)
