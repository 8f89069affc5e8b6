"""The ``stdout`` channel: the run's output in the daemon's log, and on its stdout.

Every delivery is one log record of ``symbid.delivery.stdout`` with the journal fields
``SYMBID_JOB``, ``SYMBID_RUN``, ``SYMBID_EVENT=delivery`` and ``SYMBID_CHANNEL=stdout``
(under systemd, ``journalctl -u symbid SYMBID_JOB=NAME`` shows it), the output escaped
on one line, whatever ``--log-level`` says (a delivery is not a diagnostic). When
stderr is not the journal, the output also goes to stdout as a block: ``TIMESTAMP job
NAME run ID STATUS`` and then the output's lines, each escaped.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping
from typing import Optional

from symbid.config import DeliverySettings
from symbid.delivery.base import Payload, Receipt, Target, elapsed_ms, refused
from symbid.text import escape

CHANNEL = "stdout"
log = logging.getLogger("symbid.delivery.stdout")
# Its records are deliveries, not diagnostics: they pass whatever --log-level says.
log.setLevel(logging.INFO)
_write = threading.Lock()  # one delivery's block is never interleaved with another's


def problem(target: Target, settings: DeliverySettings) -> Optional[str]:
    """The stdout channel needs nothing."""
    return None


def block(payload: Payload) -> str:
    """The text written to stdout for one delivery."""
    lines = [f"{payload.when()} job {escape(payload.job)} {payload.headline()}"]
    lines += [escape(line) for line in payload.output.splitlines()]
    return "\n".join(lines) + "\n"


def send(payload: Payload, target: Target, settings: DeliverySettings,
         environ: Mapping[str, str], *, journal: bool = False) -> Receipt:
    """Log the delivery (and, unless ``journal`` says stderr is the journal, write its
    block to stdout). Fails only when stdout cannot be written."""
    started = time.monotonic()
    fields = {"SYMBID_JOB": payload.job, "SYMBID_RUN": payload.run_id,
              "SYMBID_EVENT": "alert" if payload.is_alert else "delivery",
              "SYMBID_CHANNEL": CHANNEL}
    log.info("job %s %s: %s", escape(payload.job), payload.headline(),
             escape(payload.output), extra=fields)
    if journal:
        return Receipt(CHANNEL, ok=True, reply="logged to the journal",
                       duration_ms=elapsed_ms(started))
    stream = sys.stdout
    if stream is None:
        return refused(CHANNEL, "symbid has no stdout", started)
    try:
        with _write:
            stream.write(block(payload))
            stream.flush()
    except (OSError, ValueError) as exc:  # a closed pipe, a closed stream
        return refused(CHANNEL, f"cannot write to stdout: {exc}", started, permanent=False)
    return Receipt(CHANNEL, ok=True, reply="logged, and written to stdout",
                   duration_ms=elapsed_ms(started))
