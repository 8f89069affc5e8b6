"""The delivery outbox (DESIGN §6 step 5): one row per channel of a run that executed,
written in the transaction that stores the run's final state, then taken by the delivery
workers until it is delivered or its attempts run out.

A row's ``id`` is the delivery id every attempt carries (``X-Symbid-Delivery-Id``), so a
receiver can drop the duplicate that a kill between a send and its receipt causes after
the restart. ``receipts`` is the JSON list of the attempts' receipts, oldest first.
Rows go with their run (``ON DELETE CASCADE``: retention, a deleted job).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from symbid.model import Job, format_instant, new_id
from symbid.store.plumbing import SqlPlumbing

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
RECEIPTS_KEPT = 50  # receipts a row keeps (the latest)
ALERTS_KEPT = 100  # a job's alerts of no run kept (the latest; the others are pruned)
DELIVERY_COLUMNS = ("id, run_id, job_id, channel, kind, status, attempts, next_at, receipts, "
                    "created_at, payload")
WATCH = "json_extract(definition, '$.alert_if_no_success_within_seconds')"
PAUSED_MARK = -1  # alert_state.watch_from of a job last seen not active


@dataclass(frozen=True)
class Delivery:
    """One channel's delivery of one run's output (``kind`` "output") or of an alert."""

    id: str
    run_id: Optional[str]  # None: an alert about the job (the dead man's switch)
    job_id: str
    channel: str
    kind: str
    status: str  # pending | delivered | failed
    attempts: int
    next_at: int  # epoch ms: when the next attempt is due (pending)
    receipts: tuple[Mapping[str, Any], ...]
    created_at: int
    payload: Optional[Mapping[str, Any]] = None  # an alert's {event, message}

    def to_dict(self) -> dict[str, Any]:
        """The wire form (``next_at`` only while it is pending)."""
        return {"id": self.id, "channel": self.channel, "kind": self.kind,
                **({"event": self.payload.get("event"), "message": self.payload.get("message"),
                    "run_id": self.run_id, "created_at": format_instant(self.created_at)}
                   if self.payload else {}),
                "status": self.status, "attempts": self.attempts,
                "next_at": format_instant(self.next_at) if self.status == PENDING else None,
                "receipts": [dict(r) for r in self.receipts]}


@dataclass(frozen=True)
class AlertState:
    """Where a job's alerts stand: whether a problem alert is ``open`` (sent, and no
    "recovered" since), the last event sent, when the last problem alert was sent (the
    cooldown runs from it), and how many the cooldown has ``held_back`` since then."""

    open: bool
    last_event: Optional[str]
    last_alert_at: int
    held_back: int

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open, "last_event": self.last_event,
                "last_alert_at": format_instant(self.last_alert_at),
                "held_back": self.held_back}


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    did, run_id, job_id, channel, kind, status, attempts, next_at, receipts, created, \
        payload = row
    return Delivery(id=did, run_id=run_id, job_id=job_id, channel=channel, kind=kind,
                    status=status, attempts=int(attempts), next_at=int(next_at),
                    receipts=tuple(json.loads(receipts or "[]")), created_at=int(created),
                    payload=json.loads(payload) if payload else None)


def delivery_status(rows: Sequence[Delivery]) -> Optional[str]:
    """A run's ``delivery_status``: ``pending`` while any of its deliveries is,
    ``delivery_failed`` when one failed for good, ``delivered`` when all arrived; None
    without deliveries. It is not a run status."""
    outputs = [d for d in rows if d.kind == "output"]
    if not outputs:
        return None
    if any(d.status == PENDING for d in outputs):
        return "pending"
    if any(d.status == FAILED for d in outputs):
        return "delivery_failed"
    return "delivered"


def insert_deliveries(conn: Any, run_id: str, job_id: str, channels: Sequence[str],
                      now: int) -> None:
    """The outbox rows of a run that executed (inside its finishing transaction)."""
    conn.executemany(
        f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, 'output', "
        "'pending', 0, ?, '[]', ?, NULL) ON CONFLICT (run_id, channel, kind) DO NOTHING",
        [(new_id(), run_id, job_id, channel, now, now) for channel in channels])


# The events that say the job stopped (dead_letter; a one-shot ended failed): sent each
# time, never held back by the cooldown; each needs the job re-armed.
STOP_EVENTS = frozenset({"dead_letter", "job_failed"})
# Notices: something waits for an operator (a run awaiting approval). Always sent, and
# they neither open an alert nor restart the cooldown: they report no problem.
NOTICE_EVENTS = frozenset({"awaiting_approval"})


@dataclass(frozen=True)
class AlertRequest:
    """An alert to send about a job: ``event`` (run_failed, dead_letter, job_failed,
    no_success, recovered) and its ``message``; :func:`raise_alert` applies the job's
    ``cooldown_ms``."""

    job_id: str
    channels: tuple[str, ...]
    event: str
    message: str
    cooldown_ms: int
    run_id: Optional[str] = None

    @classmethod
    def about(cls, job: Job, event: str, message: str,
              run_id: Optional[str] = None) -> AlertRequest:
        """An alert about ``job`` to its ``alert`` channels, under its cooldown."""
        return cls(job_id=job.id, channels=tuple(job.alert), event=event, message=message,
                   run_id=run_id, cooldown_ms=int(job.alert_cooldown * 1000))


def raise_alert(conn: Any, alert: AlertRequest, now: int) -> bool:
    """Outbox rows for ``alert`` unless its job's cooldown holds it back (counted in
    ``suppressed``); True when they were written.

    The cooldown is the job's, whatever the event: within ``cooldown_ms`` of the job's
    last problem alert (``last_alert_at``) another is held back, but a stop
    (:data:`STOP_EVENTS`), which is always sent. A ``recovered`` is sent only while a
    problem alert is open (sent and not yet followed by a recovery), and closes it; it
    does not restart the cooldown, so a job that flaps says at most one problem and one
    recovery per cooldown. The next problem alert sent says how many were held back."""
    row = conn.execute("SELECT last_alert_at, open, suppressed FROM alert_state "
                       "WHERE job_id = ?", (alert.job_id,)).fetchone()
    last, is_open, held = (row[0], bool(row[1]), int(row[2])) if row else (None, False, 0)
    recovered = alert.event == "recovered"
    notice = alert.event in NOTICE_EVENTS
    message = alert.message
    if notice:
        pass
    elif recovered:
        if not is_open:
            return False
    elif alert.event not in STOP_EVENTS and last is not None and \
            now < last + alert.cooldown_ms:
        if alert.event != "no_success":  # the switch looks every 10 s: not a write each
            conn.execute("INSERT INTO alert_state (job_id, suppressed) VALUES (?, 1) "
                         "ON CONFLICT (job_id) DO UPDATE SET suppressed = suppressed + 1",
                         (alert.job_id,))
        return False
    elif held and last is not None:
        message += f" ({held} more held back by alert_cooldown since {format_instant(last)})"
    payload = json.dumps({"event": alert.event, "message": message})
    conn.executemany(
        f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, 'alert', "
        "'pending', 0, ?, '[]', ?, ?) ON CONFLICT (run_id, channel, kind) DO NOTHING",
        [(new_id(), alert.run_id, alert.job_id, channel, now, now, payload)
         for channel in alert.channels])
    if notice:
        pass
    elif recovered:
        conn.execute("UPDATE alert_state SET open = 0, last_event = ? WHERE job_id = ?",
                     (alert.event, alert.job_id))
    else:
        conn.execute(
            "INSERT INTO alert_state (job_id, last_alert_at, open, last_event) "
            "VALUES (?, ?, 1, ?) ON CONFLICT (job_id) DO UPDATE SET open = 1, "
            "suppressed = 0, last_alert_at = excluded.last_alert_at, "
            "last_event = excluded.last_event", (alert.job_id, now, alert.event))
    if alert.run_id is None:  # alerts of no run (the dead man's switch) go with nothing
        conn.execute(
            "DELETE FROM deliveries WHERE job_id = ? AND kind = 'alert' AND run_id IS NULL "
            "AND status <> 'pending' AND id NOT IN (SELECT id FROM deliveries WHERE "
            "job_id = ? AND kind = 'alert' AND run_id IS NULL "
            "ORDER BY created_at DESC LIMIT ?)", (alert.job_id, alert.job_id, ALERTS_KEPT))
    return True


class SqlDeliveries(SqlPlumbing):
    """The outbox rows of :class:`~symbid.store.sql.SqlJobStore`."""

    def due_deliveries(self, now: int, limit: int,
                       skip: Sequence[str] = ()) -> list[Delivery]:
        """Pending deliveries due by ``now``, oldest due first, but those in ``skip``
        (being attempted)."""
        rows = self._query(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' "
            "AND next_at <= ? ORDER BY next_at LIMIT ?", (now, limit + len(skip)))
        rows = sorted(rows, key=lambda r: r[4] != "alert")  # alerts first, then oldest
        taken = set(skip)
        return [d for d in map(delivery_from_row, rows) if d.id not in taken][:limit]

    def next_delivery_due(self) -> Optional[int]:
        rows = self._query("SELECT MIN(next_at) FROM deliveries WHERE status = 'pending'")
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def deliveries_of(self, run_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """Each run's deliveries (channel order as written)."""
        out: dict[str, list[Delivery]] = {r: [] for r in run_ids}
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            for row in self._query(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE "
                                   f"run_id IN ({marks}) ORDER BY created_at, rowid", chunk):
                d = delivery_from_row(row)
                out[d.run_id or ""].append(d)
        return out

    def alerts_of(self, job_id: str, limit: int) -> list[Delivery]:
        """A job's alerts (one row per channel), newest first."""
        return [delivery_from_row(r) for r in self._query(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE job_id = ? AND kind = 'alert' "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?", (job_id, limit))]

    def alert_state(self, job_id: str) -> Optional[AlertState]:
        """Where the job's alerts stand; None before its first alert."""
        rows = self._query("SELECT open, last_event, last_alert_at, suppressed FROM "
                           "alert_state WHERE job_id = ? AND last_alert_at IS NOT NULL",
                           (job_id,))
        if not rows:
            return None
        is_open, event, at, held = rows[0]
        return AlertState(bool(is_open), event, int(at), int(held))

    def raise_alert(self, alert: AlertRequest, now: int) -> bool:
        """Write ``alert``'s outbox rows (cooldown permitting); True when written."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (alert.job_id,)).fetchone():
                return raise_alert(conn, alert, now)
            return False

    def overdue_jobs(self, now: int) -> list[tuple[str, float, Optional[int]]]:
        """The dead man's switch: active jobs with ``alert_if_no_success_within`` whose
        last success (or the time it started watching them: created, resumed, or first
        seen active again) is older than that: ``(job id, seconds, last success)``.
        Watching starts at the job's creation, and afresh when it is active again after
        being seen paused (or otherwise not active)."""
        rows = self._query(
            f"SELECT j.id, j.status, {WATCH}, j.created_at, s.watch_from, j.last_success_at "
            "FROM jobs j LEFT JOIN alert_state s "
            f"ON s.job_id = j.id WHERE {WATCH} IS NOT NULL")
        overdue: list[tuple[str, float, Optional[int]]] = []
        starts: list[tuple[str, int]] = []
        for job_id, status, seconds, created, seen, success in rows:
            if status != "active":
                if seen != PAUSED_MARK:
                    starts.append((job_id, PAUSED_MARK))
                continue
            start = int(seen) if seen is not None and seen != PAUSED_MARK else \
                now if seen == PAUSED_MARK else int(created)
            if start != seen:
                starts.append((job_id, start))
            since = max(start, int(success or 0))
            if now >= since + float(seconds) * 1000:
                overdue.append((job_id, float(seconds), success))
        if starts:
            with self._write() as conn:
                conn.executemany(
                    "INSERT INTO alert_state (job_id, watch_from) VALUES (?, ?) ON CONFLICT "
                    "(job_id) DO UPDATE SET watch_from = excluded.watch_from",
                    [(job_id, at) for job_id, at in starts])
        return overdue

    def record_attempt(self, delivery_id: str, receipt: Mapping[str, Any], status: str,
                       next_at: Optional[int]) -> bool:
        """An attempt's receipt, and what follows: ``status`` pending (due again at
        ``next_at``), delivered or failed. False when the row is gone (its run went)."""
        with self._write() as conn:
            row = conn.execute("SELECT receipts FROM deliveries WHERE id = ?",
                               (delivery_id,)).fetchone()
            if row is None:
                return False
            receipts = [*json.loads(row[0] or "[]"), dict(receipt)][-RECEIPTS_KEPT:]
            conn.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, "
                "next_at = COALESCE(?, next_at), receipts = ? WHERE id = ?",
                (status, next_at, json.dumps(receipts, separators=(",", ":")), delivery_id))
            return True
