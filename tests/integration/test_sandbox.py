"""Run isolation with real child processes: environment, fds, limits, output, killing."""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbid.agentdef import Limits
from symbid.clock import SystemClock
from symbid.errors import SandboxError, StorageFull
from symbid.leftovers import find_run_processes, kill_process_groups
from symbid.sandbox import ChildExit, SpawnSpec, Supervisor, process_stat

WAIT = 20.0  # generous bound for anything that should take milliseconds


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(SystemClock())
    yield sup
    sup.close()


class Result:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.exit: ChildExit | None = None

    def __call__(self, child: ChildExit) -> None:
        self.exit = child
        self.event.set()

    def wait(self, timeout: float = WAIT) -> ChildExit:
        assert self.event.wait(timeout), "the child's exit was never reported"
        assert self.exit is not None
        return self.exit


def run(sup: Supervisor, tmp_path: Path, argv: list[str], **kw: Any) -> ChildExit:
    done = Result()
    spec = SpawnSpec(tag=kw.pop("tag", "run-1"), argv=tuple(argv), env=kw.pop("env", {}),
                     runs_dir=str(tmp_path / "runs"), **kw)
    sup.spawn(spec, done)
    return done.wait()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_a_child_gets_a_clean_environment(supervisor: Supervisor, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAEMON_SECRET", "must-not-leak")
    out = run(supervisor, tmp_path, ["env"], env={"AGENT_VAR": "x"}, tag="clean-env")
    env = dict(line.split("=", 1) for line in out.stdout.decode().splitlines())
    assert "DAEMON_SECRET" not in env
    assert env["AGENT_VAR"] == "x"
    assert env["SYMBI_RUN_ID"] == "clean-env"
    assert env["HOME"] == env["TMPDIR"]
    assert set(env) == {"PATH", "HOME", "LANG", "TMPDIR", "SYMBI_RUN_ID", "AGENT_VAR"}


def test_a_child_inherits_no_sockets_or_database_handles(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "s.sock"))
    listener.listen()
    db = sqlite3.connect(str(tmp_path / "x.db"))
    db.execute("CREATE TABLE t (x)")
    try:
        probe = ("import os\n"
                 "fds = []\n"
                 "for fd in range(3, 4096):\n"
                 "    try:\n"
                 "        os.fstat(fd)\n"
                 "        fds.append(fd)\n"
                 "    except OSError:\n"
                 "        pass\n"
                 "print(fds)\n")
        out = run(supervisor, tmp_path, [sys.executable, "-c", probe])
        assert out.stdout.decode().strip() == "[]"
    finally:
        listener.close()
        db.close()


def test_input_arrives_on_stdin_and_output_is_captured(supervisor: Supervisor,
                                                       tmp_path: Path) -> None:
    big = "line of input\n" * 20000  # larger than a pipe buffer
    out = run(supervisor, tmp_path, ["cat"], stdin=big.encode())
    assert out.stdout.decode() == big
    assert out.exit_code == 0 and out.signal is None and not out.stdout_truncated


def test_output_beyond_the_cap_is_dropped_and_marked(supervisor: Supervisor,
                                                     tmp_path: Path) -> None:
    out = run(supervisor, tmp_path, ["head", "-c", "3000000", "/dev/zero"],
              limits=Limits(output_bytes=1024 * 1024))
    assert len(out.stdout) == 1024 * 1024
    assert out.stdout_truncated
    assert out.exit_code == 0


def test_exit_status_and_signal_are_decoded(supervisor: Supervisor, tmp_path: Path) -> None:
    failed = run(supervisor, tmp_path, ["sh", "-c", "echo oops >&2; exit 3"], tag="a")
    assert (failed.exit_code, failed.signal) == (3, None)
    assert failed.stderr_tail.strip() == b"oops"
    killed = run(supervisor, tmp_path, ["sh", "-c", "kill -KILL $$"], tag="b")
    assert (killed.exit_code, killed.signal) == (None, 9)


@pytest.mark.parametrize(("err", "raised"), [(errno.ENOSPC, StorageFull),
                                             (errno.EACCES, SandboxError)])
def test_a_start_that_cannot_be_recorded_spawns_nothing_and_a_full_disk_says_so(
    supervisor: Supervisor, tmp_path: Path, err: int, raised: type[Exception]
) -> None:
    def mark() -> None:
        raise OSError(err, os.strerror(err))

    marker = tmp_path / "spawned"
    spec = SpawnSpec(tag="r-full", argv=("sh", "-c", f"touch {marker}"), env={},
                     runs_dir=str(tmp_path / "runs"), before_spawn=mark)
    with pytest.raises(raised) as refused:
        supervisor.spawn(spec, Result())
    assert type(refused.value) is raised  # a full disk is storage_full, not spawn_failed
    assert "record" in str(refused.value) and "start" in str(refused.value)
    time.sleep(0.2)
    assert not marker.exists()
    assert list((tmp_path / "runs").iterdir()) == []  # its directory went with it


def test_a_run_that_cannot_be_set_up_for_want_of_room_waits_and_leaves_nothing(
        supervisor: Supervisor, tmp_path: Path) -> None:
    from tests.disks import fill, small_disk

    with small_disk("1m", mode="0711") as disk:
        runs = disk / "runs"
        filler = fill(disk)
        spec = SpawnSpec(tag="r-room", argv=("cat",), env={}, runs_dir=str(runs),
                         stdin=b"x" * 200_000)
        with pytest.raises(StorageFull) as refused:
            supervisor.spawn(spec, Result())
        assert str(runs) in str(refused.value) and "waits" in str(refused.value)
        assert [p.name for p in runs.iterdir()] == []
        filler.unlink()  # room again: the same run starts
        done = Result()
        supervisor.spawn(spec, done)
        assert len(done.wait().stdout) == 200_000


def test_each_run_has_a_private_working_directory_removed_afterwards(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    out = run(supervisor, tmp_path, ["sh", "-c", "pwd; touch made-here; ls -ld ."])
    lines = out.stdout.decode().splitlines()
    workdir = lines[0]
    assert workdir.startswith(str(tmp_path / "runs"))
    assert lines[1].startswith("drwx------")
    assert not os.path.exists(workdir)


def test_a_configured_working_directory_is_used_and_kept(supervisor: Supervisor,
                                                         tmp_path: Path) -> None:
    keep = tmp_path / "work"
    keep.mkdir()
    out = run(supervisor, tmp_path, ["pwd"], cwd=str(keep))
    assert out.stdout.decode().strip() == str(keep)
    assert keep.exists()


def test_max_runtime_kills_the_whole_process_group(supervisor: Supervisor,
                                                   tmp_path: Path) -> None:
    out = run(supervisor, tmp_path,
              ["sh", "-c", "sleep 300 & echo $!; sleep 300"], timeout=0.5, kill_grace=1.0)
    assert out.killed == "timeout"
    assert out.signal == 15
    grandchild = int(out.stdout.decode().split()[0])
    assert wait_gone(grandchild)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(supervisor: Supervisor,
                                                                tmp_path: Path) -> None:
    out = run(supervisor, tmp_path, ["sh", "-c", "trap '' TERM; sleep 300"],
              timeout=0.3, kill_grace=0.5)
    assert out.killed == "timeout"
    assert out.signal == 9


def test_processes_left_behind_are_killed_when_the_run_ends(supervisor: Supervisor,
                                                            tmp_path: Path) -> None:
    out = run(supervisor, tmp_path, ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"])
    assert out.exit_code == 0
    assert wait_gone(int(out.stdout.decode()))


def test_a_run_finishes_even_when_an_escaped_process_holds_its_output(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    started = time.monotonic()
    out = run(supervisor, tmp_path, ["sh", "-c", "setsid sleep 4 & echo hi"])
    assert out.stdout.startswith(b"hi")
    assert time.monotonic() - started < 4


def test_rlimits_are_applied(supervisor: Supervisor, tmp_path: Path) -> None:
    probe = ("import resource as r\n"
             "for k in ('NOFILE', 'AS', 'CPU', 'NPROC'):\n"
             "    print(*r.getrlimit(getattr(r, 'RLIMIT_' + k)))\n")
    out = run(supervisor, tmp_path, [sys.executable, "-S", "-c", probe],
              limits=Limits(open_files=64, memory_bytes=512 * 1024 * 1024, cpu_seconds=60,
                            processes=128))
    assert out.stdout.decode().splitlines() == [
        "64 64", f"{512 * 1024 * 1024} {512 * 1024 * 1024}", "60 61", "128 128",
    ]


def test_a_cpu_time_limit_stops_a_busy_child(supervisor: Supervisor, tmp_path: Path) -> None:
    out = run(supervisor, tmp_path, ["sh", "-c", "while :; do :; done"],
              limits=Limits(cpu_seconds=1))
    assert out.signal in (24, 9)  # SIGXCPU at the soft limit, SIGKILL at the hard one


def test_rlimits_without_prlimit_use_the_python_wrapper(tmp_path: Path) -> None:
    sup = Supervisor(SystemClock())
    sup._prlimit = None  # as on a system without util-linux's prlimit
    try:
        out = run(sup, tmp_path, ["sh", "-c", "ulimit -n"], limits=Limits(open_files=77))
        assert out.stdout.decode().strip() == "77"
    finally:
        sup.close()


def test_a_missing_command_is_a_clear_error(supervisor: Supervisor, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="cannot start /no/such/agent"):
        supervisor.spawn(SpawnSpec(tag="x", argv=("/no/such/agent",), env={},
                                   runs_dir=str(tmp_path / "runs")), Result())
    assert os.listdir(tmp_path / "runs") == []  # its working directory was removed


def test_an_unknown_user_is_a_clear_error(supervisor: Supervisor, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="user 'no-such-user-x' does not exist"):
        supervisor.spawn(SpawnSpec(tag="x", argv=("true",), env={}, user="no-such-user-x",
                                   runs_dir=str(tmp_path / "runs")), Result())


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_a_run_can_drop_to_another_user_without_supplementary_groups(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    reachable = Path(tempfile.mkdtemp(prefix="sy-runs-", dir="/tmp"))  # tmp_path's are 0700
    os.chmod(reachable, 0o711)
    try:
        out = run(supervisor, reachable, ["sh", "-c", "id -u; id -g; id -G; pwd; touch ok"],
                  user="nobody")
        uid, gid, groups, cwd = out.stdout.decode().splitlines()
        assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
        assert groups.split() == [str(nobody.pw_gid)]
        assert out.exit_code == 0  # it could write in its private directory
        # made in nobody's own root of the runs, by nobody's file identity, and gone after
        root = reachable / "runs" / "users" / "nobody"
        assert Path(cwd).parent == root
        assert (root.stat().st_uid, stat.S_IMODE(root.stat().st_mode)) == (nobody.pw_uid,
                                                                             0o700)
        assert not Path(cwd).exists()
    finally:
        shutil.rmtree(reachable, ignore_errors=True)


def test_a_run_user_root_owned_by_someone_else_is_refused(supervisor: Supervisor,
                                                            tmp_path: Path) -> None:
    root = tmp_path / "runs" / "users" / "nobody"
    root.mkdir(parents=True)  # ours, not nobody's: a run must not write into it as nobody
    with pytest.raises(SandboxError, match="must be a directory owned by nobody"):
        supervisor.spawn(SpawnSpec(tag="x", argv=("true",), env={}, user="nobody",
                                   runs_dir=str(tmp_path / "runs")), Result())


def test_exits_are_seen_without_pidfds(tmp_path: Path) -> None:
    sup = Supervisor(SystemClock(), use_pidfd=False)
    try:
        out = run(sup, tmp_path, ["sh", "-c", "sleep 0.2; exit 4"])
        assert out.exit_code == 4
    finally:
        sup.close()


def test_many_children_at_once_are_all_reported(supervisor: Supervisor, tmp_path: Path) -> None:
    results = []
    for i in range(100):
        done = Result()
        supervisor.spawn(SpawnSpec(tag=f"many-{i}", argv=("sh", "-c", f"echo {i}"), env={},
                                   runs_dir=str(tmp_path / "runs")), done)
        results.append(done)
    assert [r.wait().stdout.decode().strip() for r in results] == [str(i) for i in range(100)]
    assert supervisor.count() == 0


def test_kill_terminates_a_running_child(supervisor: Supervisor, tmp_path: Path) -> None:
    done = Result()
    supervisor.spawn(SpawnSpec(tag="victim", argv=("sleep", "300"), env={}, kill_grace=1,
                               runs_dir=str(tmp_path / "runs")), done)
    assert supervisor.kill("victim", "cancel")
    assert done.wait().killed == "cancel"
    assert not supervisor.kill("victim", "cancel")


def test_leftover_processes_of_a_run_are_found_by_their_run_id(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "SYMBI_RUN_ID": "leftover-run"}
    proc = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"], env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        found: dict[str, set[int]] = {}
        while time.monotonic() < deadline:
            found = find_run_processes({"leftover-run", "other-run"})
            if found:
                break
            time.sleep(0.02)
        assert found == {"leftover-run": {proc.pid}}
        kill_process_groups(found["leftover-run"], grace=2)
        assert proc.wait(timeout=5) == -15
        assert find_run_processes({"leftover-run"}) == {}
    finally:
        if proc.poll() is None:
            proc.kill()


UNDUMPABLE_SLEEPER = (
    "import ctypes, sys, time\n"
    "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"  # PR_SET_DUMPABLE 0, as the llm child does
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)
FINDER = (
    "import json, sys\n"
    "from symbid.leftovers import find_run_processes, recorded_groups\n"
    "from symbid.sandbox import process_stat\n"
    "pid, started = int(sys.argv[1]), int(sys.argv[2])\n"
    "ticks = process_stat(pid)[1]\n"
    "def found(*record):\n"
    "    return sorted(recorded_groups([('llm-run', *record)]).get('llm-run', ()))\n"
    "print(json.dumps([sorted(find_run_processes({'llm-run'}).get('llm-run', ())),\n"
    "                  found(pid, pid, ticks, None), found(pid, pid, None, started),\n"
    "                  found(pid, pid, ticks + 1, started), found(pid, pid + 1, ticks, None),\n"
    "                  found(pid, pid, None, started - 60_000)]))\n"
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run both sides as nobody")
def test_a_non_dumpable_leftover_is_found_by_its_recorded_pid_by_a_daemon_that_is_not_root(
        tmp_path: Path) -> None:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {"PATH": os.environ["PATH"], "SYMBI_RUN_ID": "llm-run",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    started = int(time.time() * 1000)
    proc = subprocess.Popen([*as_nobody, sys.executable, "-c", UNDUMPABLE_SLEEPER], env=env,
                            stdout=subprocess.PIPE, start_new_session=True, cwd="/")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        found = subprocess.run([*as_nobody, sys.executable, "-c", FINDER, str(proc.pid),
                                str(started)], env=dict(env, SYMBI_RUN_ID="finder"),
                               capture_output=True, text=True, timeout=30, cwd="/")
        assert found.returncode == 0, found.stderr
        by_environ, by_ticks, by_time, other_ticks, other_group, too_early = \
            json.loads(found.stdout)
        assert by_environ == []  # its environ is closed to a same-uid, non-root reader
        assert by_ticks == [proc.pid] and by_time == [proc.pid]
        # a reused pid (another start tick, another group, another start time) is not taken
        assert other_ticks == [] and other_group == [] and too_early == []
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_a_child_whose_pidfd_cannot_be_opened_is_still_reaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(pid: int, flags: int = 0) -> int:
        raise PermissionError(1, "Operation not permitted")  # as under an old seccomp profile

    sup = Supervisor(SystemClock())
    monkeypatch.setattr(os, "pidfd_open", refuse)
    try:
        out = run(sup, tmp_path, ["sh", "-c", "echo ok; exit 5"])
        assert (out.stdout, out.exit_code) == (b"ok\n", 5)
        assert sup.count() == 0
    finally:
        sup.close()


def test_quick_children_are_all_reported_without_pidfds(tmp_path: Path) -> None:
    sup = Supervisor(SystemClock(), use_pidfd=False)
    try:
        results = []
        for i in range(60):
            done = Result()
            sup.spawn(SpawnSpec(tag=f"quick-{i}", argv=("echo", str(i)), env={},
                                runs_dir=str(tmp_path / "runs")), done)
            results.append(done)
            time.sleep(0.002)
        assert [r.wait().stdout.decode().strip() for r in results] == \
            [str(i) for i in range(60)]
    finally:
        sup.close()


def test_start_up_recovery_terminates_a_leftover_found_only_by_its_recorded_pid(
        tmp_path: Path) -> None:
    from symbid.model import RunStatus
    from tests.harness import Harness

    h = Harness(tmp_path)
    h.launcher.behaviour = lambda job, run: None
    h.add("hourly", cron="0 * * * *")
    h.run_until("2026-03-01T01:00:00Z")
    (run,) = h.history("hourly")
    assert run.status is RunStatus.RUNNING
    # its process carries no SYMBI_RUN_ID the daemon can read: only the record names it
    proc = subprocess.Popen(["sleep", "300"], env={"PATH": os.environ["PATH"]},
                            start_new_session=True)
    try:
        with h.store._write() as conn:
            conn.execute("UPDATE runs SET pid = ?, pgid = ?, pid_start = ? WHERE id = ?",
                         (proc.pid, proc.pid, process_stat(proc.pid)[1], run.id))
        report = h.restart()
        assert report.killed_groups == 1
        assert proc.wait(timeout=10) == -15
        assert h.store.get_run(run.id).status is RunStatus.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
