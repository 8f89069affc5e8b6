"""The delivery channels that stay on the machine, against real parts: the daemon's log and
stdout, log files on disk (traversal, links, FIFOs, logrotate), custom channels as real
processes and as an installed entry point."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from symbid.config import CustomChannel, DeliverySettings
from symbid.delivery import router, stdout
from symbid.delivery.base import Target
from tests.integration.delivery_parts import ENV, FAST, PAYLOAD, script, send

# --- stdout ----------------------------------------------------------------------------------


def test_stdout_writes_a_block_and_logs_one_record_with_the_journal_fields(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    payload = replace(PAYLOAD, output="ok\n\x1b[31mred\x1b[0m")
    with caplog.at_level(logging.INFO, logger="symbid.delivery.stdout"):
        receipt = send("stdout", Target(), FAST, payload=payload)

    assert receipt.ok
    assert capsys.readouterr().out == (
        "2026-03-08T07:00:02Z job nightly run r-1 failed\nok\n\\x1b[31mred\\x1b[0m\n")
    [record] = caplog.records
    assert (record.SYMBID_JOB, record.SYMBID_RUN, record.SYMBID_EVENT,  # type: ignore[attr-defined]
            record.SYMBID_CHANNEL) == ("nightly", "r-1", "delivery", "stdout")  # type: ignore[attr-defined]
    assert record.getMessage() == "job nightly run r-1 failed: ok\\x0a\\x1b[31mred\\x1b[0m"


def test_under_the_journal_stdout_only_logs(capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="symbid.delivery.stdout"):
        receipt = stdout.send(PAYLOAD, Target(), FAST, ENV, journal=True)
    assert receipt.ok and capsys.readouterr().out == ""
    assert len(caplog.records) == 1


def test_a_stdout_delivery_reaches_a_journal_socket_as_one_entry_with_its_fields(
        tmp_path: Path) -> None:
    """The native protocol on a real datagram socket (journald itself, under systemd, is
    the packaging tests'), at any --log-level: a delivery is not a diagnostic."""
    import socket

    from symbid.journal import EscapeFilter, JournalHandler

    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    handler = JournalHandler(path)
    handler.addFilter(EscapeFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(root, "level", logging.WARNING)  # symbid --log-level warning
            receipt = stdout.send(replace(PAYLOAD, output="two\nlines"), Target(), FAST, ENV,
                                  journal=True)
        entry = server.recv(65536)
    finally:
        root.removeHandler(handler)
        handler.close()
        server.close()
    assert receipt.ok and receipt.reply == "logged to the journal"
    fields = dict(line.split("=", 1) for line in entry.decode().splitlines())
    assert {k: fields[k] for k in ("SYMBID_JOB", "SYMBID_RUN", "SYMBID_EVENT",
                                   "SYMBID_CHANNEL", "PRIORITY", "SYSLOG_IDENTIFIER")} == {
        "SYMBID_JOB": "nightly", "SYMBID_RUN": "r-1", "SYMBID_EVENT": "delivery",
        "SYMBID_CHANNEL": "stdout", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "symbid"}
    assert fields["MESSAGE"] == "job nightly run r-1 failed: two\\x0alines"


def test_an_alert_about_no_run_names_its_event_and_no_empty_run_on_stdout_and_in_the_log_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    alert = replace(PAYLOAD, run_id="", status="dead_letter", trigger="alert",
                    output="schedule no longer valid")
    with caplog.at_level(logging.INFO, logger="symbid.delivery.stdout"):
        assert send("stdout", Target(), FAST, payload=alert).ok
    assert send("log_file", Target(), FAST, log_dir=str(tmp_path), payload=alert).ok
    about_run = replace(alert, run_id="r-9", status="run_failed")
    assert send("log_file", Target(), FAST, log_dir=str(tmp_path), payload=about_run).ok

    assert capsys.readouterr().out == (
        "2026-03-08T07:00:02Z job nightly alert dead_letter\nschedule no longer valid\n")
    [record] = caplog.records
    assert record.getMessage() == "job nightly alert dead_letter: schedule no longer valid"
    assert record.SYMBID_EVENT == "alert"  # type: ignore[attr-defined]
    assert (tmp_path / "nightly.log").read_text() == (
        "2026-03-08T07:00:02Z alert dead_letter\nschedule no longer valid\n\n"
        "2026-03-08T07:00:02Z alert run_failed run r-9\nschedule no longer valid\n\n")


# --- log_file --------------------------------------------------------------------------------


def test_log_file_appends_entries_to_the_jobs_file_and_reopens_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    old = os.umask(0o022)  # whatever umask symbid runs under, its logs stay private
    try:
        _log_file_entries(logs)
    finally:
        os.umask(old)


def _log_file_entries(logs: Path) -> None:
    first = send("log_file", Target(), FAST, log_dir=str(logs))
    os.rename(logs / "nightly.log", logs / "nightly.log.1")  # logrotate's move
    second = send("log_file", Target(), FAST, log_dir=str(logs),
                  payload=replace(PAYLOAD, run_id="r-2", status="succeeded", output="fine"))
    third = send("log_file", Target(), FAST, log_dir=str(logs),
                 payload=replace(PAYLOAD, run_id="r-3", output="no newline at end"))

    assert first.ok and second.ok and third.ok
    assert first.reply == f"appended to {logs / 'nightly.log'}"
    assert (logs / "nightly.log.1").read_text() == (
        "2026-03-08T07:00:02Z run r-1 failed\ndisk 91% full\nsecond line\n\n")
    assert (logs / "nightly.log").read_text() == (
        "2026-03-08T07:00:02Z run r-2 succeeded\nfine\n\n"
        "2026-03-08T07:00:02Z run r-3 failed\nno newline at end\n\n")
    assert (logs / "nightly.log").stat().st_mode & 0o777 == 0o600
    assert logs.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("job", ["../x", "/etc/passwd", "a/../../b", ".."])
def test_a_job_name_that_tries_traversal_writes_nothing(tmp_path: Path, job: str) -> None:
    logs = tmp_path / "deep" / "logs"
    logs.mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*"))

    receipt = send("log_file", Target(), FAST, log_dir=str(logs),
                   payload=replace(PAYLOAD, job=job))

    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and "cannot name a log file" in receipt.error
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_a_symlink_planted_at_the_log_file_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (logs / "nightly.log").symlink_to(outside)
    (logs / "other.log").symlink_to(tmp_path / "dangling")

    receipt = send("log_file", Target(), FAST, log_dir=str(logs))
    dangling = send("log_file", Target(), FAST, log_dir=str(logs),
                    payload=replace(PAYLOAD, job="other"))

    for r in (receipt, dangling):
        assert (r.ok, r.permanent) == (False, True)
        assert r.error is not None and "is a symbolic link, which symbid does not follow" in \
            r.error
    assert outside.read_text() == "precious\n"
    assert not (tmp_path / "dangling").exists()


def test_a_fifo_or_a_hard_link_at_the_log_file_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkfifo(logs / "nightly.log")
    (tmp_path / "target").write_text("")
    os.link(tmp_path / "target", logs / "other.log")

    fifo = send("log_file", Target(), FAST, log_dir=str(logs))
    linked = send("log_file", Target(), FAST, log_dir=str(logs),
                  payload=replace(PAYLOAD, job="other"))

    assert fifo.error is not None and "is not a regular file" in fifo.error
    assert linked.error is not None and "has 2 hard links" in linked.error
    assert (tmp_path / "target").read_text() == ""


# --- custom ----------------------------------------------------------------------------------


def test_a_custom_command_gets_the_payload_on_stdin(tmp_path: Path) -> None:
    got = tmp_path / "got.json"
    program = script(tmp_path, "post", f"open({str(got)!r}, 'w').write(sys.stdin.read() + "
                                       "os.environ['SYMBID_CHANNEL'])\nprint('posted #42')")
    settings = replace(FAST, custom={"teams": CustomChannel(command=(program,))})

    receipt = send("custom:teams", Target(), settings)

    assert (receipt.channel, receipt.ok, receipt.reply) == ("custom:teams", True, "posted #42")
    text = got.read_text()
    assert text.endswith("custom:teams")
    assert json.loads(text[: -len("custom:teams")]) == PAYLOAD.to_json()


def test_a_custom_command_gets_only_its_own_environment(tmp_path: Path) -> None:
    got = tmp_path / "env.json"
    program = script(tmp_path, "env", f"import json; json.dump(dict(os.environ), "
                                      f"open({str(got)!r}, 'w'))")
    spec = CustomChannel(command=(program,), env={"TEAMS_TOKEN": "${HOOK_TOKEN}"})
    environ = {**ENV, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    receipt = router.send("custom:teams", PAYLOAD, Target(), replace(FAST, custom={
        "teams": spec}), environ, log_dir="/nonexistent")

    assert receipt.ok
    env = json.loads(got.read_text())
    env.pop("LC_CTYPE", None)  # Python's own locale coercion
    assert env == {"TEAMS_TOKEN": "hook-token-1234", "PATH": "/usr/bin:/bin",
                   "LANG": "C.UTF-8", "SYMBID_DELIVERY_ID": "3f1c-delivery",
                   "SYMBID_JOB": "nightly", "SYMBID_RUN": "r-1", "SYMBID_STATUS": "failed",
                   "SYMBID_CHANNEL": "custom:teams"}


def test_a_custom_commands_missing_variable_is_a_permanent_failure_naming_it(
        tmp_path: Path) -> None:
    spec = CustomChannel(command=("/bin/true",), env={"T": "${NOT_SET}"})
    receipt = send("custom:teams", Target(), replace(FAST, custom={"teams": spec}))
    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and receipt.error.startswith(
        "[scheduler.delivery.custom.teams] env T: ${NOT_SET} is not set")


def test_a_custom_commands_non_zero_exit_fails_with_its_stderr(tmp_path: Path) -> None:
    program = script(tmp_path, "fail", "sys.stderr.write('teams said no\\n'); sys.exit(3)")
    settings = replace(FAST, custom={"teams": CustomChannel(command=(program,))})

    receipt = send("custom:teams", Target(), settings)

    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error == f"command {program!r} exited with status 3: teams said no"


def test_a_custom_command_past_the_timeout_has_its_group_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    program = script(tmp_path, "hang", "import subprocess\n"
                     "child = subprocess.Popen(['sleep', '60'])\n"
                     f"open({str(pid_file)!r}, 'w').write(str(child.pid))\ntime.sleep(60)")
    settings = replace(FAST, webhook_timeout_seconds=1.0,
                       custom={"slow": CustomChannel(command=(program,))})

    receipt = send("custom:slow", Target(), settings)

    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error is not None and "its process group was killed" in receipt.error
    assert not alive(int(pid_file.read_text()))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs, within a second (a killed orphan is a zombie until reaped)."""
    for _ in range(20):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.05)
    return True


PLUGIN = '''
from symbid.delivery.base import DeliveryFailed
calls = []

class Recorder:
    def route(self, channel, job, run, output):
        calls.append((channel, job, run, output))

def refuse(channel, job, run, output):
    raise DeliveryFailed("pager says no", permanent=True)

class Refusing:
    route = staticmethod(refuse)

class Odd:
    def route(self, channel, job, run, output):
        return 42

class Sleepy:
    calls = 0

    def route(self, channel, job, run, output):
        import time
        Sleepy.calls += 1
        time.sleep(1.0)
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real installed distribution (a dist-info with entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    dist = site / "symbid_test_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: symbid-test-plugin\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[symbid.delivery]\nrecorder = symbid_test_plugin:Recorder\n"
        "refusing = symbid_test_plugin:Refusing\nodd = symbid_test_plugin:Odd\n"
        "sleepy = symbid_test_plugin:Sleepy\n")
    (site / "symbid_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    yield __import__("symbid_test_plugin")
    sys.modules.pop("symbid_test_plugin", None)
    router.custom._loaded.clear()
    router.custom._hung.clear()


def test_a_custom_entry_point_is_routed_to_with_the_job_and_run(plugin: Any) -> None:
    target = Target(webhook_url="https://x/", webhook_secret="${HOOK_SECRET}")
    command = DeliverySettings(custom={"recorder": CustomChannel(command=("/bin/false",))})

    assert router.problem("custom:recorder", Target(), DeliverySettings()) is None
    receipt = send("custom:recorder", target, command)  # the entry point comes first

    assert (receipt.ok, receipt.channel) == (True, "custom:recorder")
    [(channel, job, run, output)] = plugin.calls
    assert channel == "custom:recorder" and output == PAYLOAD.output
    assert job == {"id": "j-1", "name": "nightly", "delivery_config": {
        "webhook_url": "https://x/", "webhook_headers": {}, "slack_channel": None,
        "email_recipients": []}}
    assert run == {"id": "r-1", "status": "failed", "started_at": "2026-03-08T07:00:00Z",
                   "finished_at": "2026-03-08T07:00:02Z", "duration_ms": 2000, "attempt": 1,
                   "trigger": "schedule", "delivery_id": "3f1c-delivery"}


def test_a_custom_entry_points_failures_are_receipts(plugin: Any) -> None:
    refusing = send("custom:refusing", Target(), FAST)
    odd = send("custom:odd", Target(), FAST)

    assert (refusing.ok, refusing.permanent) == (False, True)
    assert refusing.error is not None and refusing.error.endswith("pager says no")
    assert odd.error is not None and "route() returned a int" in odd.error


def test_a_custom_entry_point_that_does_not_return_in_time_is_a_retryable_failure(
        plugin: Any) -> None:
    began = time.monotonic()
    receipt = send("custom:sleepy", Target(), replace(FAST, webhook_timeout_seconds=0.2))
    assert time.monotonic() - began < 0.9
    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error is not None and "route() did not return within 0.2s" in receipt.error


def test_a_hung_custom_entry_point_is_not_called_again_until_it_returns(plugin: Any) -> None:
    quick = replace(FAST, webhook_timeout_seconds=0.2)
    threads = threading.active_count()
    first = send("custom:sleepy", Target(), quick)  # hangs for 1 s
    again = [send("custom:sleepy", Target(), quick) for _ in range(5)]
    assert first.error is not None and "did not return" in first.error
    assert all(r.error is not None and "an earlier route() has not returned" in r.error
               and not r.permanent for r in again)
    assert threading.active_count() <= threads + 1  # one hung thread, not one per attempt
    assert plugin.Sleepy.calls == 1
    time.sleep(1.0)  # the hung call returns: the entry point is called again
    send("custom:sleepy", Target(), quick)
    assert plugin.Sleepy.calls == 2
