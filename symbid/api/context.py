"""What the API's handlers work with."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from symbid.clock import Clock
from symbid.jobs import JobService
from symbid.metrics import Metrics
from symbid.model import Job, JobStatus
from symbid.scheduler import CronScheduler
from symbid.store import JobStore

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    store: JobStore
    jobs: JobService
    scheduler: CronScheduler
    clock: Clock
    metrics: Metrics = field(default_factory=lambda: Metrics(enabled=False))
    reload: Optional[Callable[[], dict[str, Any]]] = None

    def loop_alive(self) -> bool:
        """Whether the scheduler loop made progress recently."""
        limit = 3 * self.scheduler.config.tick_interval_seconds + 10
        return self.clock.monotonic() - self.scheduler.last_progress < limit

    def health(self) -> dict[str, Any]:
        """The seed guide's /api/v1/health/scheduler response."""
        totals = self.store.totals()
        finished = totals.runs_total
        return {
            "status": "healthy" if self.loop_alive() else "unhealthy",
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

    def audit(self, request: Any, event: str, job: Job) -> None:
        """Record who did what to a job (journal for now; the audit store comes later)."""
        log.info("%s: job %s by %s", event, job.name, getattr(request, "actor", "unknown"),
                 extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": event})
