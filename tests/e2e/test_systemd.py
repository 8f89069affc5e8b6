"""symbid installed from its .deb on a real systemd: a Debian 12 container booted with
systemd as PID 1 (tests/e2e/container.py), driven the way an operator would.

One container for the module; the steps run in order, each naming what it checked. An
older-numbered package built from this tree is installed first and upgraded, so the
upgrade path is the first thing proven; purge is the last.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.container import Container, booted, missing_tools

ROOT = Path(__file__).resolve().parents[2]
VERSION = next(line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text().splitlines()
               if line.startswith("version = "))
OLD_VERSION = "0.0.9"  # no tagged release has packaging yet: this tree, numbered lower

if os.geteuid() != 0 or missing_tools():
    reason = ("needs root" if os.geteuid() != 0
              else f"needs {', '.join(missing_tools())} (make e2e installs them as root)")
    if os.environ.get("CI"):
        raise RuntimeError(f"the systemd suite cannot run: {reason}")
    pytest.skip(reason, allow_module_level=True)

WHO = "; ".join(["id -un", "id -G", "grep CapEff /proc/self/status"] + [
    f"cat {path} >/dev/null 2>&1 && echo {name}-readable || echo {name}-closed"
    for name, path in (("db", "/var/lib/symbid/symbid.db"), ("conf", "/etc/symbid/symbid.toml"),
                       ("token", "/etc/symbid/api-token"),
                       ("environ", "/proc/$PPID/environ"))] + ["echo $PPID"])
AGENTS = f"""
agent hello {{ command: ["/bin/sh", "-c", "echo hello-from-$SYMBI_JOB_NAME"] }}
agent who {{ command: ["/bin/sh", "-c", "{WHO}"] }}
"""


def _make_deb(version: str) -> Path:
    done = subprocess.run(["make", "-C", str(ROOT), "deb", f"DEB_VERSION={version}"],
                          capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ROOT / "build" / "packages" / f"symbid_{version}_all.deb"


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("debs")
    for version in (OLD_VERSION, VERSION):
        shutil.copy(_make_deb(version), where)
    where.chmod(0o755)
    return where


@pytest.fixture(scope="module")
def box(debs: Path) -> Iterator[Container]:
    started = time.monotonic()
    with booted([(debs, "/debs")]) as container:
        yield container
    print(f"[e2e] systemd suite: {time.monotonic() - started:.0f} s", flush=True)


def _json(c: Container, cmd: str) -> Any:
    return json.loads(c.ok(cmd).out)


def _runs(c: Container, job: str) -> list[dict[str, Any]]:
    result = c.run(f"symbi cron history {job} --format json")
    return json.loads(result.out) if result.ok else []


def _wait_run(c: Container, job: str, timeout: float = 60) -> dict[str, Any]:
    """The job's newest run once it has finished."""
    c.wait_for(f"a finished run of {job}", f"symbi cron history {job} --format json",
               lambda r: r.ok and any(x["status"] not in ("pending", "running")
                                      for x in json.loads(r.out)), timeout=timeout)
    return next(x for x in _runs(c, job) if x["status"] not in ("pending", "running"))


def _main_pid(c: Container) -> int:
    return int(c.ok("systemctl show -p MainPID --value symbid").out.strip())


def test_an_older_package_installs_and_runs_a_job(box: Container) -> None:
    box.ok(f"apt-get install -y -q --no-install-recommends /debs/symbid_{OLD_VERSION}_all.deb",
           timeout=300)
    box.ok("systemctl enable --now symbid")
    box.write("/etc/symbid/agents.d/e2e.symbi", AGENTS)
    box.ok("systemctl reload symbid")
    box.ok('symbi cron add --json \'{"name": "before-upgrade", "agent_id": "hello", '
           '"cron_expr": "0 0 1 1 *"}\'')
    box.ok("symbi cron run before-upgrade")
    assert _wait_run(box, "before-upgrade")["status"] == "succeeded"


def test_the_new_package_upgrades_it_restarting_the_service_and_keeping_everything(
        box: Container) -> None:
    before = _main_pid(box)
    runs = _runs(box, "before-upgrade")
    audit = box.ok("symbi audit query --job before-upgrade --format json").out
    box.ok(f"apt-get install -y -q --no-install-recommends /debs/symbid_{VERSION}_all.deb",
           timeout=300)
    assert box.ok("dpkg-query -W -f='${Version}' symbid").out == VERSION
    box.wait_for("the service back after the upgrade", "systemctl is-active symbid",
                 lambda r: r.out.strip() == "active")
    assert _main_pid(box) != before, "the upgrade restarts the daemon"
    assert [r["id"] for r in _runs(box, "before-upgrade")] == [r["id"] for r in runs]
    assert json.loads(box.ok("symbi audit query --job before-upgrade --format json").out) \
        == json.loads(audit)
    # the conffile stays the operator's, the runs' user cannot read it
    assert box.ok("stat -c '%a %U %G' /etc/symbid/symbid.toml").out.split() == [
        "640", "root", "symbid"]


def test_an_at_job_and_a_cron_job_added_with_the_cli_run(box: Container) -> None:
    at = box.ok("date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ").out.strip()
    box.ok('symbi cron add --json \'{"name": "once", "agent_id": "hello", '
           f'"at": "{at}", "delivery": ["stdout"]}}\'')
    box.ok('symbi cron add --json \'{"name": "often", "agent_id": "hello", '
           '"cron_expr": "*/5 * * * * *", "delivery": ["stdout"]}\'')
    assert _wait_run(box, "once", timeout=30)["status"] == "succeeded"
    assert _wait_run(box, "often", timeout=30)["status"] == "succeeded"


def test_the_journal_and_symbi_logs_show_a_jobs_output(box: Container) -> None:
    journal = box.wait_for("the job's output in the journal",
                           "journalctl -u symbid SYMBID_JOB=once --no-pager -o cat",
                           lambda r: "hello-from-once" in r.out)
    assert "hello-from-often" not in journal.out
    fields = box.ok("journalctl -u symbid SYMBID_JOB=once -o json --no-pager").out
    entries = [json.loads(line) for line in fields.splitlines()]
    assert {e.get("SYMBID_COMPONENT") for e in entries} >= {"scheduler", "delivery"}
    assert all(e["SYSLOG_IDENTIFIER"] == "symbid" for e in entries)
    logs = box.ok("symbi logs --job once").out
    assert "hello-from-once" in logs and "hello-from-often" not in logs
    delivery = box.ok("symbi logs --job once --filter delivery").out
    assert "hello-from-once" in delivery and "CronJobCreated" not in delivery


def test_a_reload_picks_up_a_new_agents_file(box: Container) -> None:
    box.write("/etc/symbid/agents.d/later.symbi", 'agent later { command: ["/bin/true"] }\n'
              'schedule { name: "from-file" agent: "later" cron: "0 0 1 1 *" }\n')
    box.ok("systemctl reload symbid")
    names = [j["name"] for j in _json(box, "symbi cron list --format json")]
    assert "from-file" in names


def test_a_run_executes_as_symbid_run_and_cannot_read_the_database_config_token_or_environ(
        box: Container) -> None:
    # a token file kept as symbid(8) says: readable by symbid only
    box.ok("echo secret > /etc/symbid/api-token && chown symbid:symbid /etc/symbid/api-token"
           " && chmod 0600 /etc/symbid/api-token")
    box.ok('symbi cron add --json \'{"name": "who", "agent_id": "who", '
           '"cron_expr": "0 0 1 1 *"}\'')
    box.ok("symbi cron run who")
    run = _wait_run(box, "who")
    assert run["status"] == "succeeded", run
    text = box.ok(f"symbi cron output {run['id']}").out
    user, groups, caps, db, conf, token, environ, parent = text.splitlines()[:8]
    assert user == "symbid-run"
    assert groups == box.ok("id -g symbid-run").out.strip()  # no supplementary groups
    assert caps.split()[1] == "0000000000000000"
    assert (db, conf, token, environ) == ("db-closed", "conf-closed", "token-closed",
                                          "environ-closed")
    main_pid = box.ok("systemctl show -p MainPID --value symbid").out.strip()
    assert parent == main_pid  # the environ it could not read was the daemon's
    assert box.ok(f"stat -c %U /proc/{main_pid}").out.strip() == "symbid"


def test_a_restart_keeps_jobs_and_history(box: Container) -> None:
    jobs = sorted(j["name"] for j in _json(box, "symbi cron list --format json"))
    runs = [r["id"] for r in _runs(box, "who")]
    box.ok("systemctl restart symbid")
    assert sorted(j["name"] for j in _json(box, "symbi cron list --format json")) == jobs
    assert [r["id"] for r in _runs(box, "who")] == runs


def test_a_stopped_service_is_started_again_by_the_socket(box: Container) -> None:
    box.ok("systemctl stop symbid")
    assert box.run("systemctl is-active symbid").out.strip() == "inactive"
    assert box.ok("symbi cron list").out
    assert box.ok("systemctl is-active symbid").out.strip() == "active"


def test_members_of_group_symbid_may_use_the_cli_and_others_may_not(box: Container) -> None:
    box.ok("useradd -m -G symbid alice && useradd -m bob")
    assert "before-upgrade" in box.ok("symbi cron list", user="alice").out
    refused = box.run("symbi cron list", user="bob")
    assert refused.rc == 69 and "Permission denied" in refused.err, refused


def test_the_man_pages_are_installed(box: Container) -> None:
    page = box.ok("man -P cat symbi-cron 2>/dev/null | head -20").out
    assert "symbi-cron" in page
    assert box.run("man -w symbid.toml && man -w symbi-dsl && man -w symbid").ok


def test_a_stopped_daemon_trips_the_watchdog_and_is_restarted(box: Container) -> None:
    pid = _main_pid(box)
    restarts = int(box.ok("systemctl show -p NRestarts --value symbid").out)
    box.ok(f"kill -STOP {pid}")
    box.wait_for("a new daemon after the watchdog", "systemctl show -p MainPID --value symbid",
                 lambda r: r.out.strip() not in ("", "0", str(pid))
                 and box.run("systemctl is-active symbid").out.strip() == "active",
                 timeout=90, interval=1)
    assert int(box.ok("systemctl show -p NRestarts --value symbid").out) > restarts
    assert "watchdog" in box.ok("journalctl -u symbid --no-pager | tail -40").out.lower()
    assert "before-upgrade" in box.ok("symbi cron list").out


def test_purge_leaves_no_unit_enabled(box: Container) -> None:
    box.ok("apt-get purge -y -q symbid", timeout=120)
    for unit in ("symbid.service", "symbid.socket"):
        state = box.run(f"systemctl is-enabled {unit}").out.strip()
        assert state in ("", "not-found", "disabled"), (unit, state)
    assert not box.run("test -e /etc/symbid/symbid.toml").ok
    # Debian keeps system users on purge (files they own may remain): packaging/README.md
    assert box.run("id symbid && id symbid-run").ok
