"""A small real file system for disk-full tests: a tmpfs mounted in a temporary directory
(root only; the test is skipped elsewhere), and a filler file that takes all its room.

Afterwards the tmpfs is unmounted; if something still holds it open, it is detached
lazily (its memory is freed once the holder closes) and, when the test itself passed,
the test fails naming the holders; when the test failed, its own error is what is
raised and the leftover is only warned about."""

from __future__ import annotations

import errno
import gc
import logging
import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pytest

log = logging.getLogger(__name__)


@contextmanager
def small_disk(size: str = "8m", mode: str = "0700",
               at: Optional[Path] = None) -> Iterator[Path]:
    """A tmpfs of ``size`` (on a new directory ``at``, or a temporary one), unmounted
    and its directory removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if at is not None:
        at.mkdir(mode=0o700)
    where = at if at is not None else Path(tempfile.mkdtemp(prefix="sy-small-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}",
                              "tmpfs", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    except BaseException:
        left = unmount(where)
        if left is not None:  # the test's own error is the one to see
            log.warning("%s", left)
            warnings.warn(left, stacklevel=2)
        raise
    left = unmount(where)
    if left is not None:
        pytest.fail(left)


def unmount(where: Path) -> Optional[str]:
    """Unmount the tmpfs at ``where`` and remove the directory; never raises. None when
    all is gone; otherwise what was left behind, and why."""
    plain = _umount(where) if os.path.ismount(where) else None  # (a test may unmount it)
    if plain is not None:  # busy? an unreachable handle of this process may hold it
        gc.collect()
        plain = _umount(where)
    left = None
    if plain is not None:
        holders = ", ".join(holding(where)) or "nothing found in /proc"
        lazy = _umount(where, "-l")
        left = (f"the tmpfs at {where} was still in use at the end of the test "
                f"({plain}; held by {holders}); "
                + ("detached lazily: its memory is freed only when they close" if lazy is None
                   else f"it stays mounted ({lazy})"))
    try:
        where.rmdir()
    except OSError as exc:
        left = (left + "; " if left else "") + f"cannot remove {where}: {exc}"
    return left


def _umount(where: Path, *flags: str) -> Optional[str]:
    """None when ``umount`` succeeded, else its complaint."""
    try:
        done = subprocess.run(["umount", *flags, str(where)], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"umount {' '.join(flags)}: {exc}"
    if done.returncode == 0:
        return None
    return (done.stderr.strip() or f"umount {' '.join(flags)} exited {done.returncode}")


def holding(where: Path) -> list[str]:
    """What holds ``where``: each open file, working directory or root of a process that
    lies under it, as ``pid (command): path``."""
    found = []
    inside = str(where).rstrip("/") + "/"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [proc / "cwd", proc / "root", *(proc / "fd").iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target == str(where) or target.startswith(inside):
                try:
                    name = (proc / "comm").read_text().strip()
                except OSError:
                    name = "?"
                found.append(f"{proc.name} ({name}): {target}")
    return found


def fill(directory: Path, name: str = "filler") -> Path:
    """A file in ``directory`` that takes every free block of its file system (written
    until ENOSPC); delete it to give the room back."""
    path = directory / name
    chunk = b"\0" * (64 * 1024)
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        try:  # the last partial block
            while True:
                fh.write(b"\0" * 512)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return path
