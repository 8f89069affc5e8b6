"""What the delivery workers send: an outbox row, its job and its run made into the
channels' payload and target, handed to the router (:mod:`symbid.delivery.router`).

A run's row carries the run's output, status and times; an alert's row (``kind``
alert) carries its message as the output, its event as the status (``run_failed``,
``dead_letter``, ``no_success``, ``recovered``) and the trigger ``alert``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Optional

from symbid.config import DeliverySettings
from symbid.delivery.base import Payload, Receipt, Target, where_of
from symbid.delivery.router import send
from symbid.model import Job, format_instant
from symbid.records import Run
from symbid.store.deliveries import Delivery


def payload_of(delivery: Delivery, job: Job, run: Optional[Run]) -> Payload:
    if delivery.kind == "alert":
        info = delivery.payload or {}
        return Payload(delivery_id=delivery.id, job=job.name, job_id=job.id,
                       run_id=run.id if run else delivery.run_id or "",
                       status=str(info.get("event", "alert")),
                       output=str(info.get("message", "")),
                       finished_at=format_instant(delivery.created_at), trigger="alert",
                       attempt=run.attempt if run else 1)
    if run is None:
        raise ValueError(f"delivery {delivery.id} of a run's output has no run")
    return Payload.from_run(job, run, delivery_id=delivery.id)


def endpoint_of(delivery: Delivery, job: Job) -> str:
    """Where ``delivery`` goes, for the workers' cap per endpoint: a webhook's scheme and
    authority (as written: a ``${VAR}`` stays unresolved), else its channel."""
    url = job.delivery_config.webhook_url
    return f"webhook {where_of(url)}" if delivery.channel == "webhook" and url else \
        delivery.channel


def make_send(settings: Callable[[], DeliverySettings], environ: Mapping[str, str], *,
              log_dir: str) -> Callable[[Delivery, Job, Optional[Run]], Receipt]:
    """The workers' send: ``settings`` is read at each attempt (a reload applies)."""

    def attempt(delivery: Delivery, job: Job, run: Optional[Run]) -> Receipt:
        target = Target.from_config(job.delivery_config,
                                    webhook_secret=job.delivery_config.webhook_secret)
        return send(delivery.channel, payload_of(delivery, job, run), target, settings(),
                    environ, log_dir=log_dir)

    return attempt
