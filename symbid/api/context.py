"""What the API's handlers work with."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from symbid.clock import Clock
from symbid.errors import SymbidError
from symbid.jobs import JobService
from symbid.live import LiveOutputs
from symbid.metrics import Metrics
from symbid.model import Job, JobStatus
from symbid.registry import AgentService
from symbid.scheduler import CronScheduler
from symbid.store import JobStore, JobTotals
from symbid.wire import job_to_wire

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    store: JobStore
    jobs: JobService
    scheduler: CronScheduler
    clock: Clock
    agents: AgentService
    metrics: Metrics = field(default_factory=lambda: Metrics(enabled=False))
    reload: Optional[Callable[[str], dict[str, Any]]] = None  # for an actor (by name)
    live: LiveOutputs = field(default_factory=LiveOutputs)  # running runs' output so far
    backup_dir: Optional[str] = None  # where `symbi backup` copies are made (state_dir)
    # one backup copy is made at a time, whichever listener asked: each checks the free
    # space for itself before it starts
    backup_lock: threading.Lock = field(default_factory=threading.Lock)
    # Where the daemon's log goes, for `symbi logs`: {"journal": bool, "log_file": path|None}
    log_target: dict[str, Any] = field(default_factory=lambda: {"journal": False,
                                                                "log_file": None})

    def _within(self) -> float:
        return 3 * self.scheduler.config.tick_interval_seconds + 10

    def loop_alive(self) -> bool:
        """Whether the scheduler loop made a pass recently (whatever its result)."""
        return self.clock.monotonic() - self.scheduler.last_pass < self._within()

    def store_state(self) -> tuple[Optional[JobTotals], Optional[str]]:
        """The store's totals from a real read, or the error that read raised."""
        try:
            self.store.probe()
            return self.store.totals(), None
        except SymbidError as exc:
            return None, exc.message

    def state(self) -> tuple[str, Optional[str], JobTotals]:
        """(healthy | degraded | unhealthy, the error, the totals): the loop's last pass
        and a real probe of the store."""
        status, error = self.scheduler.health(self._within())
        totals, store_error = self.store_state()
        if store_error is not None and status == "healthy":
            status, error = "degraded", store_error
        return status, error, totals or JobTotals()

    def health(self) -> dict[str, Any]:
        """The seed guide's /api/v1/health/scheduler response, plus ``error`` (why it is
        not healthy) when it is not."""
        status, error, totals = self.state()
        finished = totals.runs_total
        out: dict[str, Any] = {
            "status": status,
            "active_jobs": totals.by_status.get(JobStatus.ACTIVE.value, 0),
            "paused_jobs": totals.by_status.get(JobStatus.PAUSED.value, 0),
            "in_flight_jobs": self.scheduler.in_flight(),
            "metrics": {
                "runs_total": finished,
                "runs_succeeded": totals.runs_succeeded,
                "runs_failed": totals.runs_failed,
                "avg_execution_time_ms": round(totals.execution_ms_total / finished)
                if finished else 0,
            },
        }
        if error is not None:
            out["error"] = error
        return out

    def job_wire(self, job: Job) -> Optional[dict[str, Any]]:
        """The job's wire form, or None (logged) when a field of it cannot be shown, so
        that one such row never fails a listing."""
        try:
            return job_to_wire(job)
        except (OverflowError, ValueError) as exc:
            log.warning("job %s (%s) cannot be shown: %s", job.name, job.id, exc,
                        extra={"SYMBID_JOB": job.name})
            return None
