"""Request slots (``[llm] max_concurrent_requests``): flock'd files shared by real
processes, as the run children share them."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbid.agents import child_pythonpath
from symbid.agents.slots import SlotError, Slots, prepare, slots_dir

# Takes a slot, says "held AT" (its monotonic instant), and gives the slot back when
# a line arrives on stdin, saying "released AT" just before.
HOLDER = """
import sys, time
from symbid.agents.slots import Slots
slots = Slots(sys.argv[1], int(sys.argv[2]))
fd = slots.acquire(time.monotonic() + float(sys.argv[3]))
print("held", time.monotonic(), flush=True)
if sys.stdin.readline():
    print("released", time.monotonic(), flush=True)
    slots.release(fd)
"""


def holder(directory: str, count: int = 1, wait: float = 20.0,
           **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-S", "-c", HOLDER, directory, str(count), str(wait)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PYTHONPATH": child_pythonpath(), "PATH": os.environ.get("PATH", "")}, **popen)


def said(proc: subprocess.Popen[str], word: str) -> float:
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == word, (line, proc.stderr.read() if proc.stderr else "")
    return float(line[1])


@pytest.fixture
def slots(tmp_path: Path) -> str:
    directory = slots_dir(str(tmp_path / "runs"))
    prepare(directory, 1)
    return directory


def test_the_daemon_makes_the_slot_files_and_follows_the_count(tmp_path: Path) -> None:
    directory = slots_dir(str(tmp_path / "runs"))
    assert directory == str(tmp_path / "runs" / "llm-slots")
    prepare(directory, 3)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755
    assert sorted(os.listdir(directory)) == ["slot-0", "slot-1", "slot-2"]
    assert {stat.S_IMODE(os.stat(os.path.join(directory, n)).st_mode)
            for n in os.listdir(directory)} == {0o644}
    kept = os.stat(os.path.join(directory, "slot-0")).st_ino
    prepare(directory, 1)  # a reload lowering it
    assert os.listdir(directory) == ["slot-0"]
    assert os.stat(os.path.join(directory, "slot-0")).st_ino == kept  # a holder keeps it
    prepare(directory, 2)
    assert sorted(os.listdir(directory)) == ["slot-0", "slot-1"]


def test_a_second_process_waits_for_the_only_slot_until_the_first_releases_it(
    slots: str,
) -> None:
    first = holder(slots)
    try:
        said(first, "held")
        second = holder(slots)
        try:
            time.sleep(0.5)
            assert second.poll() is None  # still waiting: it has said nothing
            assert first.stdin is not None
            first.stdin.write("go\n")
            first.stdin.flush()
            released = said(first, "released")
            assert said(second, "held") >= released
        finally:
            second.kill()
            second.wait()
    finally:
        first.kill()
        first.wait()


def test_waiting_up_to_the_deadline_fails_naming_max_concurrent_requests(slots: str) -> None:
    first = holder(slots)
    try:
        said(first, "held")
        started = time.monotonic()
        with pytest.raises(SlotError, match=r"before the run's deadline: "
                                            r"max_concurrent_requests \(1\) requests were "
                                            "in flight"):
            Slots(slots, 1, margin=1.0).acquire(started + 1.5)  # it gives up at 0.5 s
        assert 0.45 < time.monotonic() - started < 1.5  # in time to say so
    finally:
        first.kill()
        first.wait()


def test_a_killed_holder_frees_its_slot(slots: str) -> None:
    first = holder(slots)
    said(first, "held")
    first.send_signal(signal.SIGKILL)
    first.wait()
    fd = Slots(slots, 1).acquire(time.monotonic() + 5)
    Slots.release(fd)


def test_two_slots_let_two_holders_in_and_the_third_waits(tmp_path: Path) -> None:
    directory = slots_dir(str(tmp_path / "runs"))
    prepare(directory, 2)
    procs = [holder(directory, 2) for _ in range(2)]
    try:
        for p in procs:
            said(p, "held")
        with pytest.raises(SlotError, match=r"max_concurrent_requests \(2\)"):
            Slots(directory, 2).acquire(time.monotonic() + 0.2)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_child_already_waiting_takes_a_slot_that_a_raising_reload_adds(slots: str) -> None:
    first = holder(slots)  # holds the only slot
    try:
        said(first, "held")
        waiter = holder(slots, 1, 20.0)  # started with a count of 1: it waits
        time.sleep(0.3)
        prepare(slots, 4)  # the reload raises max_concurrent_requests
        said(waiter, "held")
        waiter.kill()
        waiter.wait()
    finally:
        first.kill()
        first.wait()


def test_without_slot_files_a_request_fails_at_once_naming_the_directory(
    tmp_path: Path,
) -> None:
    with pytest.raises(SlotError, match=r"no request slots in .*max_concurrent_requests"):
        Slots(str(tmp_path / "nowhere"), 2).acquire(time.monotonic() + 30)


@pytest.fixture
def shared_root() -> Iterator[str]:
    root = tempfile.mkdtemp(prefix="symbid-slots-", dir="/tmp")
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_a_run_user_who_cannot_write_the_directory_still_takes_and_holds_a_slot(
    shared_root: str,
) -> None:
    nobody = pwd.getpwnam("nobody")
    directory = slots_dir(os.path.join(shared_root, "runs"))
    prepare(directory, 1)
    read, write = os.pipe()
    pid = os.fork()  # the interpreter is not executable by nobody here: fork, then drop
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            Slots(directory, 1).acquire(time.monotonic() + 5)
            os.write(write, b"held")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 16) == b"held"
        with pytest.raises(SlotError, match="max_concurrent_requests"):
            Slots(directory, 1).acquire(time.monotonic() + 0.2)
    finally:
        os.close(read)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
