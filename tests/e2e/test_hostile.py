"""Hostile agents against a real daemon that switches users: each agent runs as a dedicated
non-root user this module creates (useradd, removed at the end), because RLIMIT_NPROC does
not bind root and because only another user shows what the daemon's files keep out.

The daemon's directory and its socket's directory are 0755 and under /tmp (which any user
may enter), so only the modes the daemon gives its own files and socket (and the operator
its config and token) stand between an agent and them. Each probe also runs once as a user
it should succeed for, so that a probe that could not have succeeded is never taken for
isolation.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_helper import Daemon, add_job, final_run, start_run

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="needs root and useradd: the agents run as users this test creates, and "
           "RLIMIT_NPROC does not bind root")

SECRET = "hostile-secret-" + secrets.token_hex(8)
NPROC = 24  # the fork bomb's limit: processes of its user


def uid_processes(uid: int) -> list[int]:
    """Pids of processes whose real, effective or saved uid is ``uid`` (as userdel counts)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if uid in (int(field) for field in line.split()[1:4]):
                            found.append(int(entry))
                        break
        except OSError:
            continue
    return found


def kill_uid_processes(uid: int) -> None:
    for pid in uid_processes(uid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Users:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.names = {"a": f"sy-hostile-a-{tag}", "b": f"sy-hostile-b-{tag}",
                      "bomb": f"sy-hostile-f-{tag}"}
        self.uids: dict[str, int] = {}
        self.gids: dict[str, int] = {}

    def create(self) -> None:
        for key, name in self.names.items():
            subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                            "--shell", "/usr/sbin/nologin", name], check=True)
            self.uids[key] = int(subprocess.run(["id", "-u", name], check=True,
                                                capture_output=True, text=True).stdout)
            self.gids[key] = int(subprocess.run(["id", "-g", name], check=True,
                                                capture_output=True, text=True).stdout)

    def remove(self) -> None:
        """Kill each user's processes, wait (10 s at most) until none is left, delete the user
        and its group (created by --user-group; there is no home to remove), and check that
        neither is left; every user is attempted, then any failure is raised."""
        failures = []
        for key, name in self.names.items():
            if key not in self.uids:
                continue  # never created
            uid = self.uids[key]
            deadline = time.monotonic() + 10
            while uid_processes(uid) and time.monotonic() < deadline:
                kill_uid_processes(uid)
                time.sleep(0.05)
            left = uid_processes(uid)
            if left:
                failures.append(f"{name}: processes {left} still alive after SIGKILL and 10 s")
            done = subprocess.run(["userdel", name], check=False, capture_output=True,
                                  text=True)
            if done.returncode != 0:
                failures.append(f"{name}: userdel exited {done.returncode}: "
                                f"{done.stderr.strip()}")
            for db in ("passwd", "group"):
                if subprocess.run(["getent", db, name], capture_output=True).returncode == 0:
                    failures.append(f"{name}: still in {db} after userdel")
        if failures:
            raise AssertionError("test users left on the host: " + "; ".join(failures))


def agents(users: Users) -> str:
    a, b, bomb = users.names["a"], users.names["b"], users.names["bomb"]
    bomb_code = (
        "import os,sys,time\n"
        "top=os.getpid()\n"
        "while True:\n"
        "  try:\n"
        "    os.fork()\n"
        "  except OSError as e:\n"
        "    if os.getpid()==top:\n"
        "      print('fork refused: '+e.strerror,file=sys.stderr);sys.exit(3)\n"
        "    time.sleep(3600);os._exit(0)\n")
    hog_code = ("import sys\nb = []\ntry:\n  while True: b.append(bytearray(16 << 20))\n"
                "except MemoryError:\n  sys.exit('memory refused at %d MiB' % (16 * len(b)))\n")
    stdin = '"/usr/bin/python3", "-c", "import sys; exec(sys.stdin.read())"'
    flood = "head -c 200000000 /dev/zero | tr '\\000' x"
    return (
        f'agent probe-a {{ command: [{stdin}], user: "{a}", '
        f'env: {{ LEAK: "${{HOSTILE_SECRET}}" }} }}\n'
        f'agent probe-b {{ command: [{stdin}], user: "{b}" }}\n'
        f'agent probe-root {{ command: [{stdin}] }}\n'
        f'agent bomb {{ command: ["/usr/bin/python3", "-c", {json.dumps(bomb_code)}], '
        f'user: "{bomb}", limits {{ processes: {NPROC} }} }}\n'
        f'agent hog {{ command: ["/usr/bin/python3", "-c", {json.dumps(hog_code)}], '
        f'user: "{bomb}", limits {{ memory: "256M" }} }}\n'
        f'agent runaway {{ command: ["/bin/sh", "-c", "sleep 600 & sleep 600 & echo up; wait"], '
        f'user: "{bomb}" }}\n'
        f'agent flood {{ command: ["/bin/sh", "-c", {json.dumps(flood)}], '
        f'user: "{bomb}", limits {{ output: "64K" }} }}\n'
        f'agent endless {{ command: ["/usr/bin/yes", "flood"], user: "{bomb}", '
        f'limits {{ output: "64K" }} }}\n'
    )


# A probe: tries each access in its input and prints one JSON object, access -> outcome.
PROBE = """
import json, os, socket, sys
out = {}
def attempt(key, f):
    try:
        f()
        out[key] = "ok"
    except OSError as e:
        out[key] = e.strerror
for path in PATHS["read"]:
    attempt("read " + path, lambda: open(path, "rb").read(1))
for path in PATHS["write"]:
    attempt("write " + path, lambda: open(path, "ab").close())
for path in PATHS["list"]:
    attempt("list " + path, lambda: os.listdir(path))
for path in PATHS["connect"]:
    def conn():
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
        finally:
            s.close()
    attempt("connect " + path, conn)
out["env"] = sorted(k for k, v in os.environ.items() if SECRET in v and k != "LEAK")
out["state"] = os.environ.get("SYMBI_STATE_DIR")
if os.environ.get("SYMBI_STATE_DIR"):
    with open(os.path.join(os.environ["SYMBI_STATE_DIR"], "note"), "w") as fh:
        fh.write("private note of " + str(os.getuid()))
print(json.dumps(out))
"""


def probe(d: Daemon, job: str, paths: dict[str, list[str]]) -> dict[str, Any]:
    script = f"PATHS = {json.dumps(paths)}\nSECRET = {SECRET!r}\n{PROBE}"
    run = final_run(d, start_run(d, job, input=script))
    assert run["status"] == "succeeded", run
    return dict(json.loads(run["output"]))


class Setup:
    def __init__(self, users: Users, d: Daemon, runs_root: Path) -> None:
        self.users, self.d, self.runs_root = users, d, runs_root


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    users = Users()
    root = Path(tempfile.mkdtemp(prefix="sy-hostile-", dir="/tmp"))
    runs_root = Path(tempfile.mkdtemp(prefix="sy-hruns-", dir="/tmp"))
    d = None
    try:
        users.create()
        os.chmod(root, 0o755)
        os.chmod(runs_root, 0o711)
        d = Daemon(root, config="max_concurrent_jobs = 20\n",
                   runs=str(runs_root / "runs"), daemon=f'log_file = "{root}/logs/symbid.json"')
        # The helper keeps the socket in its own 0700 directory; open that directory, so
        # that only the socket's own mode and group keep an agent from connecting.
        os.chmod(d.sockdir, 0o755)
        d.write_agents("hostile.symbi", agents(users))
        for path in (d.config, root / "token"):  # as the docs say: the daemon's own
            os.chmod(path, 0o600)
        d.start(env={"HOSTILE_SECRET": SECRET})
        yield Setup(users, d, runs_root)
    finally:
        try:
            if d is not None:
                d.cleanup()
            users.remove()  # raises, once all are attempted, if a user could not be removed
        finally:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(runs_root, ignore_errors=True)


def test_an_agent_cannot_read_or_write_the_daemons_database_config_token_or_socket(
    setup: Setup,
) -> None:
    d = setup.d
    add_job(d, "snoop", "probe-a", max_retries=0)
    add_job(d, "snoop-as-daemon", "probe-root", max_retries=0)
    assert d.proc is not None
    state = str(d.state)
    files = [f"{state}/symbid.db", f"{state}/symbid.db-wal", f"{state}/symbid.db-shm",
             str(d.config), str(d.root / "token"), str(d.root / "logs" / "symbid.json"),
             f"/proc/{d.proc.pid}/environ"]
    paths = {"read": files, "write": files[:-1], "list": [state],
             "connect": [d.socket]}
    for path in files[:-1]:
        assert Path(path).exists(), path
    as_daemon = probe(d, "snoop-as-daemon", paths)  # the probe can succeed
    assert all(as_daemon[f"{k} {p}"] == "ok" for k in ("read", "write") for p in paths[k]), \
        as_daemon
    assert as_daemon[f"connect {d.socket}"] == "ok" and as_daemon["env"] == []

    seen = probe(d, "snoop", paths)
    granted = {k: v for k, v in seen.items() if v == "ok"}
    assert granted == {}, seen
    assert seen["env"] == [], "the daemon's own environment leaked into the run"
    # The modes that keep it out, whatever the umask: the daemon's files are its own.
    for name in ("symbid.db", "symbid.db-wal", "symbid.db-shm"):
        st = os.stat(d.state / name)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600), name
    assert stat.S_IMODE(os.stat(d.state).st_mode) == 0o700
    # The socket: its directory lets anyone through, so its mode and group alone refuse.
    assert stat.S_IMODE(os.stat(d.sockdir).st_mode) == 0o755
    sock = os.stat(d.socket)
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o660, \
        oct(sock.st_mode)
    assert sock.st_uid == 0
    assert sock.st_gid not in os.getgrouplist(setup.users.names["a"],
                                              setup.users.gids["a"])
    assert stat.S_IMODE(os.stat(d.root / "logs" / "symbid.json").st_mode) == 0o600


def test_an_agent_cannot_read_another_users_session_state(setup: Setup) -> None:
    d = setup.d
    owner = add_job(d, "keeper", "probe-a", session_mode="shared_persistent", max_retries=0)
    probe(d, "keeper", {"read": [], "write": [], "list": [], "connect": []})
    state = setup.runs_root / "runs" / "users" / setup.users.names["a"] / "state" / owner["id"]
    note = state / "note"
    assert note.read_text().startswith("private note of "), "the state was not written"
    paths = {"read": [str(note)], "write": [str(note), str(state / "planted")],
             "list": [str(state), str(state.parent), str(state.parent.parent)],
             "connect": []}
    add_job(d, "peer-same-user", "probe-a", max_retries=0)
    same = probe(d, "peer-same-user", paths)  # the documented sharing of one user's jobs
    assert same[f"read {note}"] == "ok", same

    add_job(d, "peer", "probe-b", session_mode="shared_persistent", max_retries=0)
    other = probe(d, "peer", paths)
    granted = {k: v for k, v in other.items() if v == "ok"}
    assert granted == {}, other
    assert other["state"] is not None and setup.users.names["b"] in other["state"]
    mode = stat.S_IMODE(os.stat(state.parent.parent).st_mode)
    assert mode == 0o700, oct(mode)


def assert_daemon_fine(setup: Setup) -> None:
    d = setup.d
    assert d.proc is not None and d.proc.poll() is None
    assert d.api("GET", "/api/v1/health/scheduler")[0] == 200
    add_job(d, f"after-{secrets.token_hex(3)}", "probe-root", max_retries=0)
    log = d.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def assert_nothing_left(setup: Setup) -> None:
    uid = setup.users.uids["bomb"]
    setup.d.wait_for(lambda: uid_processes(uid) == [], timeout=20)


def test_a_fork_bomb_is_stopped_by_its_process_limit(setup: Setup) -> None:
    d = setup.d
    add_job(d, "bomb", "bomb", max_retries=0)
    run = final_run(d, start_run(d, "bomb"), timeout=60)
    assert (run["status"], run["exit_code"]) == ("failed", 3), run
    assert "fork refused: Resource temporarily unavailable" in (run["error_message"] or ""), run
    assert_nothing_left(setup)
    assert_daemon_fine(setup)


def test_a_memory_hog_is_stopped_by_its_address_space_limit(setup: Setup) -> None:
    d = setup.d
    add_job(d, "hog", "hog", max_retries=0)
    run = final_run(d, start_run(d, "hog"), timeout=60)
    assert run["status"] == "failed" and run["exit_code"] == 1, run
    held = int(re.search(r"memory refused at (\d+) MiB", run["error_message"] or "")[1])
    assert 0 < held < 256, run
    assert_nothing_left(setup)
    assert_daemon_fine(setup)


def test_a_runaway_is_killed_at_max_runtime_with_its_whole_process_group(setup: Setup) -> None:
    d = setup.d
    add_job(d, "runaway", "runaway", max_retries=0, policy={"max_runtime": "2s"})
    run_id = start_run(d, "runaway")
    uid = setup.users.uids["bomb"]
    d.wait_for(lambda: len(uid_processes(uid)) >= 3)
    groups = {os.getpgid(pid) for pid in uid_processes(uid)}
    run = final_run(d, run_id, timeout=60)
    assert run["status"] == "timed_out", run
    assert run["output"] == "up\n"
    assert_nothing_left(setup)
    for pgid in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
    assert_daemon_fine(setup)


def rss_peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def test_an_output_flood_is_capped_and_does_not_grow_the_daemon(setup: Setup) -> None:
    d = setup.d
    assert d.proc is not None
    before = rss_peak_kib(d.proc.pid)
    add_job(d, "flood", "flood", max_retries=0)
    run = final_run(d, start_run(d, "flood"), timeout=120)
    assert run["status"] == "succeeded", {k: v for k, v in run.items() if k != "output"}
    assert run["output_truncated"] is True
    assert 0 < len(run["output"].encode()) <= 64 * 1024
    assert set(run["output"]) == {"x"}
    add_job(d, "endless", "endless", max_retries=0, policy={"max_runtime": "3s"})
    run = final_run(d, start_run(d, "endless"), timeout=60)
    assert run["status"] == "timed_out" and run["output_truncated"] is True
    assert 0 < len(run["output"].encode()) <= 64 * 1024
    grown = rss_peak_kib(d.proc.pid) - before
    print(f"\nhostile: the daemon's peak RSS grew {grown} KiB over 200 MB of output and a "
          "3 s flood")
    assert grown < 64 * 1024, f"peak RSS grew {grown} KiB"
    assert_nothing_left(setup)
    assert_daemon_fine(setup)
