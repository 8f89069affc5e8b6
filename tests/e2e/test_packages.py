"""The .deb and the .rpm as built by `make deb` and `make rpm` on this machine: what they
install, their scripts, and lintian's verdict (installing them on a real systemd is
test_systemd.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = next(line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text().splitlines()
               if line.startswith("version = "))
DEB = ROOT / "build" / "packages" / f"symbid_{VERSION}_all.deb"
RPM = ROOT / "build" / "packages" / f"symbid-{VERSION}-1.noarch.rpm"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"),
    reason="building the packages installs their tools, which needs root")


def _make(target: str) -> None:
    done = subprocess.run(["make", "-C", str(ROOT), target], capture_output=True, text=True,
                          check=False, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def deb() -> Iterator[Path]:
    _make("deb")
    yield DEB


@pytest.fixture(scope="module")
def rpm() -> Iterator[Path]:
    _make("rpm")
    yield RPM


def _out(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


EXPECTED = ("/usr/bin/symbid", "/usr/bin/symbi", "/etc/symbid/symbid.toml",
            "/etc/symbid/agents.d/example.symbi.disabled", "/etc/logrotate.d/symbid",
            "/systemd/system/symbid.service", "/systemd/system/symbid.socket",
            "/usr/lib/sysusers.d/symbid.conf", "/usr/lib/tmpfiles.d/symbid.conf",
            "/usr/lib/symbid/croniter/croniter.py", "/completions/symbi", "/_symbi",
            "/man1/symbi-cron.1", "/man1/symbi.1", "/man5/symbid.toml.5",
            "/man5/symbi-dsl.5", "/man8/symbid.8")


def test_the_deb_installs_the_units_the_conffile_the_man_pages_and_private_croniter(
        deb: Path) -> None:
    listing = _out("dpkg-deb", "-c", str(deb))
    for path in EXPECTED:
        assert path in listing, path
    assert "/usr/lib/python3/dist-packages/symbid/daemon.py" in listing
    assert "dist-packages/croniter" not in listing  # private: no other program sees it
    assert "/usr/share/man/man1/symbi-cron.1.gz" in listing
    info = _out("dpkg-deb", "-I", str(deb))
    assert "python3-jwt" in info and "python3-cryptography" in info
    assert "python3-croniter" not in info
    control = Path(_out("mktemp", "-d").strip())
    try:
        subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
        assert (control / "conffiles").read_text().split() == [
            "/etc/logrotate.d/symbid", "/etc/symbid/agents.d/example.symbi.disabled",
            "/etc/symbid/symbid.toml"]
        postinst = (control / "postinst").read_text()
        assert postinst.index("systemd-sysusers") < postinst.index("systemd-tmpfiles") \
            < postinst.index("chown root:symbid /etc/symbid/symbid.toml")
        assert "deb-systemd-helper enable 'symbid.socket'" in postinst
        assert "deb-systemd-helper enable 'symbid.service'" in postinst
    finally:
        shutil.rmtree(control)


def test_lintian_reports_no_errors_or_warnings_for_the_deb(deb: Path) -> None:
    done = subprocess.run(["lintian", "--fail-on", "error,warning", str(deb)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rpm_installs_the_same_files_with_systemd_and_sysusers_scripts(rpm: Path) -> None:
    listing = _out("rpm", "-qpl", str(rpm))
    for path in EXPECTED:
        assert path in listing, path
    scripts = _out("rpm", "-qp", "--scripts", str(rpm))
    assert "systemd-sysusers" in scripts.split("postinstall scriptlet")[0]  # %pre
    assert "install-system-units symbid.socket symbid.service" in scripts
    assert "remove-system-units symbid.service symbid.socket" in scripts
    assert "mark-restart-system-units symbid.service" in scripts
    assert "systemd-tmpfiles --create symbid.conf" in scripts
    assert "/etc/symbid/symbid.toml" in _out("rpm", "-qp", "--configfiles", str(rpm)).split()
    dump = _out("rpm", "-qp", "--dump", str(rpm))
    toml = next(line for line in dump.splitlines() if line.startswith("/etc/symbid/symbid.toml "))
    assert " 0100640 root symbid 1 " in toml  # %config(noreplace) %attr(0640,root,symbid)
    # the state directory as the daemon keeps it (rpm -V would flag another mode)
    state = next(line for line in dump.splitlines() if line.startswith("/var/lib/symbid "))
    assert " 040700 symbid symbid " in state
