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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from symbid.identity import owner_file_identity


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
    return root


def place_files(files: Sequence[RunFile], workdir: str, uid: Optional[int],
                gid: Optional[int]) -> dict[str, str]:
    """Write the run's files into its directory; their variables. Called under the run's
    file identity (symbid.identity), so what is created is the run user's already."""
    env: dict[str, str] = {}
    owner = (uid if uid is not None else -1, gid if gid is not None else -1)
    for f in files:
        path = os.path.join(workdir, f.name)
        env[f.var] = path
        if f.content is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(f.content)
            if owner != (-1, -1):
                os.chown(path, *owner)
    return env


def make_state_dir(state_dir: str, uid: Optional[int], gid: Optional[int]) -> dict[str, str]:
    """A job's state directory kept between runs (0700, owned by the run's user, in its
    user root: made under the run's file identity); its variable."""
    make_runs_dir(os.path.dirname(state_dir))
    try:
        os.mkdir(state_dir, 0o700)
    except FileExistsError:
        pass
    if (uid, gid) != (None, None):
        os.chown(state_dir, uid if uid is not None else -1, gid if gid is not None else -1)
    return {"SYMBI_STATE_DIR": state_dir}


def remove_tree(path: str, *, keep: bool = False) -> None:
    """Remove what is in a run's (or a job's state) directory with its owner's rights (what
    the run put there, symbid.identity), then the directory itself with its parent's
    owner's (the daemon's runs' root, or the run user's root), unless ``keep``. A missing
    directory is fine; raises :class:`OSError` when the directory stays."""
    try:
        with owner_file_identity(path):
            _remove_entries(path)
    except FileNotFoundError:
        return
    except PermissionError:  # its owner cannot reach it (a parent closed to it): as we are
        _remove_entries(path)
    if not keep:  # the directory itself, with the rights of its parent's owner
        with owner_file_identity(os.path.dirname(path)):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass


def _remove_entries(path: str) -> None:
    for entry in list(os.scandir(path)):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


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
