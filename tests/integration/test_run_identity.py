"""The daemon's file identity towards its runs, as packaged: a daemon that is not root
(``daemon`` here, ``symbid`` in the package) holding CAP_SETUID, CAP_SETGID and CAP_KILL as
ambient capabilities, starting runs as ``nobody``. Whatever a run leaves in its directory or
its state directory, the daemon reads, makes and removes there with the run's rights only.

Each case runs a real Supervisor in a child process started by setpriv with the unit's
capabilities (and, for comparison, as root), so these tests need root to set that up.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setting up the daemon's "
                                "identity and the run's user needs root")

REPO = Path(__file__).resolve().parents[2]
AS_CAPABILITY_DAEMON = ("setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups",
                        "--inh-caps=+setuid,+setgid,+kill",
                        "--ambient-caps=+setuid,+setgid,+kill")

DAEMON = """
import json, sys, threading
from symbid.identity import clear_ambient_capabilities, drop_supplementary_groups
from symbid.runfiles import RunFile
from symbid.sandbox import SpawnSpec, Supervisor
from symbid.sessions import empty_state, remove_state
from symbid.clock import SystemClock
clear_ambient_capabilities()
drop_supplementary_groups()
case = json.loads(sys.argv[1])
sup = Supervisor(SystemClock())
done, out = threading.Event(), {}
def finished(result):
    out.update(exit=result.exit_code, stdout=result.stdout.decode(),
               stderr=result.stderr_tail.decode(),
               files={k: v.decode() for k, v in result.files.items()})
    done.set()
files = tuple(RunFile(f["var"], f["name"], content=f["content"].encode()
                      if "content" in f else None, read_back=f.get("read_back", 0))
              for f in case.get("files", ()))
try:
    sup.spawn(SpawnSpec(tag="run-1", argv=tuple(case["argv"]), env={},
                        runs_dir=case["runs_dir"], user=case.get("user"),
                        group=case.get("group"), files=files,
                        state_dir=case.get("state_dir")), finished)
except Exception as exc:
    out["error"] = str(exc)
    done.set()
done.wait(30)
for step in case.get("after", ()):
    {"empty_state": empty_state, "remove_state": remove_state}[step](case["runs_dir"], "job-1")
sup.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module", autouse=True)
def _daemon_can_run_this_tree() -> None:
    """The user ``daemon`` must be able to run this interpreter on this tree (a checkout
    under a 0700 home cannot be: then these tests cannot run here)."""
    probe = subprocess.run([*AS_CAPABILITY_DAEMON, sys.executable, "-c", "import symbid"],
                           capture_output=True, text=True, timeout=60, cwd="/",
                           env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)})
    if probe.returncode != 0:
        pytest.skip(f"user daemon cannot run {sys.executable} on {REPO}: "
                    f"{probe.stderr.strip()[-200:]}")


@pytest.fixture
def place() -> Iterator[Path]:
    """A packaged layout in a fresh directory: the daemon's own 0700 state directory with
    its database, and the runs' root (0711) with nobody's own 0700 root in it (tmpfiles
    makes symbid-run's)."""
    daemon, nobody = pwd.getpwnam("daemon"), pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="sy-ident-", dir="/tmp"))  # tmp_path's are 0700
    try:
        base.chmod(0o711)
        state = base / "state"
        state.mkdir(mode=0o700)
        (state / "symbid.db").write_text("the jobs")
        os.chown(state, daemon.pw_uid, daemon.pw_gid)
        os.chown(state / "symbid.db", daemon.pw_uid, daemon.pw_gid)
        runs = base / "runs"
        (runs / "users" / "nobody").mkdir(parents=True)
        for d in (runs, runs / "users"):
            d.chmod(0o711)
            os.chown(d, daemon.pw_uid, daemon.pw_gid)
        (runs / "users" / "nobody").chmod(0o700)
        os.chown(runs / "users" / "nobody", nobody.pw_uid, nobody.pw_gid)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def start(case: dict[str, Any], *, prefix: tuple[str, ...] = AS_CAPABILITY_DAEMON
          ) -> dict[str, Any]:
    done = subprocess.run([*prefix, sys.executable, "-c", DAEMON, json.dumps(case)],
                          capture_output=True, text=True, timeout=60, cwd="/",
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


MOVE_AWAY = 'd="$PWD"; cd ..; mv "$d" "$d.moved"; ln -s {target} "$d"'


@pytest.mark.parametrize("daemon", ["capabilities", "root"])
def test_a_run_that_swaps_its_directory_for_a_link_cannot_make_the_daemon_empty_another(
        place: Path, daemon: str) -> None:
    victim = place / "state"
    if daemon == "root":
        os.chown(victim, 0, 0)
        os.chown(victim / "symbid.db", 0, 0)
    prefix = AS_CAPABILITY_DAEMON if daemon == "capabilities" else ()
    out = start({"argv": ["sh", "-c", MOVE_AWAY.format(target=victim)],
                 "runs_dir": str(place / "runs"), "user": "nobody"}, prefix=prefix)
    assert out["exit"] == 0, out
    assert (victim / "symbid.db").read_text() == "the jobs"
    # the link the run left was removed, not followed; its moved directory is its litter
    left = os.listdir(place / "runs" / "users" / "nobody")
    assert len(left) == 1 and left[0].endswith(".moved"), left


@pytest.mark.parametrize("after", [["empty_state"], ["remove_state"]])
def test_a_run_that_swaps_its_state_directory_for_a_link_cannot_make_the_daemon_clear_another(
        place: Path, after: list[str]) -> None:
    victim = place / "state"
    state_dir = place / "runs" / "users" / "nobody" / "state" / "job-1"
    swap = f'cd /; mv "$SYMBI_STATE_DIR" "$SYMBI_STATE_DIR.moved"; ln -s {victim} ' \
           '"$SYMBI_STATE_DIR"'
    out = start({"argv": ["sh", "-c", swap], "runs_dir": str(place / "runs"),
                 "user": "nobody", "state_dir": str(state_dir), "after": after})
    assert out["exit"] == 0, out
    assert (victim / "symbid.db").read_text() == "the jobs"
    assert state_dir.parent.joinpath("job-1.moved").is_dir()
    if after == ["remove_state"]:
        assert not os.path.lexists(state_dir)  # the link itself went


def test_a_run_with_its_own_group_gets_its_files_and_state_under_a_capability_daemon(
        place: Path) -> None:
    users = grp.getgrnam("users").gr_gid
    state_dir = place / "runs" / "users" / "nobody" / "state" / "job-1"
    probe = ('stat -c "%u %g %a" "$SYMBI_CONTEXT_FILE" "$SYMBI_STATE_DIR"; '
             'cat "$SYMBI_CONTEXT_FILE"; echo; id -G; grep -E "^Cap(Inh|Prm|Eff|Amb)" '
             '/proc/self/status')
    out = start({"argv": ["sh", "-c", probe], "runs_dir": str(place / "runs"),
                 "user": "nobody", "group": "users", "state_dir": str(state_dir),
                 "files": [{"var": "SYMBI_CONTEXT_FILE", "name": "ctx.json",
                            "content": '{"turns": []}'}]})
    assert out.get("exit") == 0, out
    lines = out["stdout"].splitlines()
    nobody = pwd.getpwnam("nobody").pw_uid
    assert lines[0] == f"{nobody} {users} 600"  # the context file, the run's own
    assert lines[1] == f"{nobody} {users} 700"  # its state directory
    assert lines[2] == '{"turns": []}'
    assert lines[3].split() == [str(users)]  # no supplementary group of the daemon's
    caps = dict(line.split(":") for line in lines[4:])
    assert {k: int(v, 16) for k, v in caps.items()} == \
        {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}


def test_a_user_root_others_can_enter_is_refused(place: Path) -> None:
    root = place / "runs" / "users" / "nobody"
    root.chmod(0o711)
    out = start({"argv": ["true"], "runs_dir": str(place / "runs"), "user": "nobody"})
    assert "is mode 0711" in out["error"] and f"chmod 0700 {root}" in out["error"]
    assert stat.S_IMODE(root.stat().st_mode) == 0o711  # told, not changed behind the back


FINDER = """
import json, pwd
from symbid.leftovers import find_run_processes
def found(**kw):
    return {t: sorted(g) for t, g in find_run_processes({"gone-leader"}, **kw).items()}
nobody = pwd.getpwnam("nobody").pw_uid
print(json.dumps([found(), found(uids={nobody}), found(uids={1})]))
"""


def test_what_is_left_of_a_run_of_another_user_whose_first_process_exited_is_found(
        ) -> None:
    env = {"PATH": os.environ["PATH"], "SYMBI_RUN_ID": "gone-leader"}
    leader = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c",
         "sleep 300 >/dev/null 2>&1 & exit 0"], env=env, start_new_session=True, cwd="/")
    try:
        assert leader.wait(timeout=10) == 0  # only its grandchild is left, in its group
        found = subprocess.run([*AS_CAPABILITY_DAEMON, sys.executable, "-c", FINDER],
                               capture_output=True, text=True, timeout=60, cwd="/",
                               env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)})
        assert found.returncode == 0, found.stderr
        anyone, run_users, others = json.loads(found.stdout)
        assert anyone == run_users == {"gone-leader": [leader.pid]}
        assert others == {}  # a user runs do not execute as: not even read
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, 9)


READ_BACK = [{"var": "SYMBI_SUMMARY_FILE", "name": "result", "read_back": 100}]


def test_a_run_cannot_have_the_daemon_read_a_file_through_the_daemons_other_groups(
        place: Path) -> None:
    victim = place / "for-users"  # group users may read it; nobody may not
    victim.mkdir(mode=0o750)
    (victim / "result").write_text("group secret")
    (victim / "result").chmod(0o640)
    os.chown(victim, 0, grp.getgrnam("users").gr_gid)
    os.chown(victim / "result", 0, grp.getgrnam("users").gr_gid)
    with_a_group = tuple("--groups=users" if a == "--clear-groups" else a
                         for a in AS_CAPABILITY_DAEMON)  # as systemd's User= gives them
    out = start({"argv": ["sh", "-c", MOVE_AWAY.format(target=victim)],
                 "runs_dir": str(place / "runs"), "user": "nobody", "files": READ_BACK},
                prefix=with_a_group)
    assert out["exit"] == 0, out
    assert out["files"] == {}


def test_a_run_cannot_have_a_root_daemon_follow_proc_links_it_may_not_follow_itself(
        place: Path) -> None:
    hidden = place / "private" / "victim"  # behind a directory only root may enter
    hidden.mkdir(parents=True)
    (place / "private").chmod(0o700)
    (hidden / "result").write_text("root's secret")
    (hidden / "result").chmod(0o644)
    holder = subprocess.Popen(["sleep", "60"], cwd=hidden)  # its cwd: a link past it
    try:
        out = start({"argv": ["sh", "-c", MOVE_AWAY.format(target=f"/proc/{holder.pid}/cwd")],
                     "runs_dir": str(place / "runs"), "user": "nobody", "files": READ_BACK},
                    prefix=())
        assert out["exit"] == 0, out
        assert out["files"] == {}
        assert (hidden / "result").read_text() == "root's secret"
    finally:
        holder.kill()
        holder.wait()
