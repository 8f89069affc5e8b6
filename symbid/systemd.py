"""What symbid tells systemd: readiness, status and watchdog pings (sd_notify), and the
watchdog interval systemd asks for (``$WATCHDOG_USEC``)."""

from __future__ import annotations

import os
from typing import Any, Optional


class Notifier:
    """sd_notify; silent when not run by systemd (no $NOTIFY_SOCKET)."""

    def __init__(self) -> None:
        self._enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier: Any = None
        if self._enabled:
            import sdnotify

            self._notifier = sdnotify.SystemdNotifier()

    def notify(self, *lines: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(lines))


def watchdog_interval() -> Optional[float]:
    """Half of systemd's WatchdogSec, when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None
