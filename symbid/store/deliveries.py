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

from symbid.model import format_instant, new_id
from symbid.store.plumbing import SqlPlumbing

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
RECEIPTS_KEPT = 50  # receipts a row keeps (the latest)
DELIVERY_COLUMNS = ("id, run_id, job_id, channel, kind, status, attempts, next_at, receipts, "
                    "created_at")


@dataclass(frozen=True)
class Delivery:
    """One channel's delivery of one run's output (``kind`` "output") or of an alert."""

    id: str
    run_id: str
    job_id: str
    channel: str
    kind: str
    status: str  # pending | delivered | failed
    attempts: int
    next_at: int  # epoch ms: when the next attempt is due (pending)
    receipts: tuple[Mapping[str, Any], ...]
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        """The wire form (``next_at`` only while it is pending)."""
        return {"id": self.id, "channel": self.channel, "kind": self.kind,
                "status": self.status, "attempts": self.attempts,
                "next_at": format_instant(self.next_at) if self.status == PENDING else None,
                "receipts": [dict(r) for r in self.receipts]}


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    did, run_id, job_id, channel, kind, status, attempts, next_at, receipts, created = row
    return Delivery(id=did, run_id=run_id, job_id=job_id, channel=channel, kind=kind,
                    status=status, attempts=int(attempts), next_at=int(next_at),
                    receipts=tuple(json.loads(receipts or "[]")), created_at=int(created))


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
        "'pending', 0, ?, '[]', ?) ON CONFLICT (run_id, channel, kind) DO NOTHING",
        [(new_id(), run_id, job_id, channel, now, now) for channel in channels])


class SqlDeliveries(SqlPlumbing):
    """The outbox rows of :class:`~symbid.store.sql.SqlJobStore`."""

    def due_deliveries(self, now: int, limit: int,
                       skip: Sequence[str] = ()) -> list[Delivery]:
        """Pending deliveries due by ``now``, oldest due first, but those in ``skip``
        (being attempted)."""
        rows = self._query(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' "
            "AND next_at <= ? ORDER BY next_at LIMIT ?", (now, limit + len(skip)))
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
                out[d.run_id].append(d)
        return out

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
