"""The systemd units in units/: what the issue asks of them, and their exposure score as
`systemd-analyze security` computes it (when systemd-analyze is here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "units"


def _settings(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_service_notifies_is_watched_and_stops_its_runs_itself() -> None:
    s = _settings("symbid.service")
    for key, value in {"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30s",
                       "Restart": "on-failure", "KillMode": "mixed", "User": "symbid",
                       "Group": "symbid", "RuntimeDirectory": "symbid",
                       "RuntimeDirectoryPreserve": "yes", "LogsDirectory": "symbid",
                       "ConfigurationDirectory": "symbid", "UMask": "0077",
                       "StateDirectory": "symbid symbid-runs", "ProtectSystem": "strict",
                       "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "SystemCallErrorNumber": "EPERM"}.items():
        assert s.get(key) == [value], key
    assert s["ExecReload"][0].startswith("/usr/bin/symbi ") and "reload" in s["ExecReload"][0]
    assert "/bin/kill" not in (UNITS / "symbid.service").read_text()
    assert "@system-service" in s["SystemCallFilter"]
    assert s["CapabilityBoundingSet"] == ["CAP_SETUID CAP_SETGID CAP_KILL"]


def test_the_socket_is_the_daemons_control_socket() -> None:
    s = _settings("symbid.socket")
    assert s["ListenStream"] == ["/run/symbid/control.sock"]
    assert (s["SocketMode"], s["SocketGroup"], s["FileDescriptorName"]) == (
        ["0660"], ["symbid"], ["control"])


def test_sysusers_and_tmpfiles_make_the_users_and_the_run_users_root() -> None:
    users = [line.split()[1] for line in (UNITS / "symbid.sysusers").read_text().splitlines()
             if line.startswith("u ")]
    assert users == ["symbid", "symbid-run"]
    tmpfiles = (UNITS / "symbid.tmpfiles").read_text()
    assert "d /var/lib/symbid-runs  0711 symbid symbid" in tmpfiles
    assert "d /var/lib/symbid-runs/users/symbid-run  0700 symbid-run symbid-run" in tmpfiles


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_service_exposure_is_at_most_2_0() -> None:
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                           str(UNITS / "symbid.service")], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
