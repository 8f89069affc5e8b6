"""Prometheus metrics (the seed guide's ``symbiont_cron_*`` families), one registry per daemon."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from symbid.records import LlmUsage

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30)


class Metrics:
    """The daemon's collectors. With ``enabled=False`` every hook is a no-op.

    The per-job families (runs, duration, dead letters) have a ``job_name`` label, one
    series per job, which :meth:`job_gone` removes; with ``per_job_labels=False`` they
    have no such label and count every job together, so their series do not grow with
    the number of jobs.
    """

    def __init__(self, enabled: bool = True, *, per_job_labels: bool = True) -> None:
        self.enabled = enabled
        self.per_job_labels = per_job_labels
        self.registry = CollectorRegistry()
        job = ["job_name"] if per_job_labels else []
        by = "by job and status" if per_job_labels else "by status (all jobs together)"
        self.runs = Counter(
            "symbiont_cron_runs_total", f"Runs that reached a final state, {by}.",
            [*job, "status"], registry=self.registry)
        self.duration = Histogram(
            "symbiont_cron_execution_duration_seconds", "Wall time of finished runs"
            + (", by job." if per_job_labels else " (all jobs together)."),
            job, buckets=_DURATION_BUCKETS, registry=self.registry)
        self.in_flight = Gauge(
            "symbiont_cron_in_flight_jobs", "Runs started and not yet finished.",
            registry=self.registry)
        self.dead_letter = Counter(
            "symbiont_cron_dead_letter_total", "Jobs moved to the dead letter queue"
            + (", by job." if per_job_labels else " (all jobs together)."),
            job, registry=self.registry)
        self._statuses: set[str] = set()  # the run statuses counted: job_gone's series
        self._lock = threading.Lock()
        self.lateness = Histogram(
            "symbiont_cron_start_lateness_seconds",
            "Seconds from when a run was due (slot plus jitter) to its process starting.",
            buckets=_LATENESS_BUCKETS, registry=self.registry)
        self.deliveries = Counter(
            "symbiont_cron_delivery_total", "Deliveries that ended, by channel and status "
            "(delivered, failed).", ["channel", "status"], registry=self.registry)
        self.delivery_latency = Histogram(
            "symbiont_cron_delivery_latency_seconds", "Seconds from a run's final state to "
            "its delivery's end (delivered or failed), by channel.", ["channel"],
            buckets=_DURATION_BUCKETS, registry=self.registry)
        self.alerts = Counter(
            "symbiont_cron_alerts_total", "Alerts whose delivery ended, by channel and "
            "status (delivered, failed).", ["channel", "status"], registry=self.registry)
        self.llm_tokens = Counter(
            "symbiont_llm_tokens_total", "Tokens llm agents' runs used, by agent and kind "
            "(prompt, completion), as the model endpoints reported them.",
            ["agent", "kind"], registry=self.registry)
        self.llm_requests = Histogram(
            "symbiont_llm_request_duration_seconds", "Duration of each model request an "
            "llm agent's run made (retried and failed attempts too), by agent.",
            ["agent"], buckets=_REQUEST_BUCKETS, registry=self.registry)

        self.log_dropped = Gauge(
            "symbid_log_entries_dropped", "Log entries dropped since the start because the "
            "journal could not take them at once (logging never waits for it).",
            registry=self.registry)

    def _job(self, job_name: str) -> dict[str, str]:
        return {"job_name": job_name} if self.per_job_labels else {}

    def run_finished(self, job_name: str, status: str, seconds: float | None) -> None:
        if not self.enabled:
            return
        if status not in self._statuses:
            with self._lock:
                self._statuses.add(status)
        self.runs.labels(**self._job(job_name), status=status).inc()
        if seconds is not None:
            if self.per_job_labels:
                self.duration.labels(job_name=job_name).observe(seconds)
            else:
                self.duration.observe(seconds)

    def job_gone(self, job_name: str) -> None:
        """The job named ``job_name`` was removed (or renamed): its series go, so
        /metrics does not grow with every job ever defined (and a new job of that name
        starts from zero). Nothing without per-job labels."""
        if not self.per_job_labels:
            return
        with self._lock:
            statuses = list(self._statuses)
        series: list[tuple[Any, tuple[str, ...]]] = \
            [(self.runs, (job_name, status)) for status in statuses]
        series += [(self.duration, (job_name,)), (self.dead_letter, (job_name,))]
        for family, labels in series:
            try:
                family.remove(*labels)
            except KeyError:  # no such series (prometheus-client before 0.20 raises)
                pass

    def delivery_ended(self, channel: str, status: str, seconds: float,
                       alert: bool = False) -> None:
        """A delivery ended: a run's output (counted with its latency), or an alert."""
        if self.enabled and alert:
            self.alerts.labels(channel=channel, status=status).inc()
        elif self.enabled:
            self.deliveries.labels(channel=channel, status=status).inc()
            self.delivery_latency.labels(channel=channel).observe(seconds)

    def llm_used(self, agent: str, usage: LlmUsage) -> None:
        """A finished llm run's tokens."""
        if not self.enabled:
            return
        self.llm_tokens.labels(agent=agent, kind="prompt").inc(usage.prompt_tokens)
        self.llm_tokens.labels(agent=agent, kind="completion").inc(usage.completion_tokens)

    def llm_requests_took(self, agent: str, request_seconds: Sequence[float]) -> None:
        """An llm run's process ended: its requests' durations."""
        if not self.enabled or not request_seconds:
            return
        histogram = self.llm_requests.labels(agent=agent)
        for seconds in request_seconds:
            histogram.observe(seconds)

    def dead_lettered(self, job_name: str) -> None:
        if self.enabled and self.per_job_labels:
            self.dead_letter.labels(job_name=job_name).inc()
        elif self.enabled:
            self.dead_letter.inc()

    def run_started(self, late_seconds: float) -> None:
        if self.enabled:
            self.lateness.observe(max(0.0, late_seconds))

    def track_in_flight(self, source: Callable[[], float]) -> None:
        self.in_flight.set_function(source)

    def track_log_drops(self, source: Callable[[], float]) -> None:
        self.log_dropped.set_function(source)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
