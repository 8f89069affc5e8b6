"""A run's places on disk: the runs' root (0711) and the files in a run's private directory.

Below the sandbox (which spawns the run) on the import ladder: plain file-system work,
no processes.
"""

from __future__ import annotations

import os


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
