"""Child processes for runs: isolation, limits, output capture, killing.

Each run is a child process in its own session and process group, with a
clean environment, stdin from a private temporary file, a private working
directory (removed afterwards), optional user/group (supplementary groups
dropped) and rlimits. No ``preexec_fn``: the daemon is threaded, so limits are
set by a small exec wrapper (util-linux ``prlimit``, or a Python re-exec where
that is missing) and everything else by ``Popen``'s own parameters. Every fd
but 0-2 is closed in the child, so it never inherits the daemon's sockets or
database handle.

One supervisor thread watches every child: a pidfd per child (or a ``waitid``
poll where pidfds are missing) and their stdout/stderr pipes, all in one
selector. When a run's main process exits, whatever else is left in its process
group is killed before the main process is reaped (its zombie keeps the group
id from being reused), so a run never outlives itself. ``max_runtime`` sends
SIGTERM to the group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import grp
import heapq
import json
import logging
import os
import pwd
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Optional

from symbid.agentdef import Limits
from symbid.clock import Clock
from symbid.errors import SandboxError, StorageFull, is_disk_full
from symbid.identity import can_switch_groups, file_identity
from symbid.runfiles import (
    RunFile,
    make_runs_dir,
    make_state_dir,
    make_user_root,
    place_files,
    read_back,
    remove_tree,
)

log = logging.getLogger(__name__)

RUN_ID_VAR = "SYMBI_RUN_ID"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STDERR_TAIL = 8192
_READ_CHUNK = 65536
_DRAIN_SECONDS = 2.0  # after exit, how long to wait for pipes held by escaped processes
_POLL_SECONDS = 0.1  # child exit polling where pidfds are missing

_LIMIT_WRAPPER = (
    "import json,os,resource,sys\n"
    "for k,v in json.loads(sys.argv[1]).items():\n"
    " resource.setrlimit(getattr(resource,k),tuple(v))\n"
    "os.execvp(sys.argv[2],sys.argv[2:])\n"
)


@dataclass(frozen=True)
class SpawnSpec:
    """Everything needed to start one run's child process."""

    tag: str  # the run id; exported as SYMBI_RUN_ID and used to find leftovers
    argv: tuple[str, ...]
    env: Mapping[str, str]
    runs_dir: str  # the private working directory is created in here
    stdin: bytes = b""
    cwd: Optional[str] = None  # default: the private directory
    user: Optional[str] = None
    group: Optional[str] = None
    limits: Limits = field(default_factory=Limits)
    timeout: Optional[float] = None  # seconds of wall time before the group is killed
    kill_grace: float = 5.0
    # Called immediately before the child is spawned (the run's durable start marker);
    # if it raises, nothing is spawned.
    before_spawn: Optional[Callable[[], None]] = None
    # Called from the supervisor thread with each piece of stdout kept (under the cap).
    on_stdout: Optional[Callable[[bytes], None]] = None
    files: tuple[RunFile, ...] = ()  # in the private directory (see RunFile)
    # A directory kept between runs (created 0700, owned by the run's user, under
    # runs_dir), exported as SYMBI_STATE_DIR.
    state_dir: Optional[str] = None


@dataclass(frozen=True)
class ChildExit:
    tag: str
    pid: int
    exit_code: Optional[int]  # None when killed by a signal
    signal: Optional[int]
    stdout: bytes
    stdout_truncated: bool
    stderr_tail: bytes
    killed: Optional[str]  # why symbid killed it: "timeout", "shutdown", "cancel"
    duration: float  # seconds from spawn to exit (monotonic)
    files: Mapping[str, bytes] = field(default_factory=dict)  # RunFile.var -> read back


@dataclass(frozen=True)
class Spawned:
    pid: int
    pgid: int
    start_ticks: Optional[int] = None  # the process's start, in clock ticks since boot


def process_stat(pid: int) -> Optional[tuple[int, int]]:
    """``(process group, start time in clock ticks since boot)`` of a live ``pid`` from
    ``/proc/PID/stat`` (readable for any process, a non-dumpable one too), else None.
    A pid and its start time name one process: a reused pid starts later."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) "
    try:
        return int(fields[2]), int(fields[19])  # pgrp (5th field), starttime (22nd)
    except (IndexError, ValueError):
        return None


def _remove_workdir(workdir: str, uid: Optional[int], gid: Optional[int]) -> None:
    """Remove a run's directory with the run's file identity (what it left there cannot
    make the daemon remove more than the run could itself)."""
    try:
        with file_identity(uid, gid):
            remove_tree(workdir)
    except OSError as exc:
        log.warning("cannot remove the run directory %s: %s", workdir, exc)


def _no_room(what: str, directory: Optional[str], exc: OSError) -> StorageFull:
    """A run that cannot be set up for want of room: not its fault, so it waits (the
    lifecycle queues it again) instead of failing."""
    where = f" in {directory}" if directory else ""
    return StorageFull(f"storage full: cannot {what}{where} ({exc.strerror or exc}); the run "
                       "waits. Free some space there: symbid retries and recovers by itself")


def _limit_argv(limits: Limits, prlimit: Optional[str]) -> list[str]:
    pairs: dict[str, tuple[int, int]] = {}
    if limits.memory_bytes is not None:
        pairs["RLIMIT_AS"] = (limits.memory_bytes, limits.memory_bytes)
    if limits.cpu_seconds is not None:
        # The soft limit sends SIGXCPU; the hard limit a second later SIGKILL.
        pairs["RLIMIT_CPU"] = (limits.cpu_seconds, limits.cpu_seconds + 1)
    if limits.processes is not None:
        pairs["RLIMIT_NPROC"] = (limits.processes, limits.processes)
    if limits.open_files is not None:
        pairs["RLIMIT_NOFILE"] = (limits.open_files, limits.open_files)
    if not pairs:
        return []
    if prlimit is not None:
        flags = {"RLIMIT_AS": "--as", "RLIMIT_CPU": "--cpu", "RLIMIT_NPROC": "--nproc",
                 "RLIMIT_NOFILE": "--nofile"}
        return [prlimit] + [f"{flags[k]}={s}:{h}" for k, (s, h) in pairs.items()] + ["--"]
    return [sys.executable, "-S", "-c", _LIMIT_WRAPPER, json.dumps(pairs)]


@dataclass
class _Child:
    spec: SpawnSpec
    proc: subprocess.Popen[bytes]
    on_exit: Callable[[ChildExit], None]
    workdir: str
    uid: Optional[int]  # the run's file identity (None: the daemon's own)
    gid: Optional[int]
    started: float
    pidfd: Optional[int]
    out: bytearray = field(default_factory=bytearray)
    out_truncated: bool = False
    err: bytearray = field(default_factory=bytearray)
    open_pipes: set[int] = field(default_factory=set)
    status: Optional[int] = None  # wait status once reaped
    ended: float = 0.0
    killed: Optional[str] = None
    done: bool = False
    registered: bool = False  # its pipes are in the supervisor's selector

    @property
    def pid(self) -> int:
        return self.proc.pid


class Supervisor:
    """Starts run processes and watches them all from one thread."""

    def __init__(self, clock: Clock, *, use_pidfd: bool = True) -> None:
        self._clock = clock
        self._use_pidfd = use_pidfd and hasattr(os, "pidfd_open")
        self._prlimit = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
        self._lock = threading.Lock()
        self._children: dict[str, _Child] = {}
        self._incoming: list[_Child] = []
        self._commands: list[tuple[str, str]] = []  # (tag, reason) kill requests
        self._timers: list[tuple[float, int, str, str]] = []  # (due, seq, tag, action)
        self._seq = 0
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", ""))
        self._closing = False
        self._poked = False
        self._made_dirs: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="symbid-supervisor", daemon=True)
        self._thread.start()

    # --- public, any thread ----------------------------------------------------------
    def spawn(self, spec: SpawnSpec, on_exit: Callable[[ChildExit], None]) -> Spawned:
        """Start a child; ``on_exit`` is called from the supervisor thread when it is done.

        Raises :class:`SandboxError` when the process cannot be started.
        """
        uid = gid = None
        if spec.user is not None:
            try:
                pw = pwd.getpwnam(spec.user)
            except KeyError as exc:
                raise SandboxError(f"user {spec.user!r} does not exist") from exc
            uid, gid = pw.pw_uid, pw.pw_gid
        if spec.group is not None:
            try:
                gid = grp.getgrnam(spec.group).gr_gid
            except KeyError as exc:
                raise SandboxError(f"group {spec.group!r} does not exist") from exc
        try:
            if spec.runs_dir not in self._made_dirs:
                make_runs_dir(spec.runs_dir)
                self._made_dirs.add(spec.runs_dir)
            root = spec.runs_dir
            if uid is not None:  # the run user's own root, where it makes what is its
                root = make_user_root(spec.runs_dir, spec.user or str(uid), uid,
                                      gid if gid is not None else -1)
            # Everything of the run's is made with the run's own file identity: its
            # directory, state and files are its user's and group's, and nothing it
            # could have put in their way makes the daemon touch more.
            with file_identity(uid, gid):
                workdir = tempfile.mkdtemp(prefix=f"run-{spec.tag[:12]}-", dir=root)
        except OSError as exc:
            if is_disk_full(exc):
                raise _no_room("create the run's directory", spec.runs_dir, exc) from exc
            raise SandboxError(f"cannot create a working directory in {spec.runs_dir}: {exc}") \
                from exc
        env = {"PATH": DEFAULT_PATH, "HOME": workdir, "LANG": "C.UTF-8"}
        env.update(spec.env)
        try:
            with file_identity(uid, gid):
                if spec.state_dir is not None:
                    env.update(make_state_dir(spec.state_dir))
                env.update(place_files(spec.files, workdir))
                stdin = tempfile.TemporaryFile(dir=workdir)  # noqa: SIM115 - closed below
        except OSError as exc:
            _remove_workdir(workdir, uid, gid)
            if is_disk_full(exc):
                raise _no_room("write the run's files", spec.runs_dir, exc) from exc
            raise SandboxError(f"cannot prepare the run's files in {workdir}: {exc}") from exc
        env["TMPDIR"] = workdir
        env[RUN_ID_VAR] = spec.tag
        argv = _limit_argv(spec.limits, self._prlimit) + list(spec.argv)
        switching = uid is not None or gid is not None
        try:
            with stdin:
                try:
                    stdin.write(spec.stdin)
                    stdin.flush()
                except OSError as exc:
                    if is_disk_full(exc):
                        raise _no_room("write the run's input", spec.runs_dir, exc) from exc
                    raise
                stdin.seek(0)
                if spec.before_spawn is not None:
                    try:
                        spec.before_spawn()
                    except OSError as exc:
                        if is_disk_full(exc):  # names the start log's directory
                            raise _no_room("record the run's start", None, exc) from exc
                        raise SandboxError(f"cannot record the run's start: {exc}; "
                                           "check the state directory") from exc
                groups: list[int] | None = [] if switching and can_switch_groups() else None
                # The child is forked with this thread's file identity, the run's: it
                # changes into the run's directory (in the run user's own 0700 root)
                # before it drops to the run's user, and only the run may enter there.
                with file_identity(uid, gid):
                    proc = subprocess.Popen(
                        argv,
                        stdin=stdin,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        cwd=spec.cwd or workdir,
                        env=env,
                        close_fds=True,
                        start_new_session=True,
                        user=uid,
                        group=gid,
                        extra_groups=groups,
                    )
        except (SandboxError, StorageFull):
            _remove_workdir(workdir, uid, gid)
            raise
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            _remove_workdir(workdir, uid, gid)
            raise SandboxError(f"cannot start {spec.argv[0] if spec.argv else '?'}: {exc}") \
                from exc
        pidfd = None
        if self._use_pidfd:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:
                pidfd = None
        assert proc.stdout is not None and proc.stderr is not None
        for pipe in (proc.stdout, proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        child = _Child(spec=spec, proc=proc, on_exit=on_exit, workdir=workdir, uid=uid, gid=gid,
                       started=self._clock.monotonic(), pidfd=pidfd)
        with self._lock:
            self._incoming.append(child)
            self._children[spec.tag] = child
        self._poke()
        stat = process_stat(proc.pid)
        return Spawned(pid=proc.pid, pgid=proc.pid, start_ticks=stat[1] if stat else None)

    def kill(self, tag: str, reason: str) -> bool:
        """SIGTERM a run's process group now, SIGKILL after its grace. False if unknown."""
        with self._lock:
            if tag not in self._children:
                return False
            self._commands.append((tag, reason))
        self._poke()
        return True

    def kill_all(self, reason: str) -> int:
        with self._lock:
            tags = list(self._children)
            self._commands.extend((t, reason) for t in tags)
        self._poke()
        return len(tags)

    def count(self) -> int:
        with self._lock:
            return len(self._children)

    def close(self) -> None:
        """Stop watching. Children still running are killed first."""
        self.kill_all("shutdown")
        with self._lock:
            self._closing = True
        self._poke()
        self._thread.join(timeout=30)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # --- supervisor thread -----------------------------------------------------------
    def _poke(self) -> None:
        with self._lock:
            if self._poked:
                return  # the supervisor thread has not drained the last poke yet
            self._poked = True
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _at(self, delay: float, tag: str, action: str) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (self._clock.monotonic() + delay, self._seq, tag, action))

    def _loop(self) -> None:
        while True:
            try:
                if self._pass():
                    return
            except Exception:
                # One bad child must not stop every other run from completing.
                log.exception("supervisor pass failed; continuing")

    def _pass(self) -> bool:
        """One round of the supervisor loop; True when it is time to stop."""
        with self._lock:
            incoming, self._incoming = self._incoming, []
            commands, self._commands = self._commands, []
            closing = self._closing and not self._children
            self._poked = False
        if closing:
            return True
        for child in incoming:
            self._register(child)
        for tag, reason in commands:
            self._terminate(tag, reason)
        timeout = self._next_timeout()
        for key, _ in self._selector.select(timeout):
            kind, tag = key.data
            if kind == "wake":
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            target = self._children.get(tag)
            if target is None:
                continue
            if kind == "pidfd":
                self._reap(target)
            else:
                self._read(target, key.fd)
            self._maybe_finish(target)
        self._run_timers()
        self._poll_exits()
        return False

    def _next_timeout(self) -> Optional[float]:
        timeout: Optional[float] = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - self._clock.monotonic())
        needs_poll = any(c.pidfd is None and c.status is None
                         for c in list(self._children.values()))
        if needs_poll and self._children:
            timeout = _POLL_SECONDS if timeout is None else min(timeout, _POLL_SECONDS)
        return timeout

    def _register(self, child: _Child) -> None:
        assert child.proc.stdout is not None and child.proc.stderr is not None
        for pipe in (child.proc.stdout, child.proc.stderr):
            fd = pipe.fileno()
            child.open_pipes.add(fd)
            self._selector.register(fd, selectors.EVENT_READ, ("pipe", child.spec.tag))
        if child.pidfd is not None:
            self._selector.register(child.pidfd, selectors.EVENT_READ, ("pidfd", child.spec.tag))
        child.registered = True
        if child.spec.timeout is not None:
            remaining = child.spec.timeout - (self._clock.monotonic() - child.started)
            self._at(max(0.0, remaining), child.spec.tag, "timeout")

    def _read(self, child: _Child, fd: int) -> None:
        assert child.proc.stdout is not None
        try:
            data = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_pipe(child, fd)
            return
        if fd == child.proc.stdout.fileno():
            room = child.spec.limits.output_bytes - len(child.out)
            if room > 0:
                child.out += data[:room]
                if child.spec.on_stdout is not None:
                    try:
                        child.spec.on_stdout(data[:room])
                    except Exception:  # showing live output must never lose the run
                        log.exception("run %s: live output failed", child.spec.tag)
            if len(data) > room:
                child.out_truncated = True
        else:
            child.err += data
            if len(child.err) > STDERR_TAIL:
                del child.err[: len(child.err) - STDERR_TAIL]

    def _close_pipe(self, child: _Child, fd: int) -> None:
        if fd in child.open_pipes:
            child.open_pipes.discard(fd)
            self._selector.unregister(fd)

    def _killpg(self, child: _Child, sig: int) -> None:
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:  # pragma: no cover - a setuid child
            log.warning("cannot signal process group %d: %s", child.pid, exc)

    def _reap(self, child: _Child) -> None:
        if child.status is not None:
            return
        # The main process has exited but is not reaped: its zombie holds the
        # process group id, so killing the group cannot hit a stranger.
        self._killpg(child, signal.SIGKILL)
        try:
            _, status = os.waitpid(child.pid, 0)
        except ChildProcessError:
            status = 0
        child.status = status
        child.proc.returncode = os.waitstatus_to_exitcode(status)
        child.ended = self._clock.monotonic()
        if child.pidfd is not None:
            self._selector.unregister(child.pidfd)
            os.close(child.pidfd)
            child.pidfd = None
        if child.open_pipes:
            self._at(_DRAIN_SECONDS, child.spec.tag, "drain")

    def _poll_exits(self) -> None:
        """Children without a pidfd (none on this kernel, or pidfd_open failed) are polled."""
        for child in list(self._children.values()):
            if child.status is not None or child.pidfd is not None or not child.registered:
                continue
            try:
                info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
            if info is not None:
                self._reap(child)
                self._maybe_finish(child)

    def _terminate(self, tag: str, reason: str) -> None:
        child = self._children.get(tag)
        if child is None or child.status is not None:
            return
        if child.killed is None:
            child.killed = reason
        self._killpg(child, signal.SIGTERM)
        self._at(child.spec.kill_grace, tag, "kill")

    def _run_timers(self) -> None:
        now = self._clock.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, tag, action = heapq.heappop(self._timers)
            child = self._children.get(tag)
            if child is None:
                continue
            if action == "timeout":
                self._terminate(tag, "timeout")
            elif action == "kill" and child.status is None:
                self._killpg(child, signal.SIGKILL)
            elif action == "drain":
                for fd in list(child.open_pipes):
                    self._read(child, fd)
                    self._close_pipe(child, fd)
                self._maybe_finish(child)

    def _maybe_finish(self, child: _Child) -> None:
        if child.done or child.status is None or child.open_pipes:
            return
        child.done = True
        with self._lock:
            self._children.pop(child.spec.tag, None)
        for pipe in (child.proc.stdout, child.proc.stderr):
            if pipe is not None:
                pipe.close()
        try:
            with file_identity(child.uid, child.gid):
                files = read_back(child.spec.files, child.workdir)
        except OSError:  # pragma: no cover - the identity was taken at the spawn
            files = {}
        _remove_workdir(child.workdir, child.uid, child.gid)
        status = child.status
        result = ChildExit(
            tag=child.spec.tag,
            pid=child.pid,
            exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            stdout=bytes(child.out),
            stdout_truncated=child.out_truncated,
            stderr_tail=bytes(child.err),
            killed=child.killed,
            duration=child.ended - child.started,
            files=files,
        )
        try:
            child.on_exit(result)
        except Exception:
            log.exception("run %s: exit handler failed", child.spec.tag)
