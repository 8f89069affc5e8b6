"""A Debian 12 container booted with systemd as PID 1, for the end-to-end tests on real systemd.

The root file system is built once with debootstrap and cached as a tarball outside the
repository (``$SYMBID_E2E_CACHE``, default ``/var/cache/symbid-e2e``), keyed by a hash of
what goes into it; a missing tarball is rebuilt. Each test session extracts it into a
fresh directory and boots it::

    systemd-nspawn -D ROOT --register=no --keep-unit -b --console=pipe --bind-ro=DEBS:/debs

machinectl does not work on the machines this runs on, so commands run in the container
through ``nsenter -t LEADER -a`` (LEADER: the container's PID 1, the nspawn process's
child). :meth:`Container.poweroff` powers it off and waits for nspawn to end; only if it
hangs are the processes this harness started killed, by their pids.

The container shares the host's network, so apt inside it can still reach the mirror for
a package the cached root lacks; everything a symbid .deb depends on is in it already.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = os.environ.get("SYMBID_E2E_MIRROR", "http://deb.debian.org/debian")
CACHE_DIR = Path(os.environ.get("SYMBID_E2E_CACHE", "/var/cache/symbid-e2e"))

# debootstrap installs only the base (its own dependency resolution does not handle
# virtual packages); apt in the new root adds the rest.
BASE = ("systemd", "systemd-sysv", "dbus")
# What the symbid .deb depends on (so `apt install ./symbid_*.deb` in the container needs
# no download) and what the tests use (man-db for `man symbi-cron`). procps is left out
# on purpose: a minimal system has no /bin/kill, and the units must not need it.
INCLUDE = (
    "python3", "python3-jwt", "python3-cryptography", "python3-lark", "python3-sdnotify",
    "python3-daemon", "python3-prometheus-client", "python3-waitress", "python3-dateutil",
    "man-db", "logrotate",
)

# The first tools the harness needs on the host; tools() names the missing ones.
TOOLS = ("systemd-nspawn", "debootstrap", "nsenter", "tar")

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the cached root file system ------------------------------------------------------------


def rootfs_key(include: Sequence[str] = INCLUDE) -> str:
    """What the cached tarball is built from, hashed: suite, variant and the include list."""
    text = "\n".join([SUITE, VARIANT, *BASE, "--", *sorted(include)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rootfs_tarball(include: Sequence[str] = INCLUDE) -> Path:
    """The cached root file system's tarball, built with debootstrap when missing.

    A lock file keeps two sessions from building it at once; the tarball is written
    under a temporary name and renamed, so a build that is interrupted leaves nothing
    that looks finished.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"{SUITE}-{rootfs_key(include)}.tar"
    if tarball.exists():
        return tarball
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        started = time.monotonic()
        build = Path(tempfile.mkdtemp(prefix=f"build-{SUITE}-", dir=CACHE_DIR))
        try:
            root = build / "root"
            _log(f"building the {SUITE} root file system (debootstrap, a few minutes): "
                 f"{tarball}")
            cmd = ["debootstrap", f"--variant={VARIANT}", "--include=" + ",".join(BASE),
                   SUITE, str(root), MIRROR]
            _build_step(cmd, root / "debootstrap/debootstrap.log")
            _build_step(["systemd-nspawn", "-D", str(root), "--register=no", "--keep-unit",
                         "--quiet", "--pipe", "--setenv=DEBIAN_FRONTEND=noninteractive",
                         "apt-get", "install", "-y", "-q", "--no-install-recommends",
                         *include])
            _prepare_root(root)
            partial = build / "rootfs.tar"
            subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf",
                            str(partial), "."], check=True, stdin=subprocess.DEVNULL)
            os.replace(partial, tarball)
            _log(f"built {tarball} in {time.monotonic() - started:.0f} s")
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return tarball


def _build_step(cmd: list[str], log: Optional[Path] = None) -> None:
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        detail = proc.stdout[-4000:]
        if log is not None and log.exists():
            detail += f"\n--- {log.name} ---\n" + log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit {proc.returncode}):\n{detail}")


def _prepare_root(root: Path) -> None:
    """Make the fresh root boot quickly and quietly in nspawn."""
    (root / "etc/hostname").write_text("symbid-e2e\n")
    # A fresh machine-id at each boot (systemd writes one when the file is empty).
    (root / "etc/machine-id").write_text("")
    # Downloaded .debs are not needed again; the package lists stay, so apt can resolve
    # a local .deb's dependencies offline.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    # Nothing in the container needs a login prompt on the console.
    wants = root / "etc/systemd/system/getty.target.wants"
    if wants.is_dir():
        shutil.rmtree(wants)
    (root / "etc/systemd/system/console-getty.service").symlink_to("/dev/null")


def extract_rootfs(tarball: Path, into: Path) -> None:
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(into), "-xf",
                    str(tarball)], check=True, stdin=subprocess.DEVNULL)


# --- a booted container -------------------------------------------------------------------


@dataclass
class Result:
    """What one command in the container did."""

    cmd: str
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def __str__(self) -> str:
        return (f"$ {self.cmd}\n(exit {self.rc})\n--- stdout ---\n{self.out}"
                f"--- stderr ---\n{self.err}")


class CommandFailed(AssertionError):
    pass


class Container:
    """One booted container. Use :func:`booted` (a context manager) to get one."""

    def __init__(self, workdir: Path, binds: Sequence[tuple[Path, str]] = ()) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.console_log = workdir / "console.log"
        self.binds = list(binds)
        self.nspawn: Optional[subprocess.Popen[bytes]] = None
        self.leader: Optional[int] = None

    # -- lifecycle

    def boot(self, timeout: float = 90) -> None:
        cmd = ["systemd-nspawn", "-D", str(self.root), "--register=no", "--keep-unit",
               "--boot", "--console=pipe", "--quiet", "--machine=symbid-e2e"]
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in self.binds]
        started = time.monotonic()
        with open(self.console_log, "wb") as console:
            self.nspawn = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.poweroff)
        deadline = started + timeout
        self.leader = self._find_leader(deadline)
        # Until the container's systemd has its bus, systemctl fails at once: ask again.
        while True:
            state = self.run("systemctl is-system-running --wait",
                             timeout=max(1.0, deadline - time.monotonic()))
            if state.out.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if state.out.strip() not in ("running", "degraded"):
            raise RuntimeError(f"the container did not boot:\n{state}\n"
                               f"console:\n{self.console()}")
        if state.out.strip() == "degraded":
            _log("container booted degraded:\n" + self.run("systemctl --failed").out)
        _log(f"container booted in {time.monotonic() - started:.1f} s (leader pid "
             f"{self.leader})")

    def _find_leader(self, deadline: float) -> int:
        """The container's PID 1, as seen from the host: the nspawn process's child."""
        assert self.nspawn is not None
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.nspawn.returncode}:\n"
                                   f"{self.console()}")
            for children in Path(f"/proc/{self.nspawn.pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    for pid in children.read_text().split():
                        exe = os.readlink(f"/proc/{pid}/exe")
                        if exe.endswith("/systemd"):
                            return int(pid)
            time.sleep(0.05)
        raise RuntimeError(f"no container init appeared:\n{self.console()}")

    def poweroff(self, timeout: float = 60) -> None:
        """Power the container off and wait for nspawn to end (kill it by pid if it hangs)."""
        proc = self.nspawn
        if proc is None:
            return
        self.nspawn = None
        if proc.poll() is None:
            with contextlib.suppress(Exception):
                self.run("systemctl poweroff", timeout=15, _leader=self.leader)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log(f"the container did not power off in {timeout:.0f} s; killing "
                     f"systemd-nspawn (pid {proc.pid})")
                # nspawn turns SIGTERM into a poweroff of the container; SIGKILL of the
                # container's init ends its whole PID namespace.
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    if self.leader:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self.leader, signal.SIGKILL)
                    proc.kill()
                    proc.wait(15)
        self.leader = None

    def console(self, tail: int = 4000) -> str:
        try:
            return self.console_log.read_bytes()[-tail:].decode(errors="replace")
        except OSError:
            return ""

    # -- commands

    def run(self, cmd: Union[str, Sequence[str]], *, user: Optional[str] = None,
            timeout: float = 60, input: Optional[str] = None, check: bool = False,
            env: Optional[dict[str, str]] = None, _leader: Optional[int] = None) -> Result:
        """Run ``cmd`` (a shell line, or an argv) as root, or as ``user`` through runuser,
        in the container with a clean environment."""
        leader = _leader or self.leader
        if leader is None:
            raise RuntimeError("the container is not running")
        line = cmd if isinstance(cmd, str) else shlex.join(cmd)
        variables = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "TERM": "dumb",
                     "HOME": "/root", "SYSTEMD_PAGER": "", "PAGER": "cat",
                     "NO_COLOR": "1", "DEBIAN_FRONTEND": "noninteractive"}
        variables.update(env or {})
        argv = ["nsenter", "-t", str(leader), "-a", "env", "-i",
                *(f"{k}={v}" for k, v in variables.items())]
        if user is not None:
            argv += ["runuser", "-u", user, "--"]
        argv += ["/bin/sh", "-c", line]
        shown = line if user is None else f"(as {user}) {line}"
        try:
            proc = subprocess.run(argv, input=input if input is not None else "",
                                  capture_output=True, text=True, timeout=timeout,
                                  check=False, errors="replace")
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
            result = Result(shown, -1, out, err + f"\n[timed out after {timeout:.0f} s]\n")
        else:
            result = Result(shown, proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise CommandFailed(f"command failed in the container:\n{result}")
        return result

    def ok(self, cmd: Union[str, Sequence[str]], **kw: object) -> Result:
        """``run(cmd)``, which must succeed."""
        return self.run(cmd, check=True, **kw)  # type: ignore[arg-type]

    def wait_for(self, what: str, cmd: Union[str, Sequence[str]], until: object,
                 timeout: float = 30, interval: float = 0.5) -> Result:
        """Run ``cmd`` until ``until(result)`` is true; fail naming ``what`` (with the last
        output) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.run(cmd)
            if until(result):  # type: ignore[operator]
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s; last:\n{result}")
            time.sleep(interval)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file in the container (through its root directory, as root)."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)


@contextlib.contextmanager
def booted(binds: Sequence[tuple[Path, str]] = (), *,
           workdir_parent: Optional[Path] = None) -> Iterator[Container]:
    """A container booted from a fresh copy of the cached root; powered off and removed
    afterwards (``SYMBID_E2E_KEEP=1`` keeps the directory for a look after a failure)."""
    tarball = rootfs_tarball()
    workdir = Path(tempfile.mkdtemp(prefix="symbid-e2e-", dir=workdir_parent or "/var/tmp"))
    container = Container(workdir, binds)
    try:
        started = time.monotonic()
        container.root.mkdir()
        extract_rootfs(tarball, container.root)
        _log(f"extracted {tarball.name} into {container.root} in "
             f"{time.monotonic() - started:.1f} s")
        container.boot()
        yield container
    finally:
        container.poweroff()
        if os.environ.get("SYMBID_E2E_KEEP") == "1":
            _log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
