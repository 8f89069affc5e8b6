"""A run's places on disk: the runs' root (0711) and the files in a run's private directory.

Below the sandbox (which spawns the run) on the import ladder: plain file-system work,
no processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional


def make_runs_dir(path: str) -> None:
    """The runs' root: 0711, so that a run's user can reach its own 0700 directory in it
    (and list nothing), and so is every directory symbid creates on the way to it. An
    existing one is left as it is."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            continue
        os.chmod(directory, 0o711)  # noqa: S103 - traverse only: nothing can be listed


@dataclass(frozen=True)
class RunFile:
    """A file in the run's private directory whose path the child gets in ``var``:
    written before the spawn (``content``, mode 0600, owned by the run's user) and/or
    read back after the exit (``read_back``: at most that many bytes, in
    :attr:`ChildExit.files` when the file exists then)."""

    var: str
    name: str
    content: Optional[bytes] = None
    read_back: int = 0


USERS_DIR = "users"  # runs_dir/users/NAME: the root of the runs of user NAME


def user_root(runs_dir: str, user: Optional[str]) -> str:
    """Where the runs of ``user`` have their directories: ``runs_dir/users/NAME``, or
    ``runs_dir`` itself for runs as the daemon's own user (no user named)."""
    base = os.path.abspath(runs_dir)
    return base if user is None else os.path.join(base, USERS_DIR, user)


def make_user_root(runs_dir: str, user: str, uid: int, gid: int) -> str:
    """The root of ``user``'s runs: 0700 and owned by that user, so that the daemon makes
    a run's directories in it under the run's file identity (symbid.identity) and needs
    no CAP_CHOWN. Made (and given to the user) when the daemon may (root or CAP_CHOWN);
    otherwise it must exist: the packages make ``symbid-run``'s (symbid.tmpfiles)."""
    root = user_root(runs_dir, user)
    make_runs_dir(os.path.dirname(root))
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        try:
            os.mkdir(root, 0o700)
            os.chown(root, uid, gid)
        except PermissionError:
            with contextlib.suppress(OSError):
                os.rmdir(root)
            raise PermissionError(
                errno.EPERM, f"{root} does not exist and symbid may not give it to {user}; "
                f"create it: install -d -m 0700 -o {user} -g {gid} {root}") from None
        except FileExistsError:
            pass
        st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        raise PermissionError(errno.EPERM, f"{root} must be a directory owned by {user} "
                              f"(uid {uid}); it is owned by uid {st.st_uid}")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise PermissionError(errno.EPERM, f"{root} is mode {stat.S_IMODE(st.st_mode):04o}: "
                              f"other users could reach {user}'s runs; chmod 0700 {root}")
    return root


def user_root_owner(runs_dir: str, name: str) -> Optional[tuple[int, int]]:
    """The uid and gid that own the root of the runs of user ``name`` (None: there is
    none, or it is not a directory). Its parent is the daemon's, so no run can swap it."""
    try:
        st = os.lstat(user_root(runs_dir, name))
    except OSError:
        return None
    return (st.st_uid, st.st_gid) if stat.S_ISDIR(st.st_mode) else None


def place_files(files: Sequence[RunFile], workdir: str) -> dict[str, str]:
    """Write the run's files into its directory; their variables. Called under the run's
    file identity (symbid.identity), so what is created is the run's user's and group's."""
    env: dict[str, str] = {}
    for f in files:
        path = os.path.join(workdir, f.name)
        env[f.var] = path
        if f.content is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(f.content)
    return env


def make_state_dir(state_dir: str) -> dict[str, str]:
    """A job's state directory kept between runs (0700, in its user's root of the runs);
    its variable. Called under the run's file identity, so it is the run's."""
    make_runs_dir(os.path.dirname(state_dir))
    try:
        os.mkdir(state_dir, 0o700)
    except FileExistsError:
        pass
    return {"SYMBI_STATE_DIR": state_dir}


def remove_tree(path: str, *, keep: bool = False) -> None:
    """Remove what is in a run's (or a job's state) directory, then the directory itself
    unless ``keep``. Called under the file identity of the run that used it
    (symbid.identity): what the run left is removed with the run's rights. A symbolic link
    where the directory was (the run moved it away) is removed, never followed; a
    missing directory is fine. Raises :class:`OSError` when the directory stays."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        if not keep:
            os.unlink(path)
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for entry in list(os.scandir(fd)):
            if entry.is_dir(follow_symlinks=False):
                _rmtree_in(fd, path, entry.name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    if not keep:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)


def _rmtree_in(fd: int, path: str, name: str) -> None:
    """Remove the tree ``name`` in the directory open as ``fd`` (``path``): relative to
    the descriptor where this Python can (3.11), so a swapped ``path`` cannot redirect
    it; shutil.rmtree follows no link in the tree either way."""
    if sys.version_info >= (3, 11):
        shutil.rmtree(name, ignore_errors=True, dir_fd=fd)
    else:  # pragma: no cover - Python 3.9 and 3.10
        shutil.rmtree(os.path.join(path, name), ignore_errors=True)


def read_back(files: Sequence[RunFile], workdir: str) -> dict[str, bytes]:
    """The run's files that are read back, as the run left them: only a regular file with
    one link, never following a symbolic link and never waiting (the run may have put a
    FIFO or a device there, or a hard link to a file it should not show)."""
    out: dict[str, bytes] = {}
    for f in files:
        if f.read_back <= 0:
            continue
        try:
            fd = os.open(os.path.join(workdir, f.name),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                    out[f.var] = fh.read(f.read_back)
        except OSError:
            continue
    return out
