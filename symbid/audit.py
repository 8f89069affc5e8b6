"""Audit events to the journal: each event the audit trail stores (``symbid.store.audit``)
is also one journal entry with ``SYMBID_EVENT`` set to its type, and its job and run."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from symbid.store.audit import AuditEvent
from symbid.text import escape

log = logging.getLogger(__name__)


def emit(events: Iterable[AuditEvent]) -> None:
    """One journal entry per event (user text escaped)."""
    for e in events:
        extra = {"SYMBID_EVENT": e.type}
        if e.job_name is not None:
            extra["SYMBID_JOB"] = e.job_name
        if e.run_id is not None:
            extra["SYMBID_RUN"] = e.run_id
        subject = f"job {e.job_name}" if e.job_name is not None else \
            f"job {e.job_id}" if e.job_id is not None else f"agent {e.details.get('agent')}"
        run = f" run {e.run_id}" if e.run_id else ""
        why = e.details.get("reason")
        log.info("%s: %s%s by %s%s", e.type, escape(subject), run, escape(e.actor),
                 f": {escape(str(why))}" if why else "", extra=extra)
