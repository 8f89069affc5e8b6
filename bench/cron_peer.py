"""symbid side by side with Debian's cron, for the single-job figure.

cron runs inside the Debian 12 container of :mod:`tests.e2e.container` (systemd-nspawn,
booted from its cached debootstrap root; never on the shared host): ``apt-get install
cron`` there, then a line in ``/etc/cron.d`` that runs ``date +%s%N`` every minute,
appending to a file. Over the same minutes, symbid's real daemon (on a socket in a temp
dir on the host) runs a ``* * * * *`` job of the same ``date +%s%N``. The container shares
the host's kernel and clock, so both readings are on one clock. Late = the child's reading
minus the minute it was due for; cron has minute resolution, so this single-job row is the
only figure compared with it.

Skipped, with the reason, when the container cannot be had here (not root, or
systemd-nspawn / debootstrap / nsenter missing: ``make e2e`` installs them as root).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from bench.peer_bench import _daemon
from symbid.clock import SystemClock

CLOCK = SystemClock()
MINUTE_MS = 60_000
OUT = "/var/tmp/cron-bench.out"
FIGURE = "single job: child start after slot (cron: minute resolution)"


def lateness_ms(readings_ns: list[int]) -> list[float]:
    """Each reading (ns since the epoch) minus the minute boundary before it (ms)."""
    return [round(ns / 1e6 - (ns // 1_000_000 // MINUTE_MS) * MINUTE_MS, 2)
            for ns in readings_ns]


def why_skipped() -> Optional[str]:
    from tests.e2e.container import missing_tools

    if os.geteuid() != 0:
        return "vs_cron needs root (systemd-nspawn boots the Debian container)"
    missing = missing_tools()
    if missing:
        return (f"vs_cron needs {', '.join(missing)} (apt-get install systemd-container "
                "debootstrap; `make e2e` installs them as root)")
    return None


def _install_cron(c: Any) -> str:
    install = "apt-get install -y -q --no-install-recommends cron"
    if not c.run(install, timeout=300).ok:  # the cached package lists may be stale
        c.ok("apt-get update -q", timeout=300)
        c.ok(install, timeout=300)
    c.ok("systemctl enable --now cron")
    return str(c.ok("dpkg-query -W -f='${Version}' cron").out.strip())


def _cron_readings(c: Any) -> list[int]:
    out = c.run(f"cat {OUT}")
    return [int(x) for x in out.out.split() if x.isdigit()] if out.ok else []


def _symbid_readings(db: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT slot, output FROM runs WHERE status = 'succeeded'"
                            ).fetchall()
    finally:
        conn.close()
    return [(int(slot), int(out.strip())) for slot, out in rows
            if (out or "").strip().isdigit()]


def _summary(late: list[float]) -> dict[str, Any]:
    return {"n": len(late), "late_ms": late,
            "median_ms": round(statistics.median(late), 2) if late else None,
            "max_ms": max(late) if late else None}


def vs_cron(firings: int = 3) -> dict[str, Any]:
    reason = why_skipped()
    if reason:
        print(f"vs_cron skipped: {reason}", flush=True)
        return {"skipped": reason}
    from tests.e2e.container import booted

    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp, booted() as c:
        version = _install_cron(c)
        # cron.d: % ends the command in a crontab line unless escaped
        c.write("/etc/cron.d/symbid-bench",
                f"* * * * * root date +\\%s\\%N >> {OUT}\n")
        d = _daemon(Path(tmp))
        try:
            d.start()
            status, body = d.api("POST", "/api/v1/schedule", {
                "name": "every-minute", "agent_id": "clock", "cron_expr": "* * * * *"})
            assert status == 201, body
            # cron reads /etc/cron.d at a minute's start: a firing in the first minute
            # may be missing on either side, so wait for `firings` on both
            deadline = time.monotonic() + (firings + 2) * 60 + 30
            cron: list[int] = []
            ours: list[tuple[int, int]] = []
            while time.monotonic() < deadline:
                cron, ours = _cron_readings(c), _symbid_readings(d.state / "symbid.db")
                if len(cron) >= firings and len(ours) >= firings:
                    break
                time.sleep(2)
            d.stop()
        finally:
            d.cleanup()
    peer = _summary(lateness_ms(cron[:firings]))
    mine = _summary([round(ns / 1e6 - slot, 2) for slot, ns in sorted(ours)[:firings]])
    rows = [
        {"figure": f"{FIGURE}, median of {firings}", "symbid": mine["median_ms"],
         "peer": peer["median_ms"], "unit": "ms", "target": ""},
        {"figure": f"{FIGURE}, worst of {firings}", "symbid": mine["max_ms"],
         "peer": peer["max_ms"], "unit": "ms", "target": ""},
    ]
    return {"peer": f"Debian 12 cron {version} (in the systemd-nspawn container)",
            "firings": firings, "rows": rows, "symbid": mine, "cron": peer}
