"""A small real file system for disk-full tests: a tmpfs mounted in a temporary directory
(root only; the test is skipped elsewhere), and a filler file that takes all its room."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pytest


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
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
        where.rmdir()


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
