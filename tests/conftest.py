from __future__ import annotations

import os
import sys

# Make `tests.fakes` importable whichever rootdir pytest picks.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


import pytest


@pytest.fixture
def h(tmp_path: os.PathLike[str]) -> object:
    """The scheduling loop on a real store in tmp_path, with a fake clock (tests/harness.py)."""
    from pathlib import Path

    from tests.harness import Harness

    return Harness(Path(tmp_path))
