"""The small-disk helper of the disk-full tests (tests/disks.py) cleans up without hiding
anything: a tmpfs still held open fails a passing test naming the holder, and a test's
own error is never replaced by a cleanup's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import disks


def _mounted(where: Path) -> bool:
    return any(line.split()[4] == str(where)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_a_small_disk_is_unmounted_and_removed_after_a_test_that_closed_what_it_opened(
        tmp_path: Path) -> None:
    with disks.small_disk("1m", at=tmp_path / "disk") as where:
        assert _mounted(where)
        disks.fill(where).unlink()
    assert not _mounted(where) and not where.exists()


def test_a_small_disk_still_held_open_when_the_test_passed_fails_it_naming_the_holder(
        tmp_path: Path) -> None:
    where = tmp_path / "disk"
    held = []
    with pytest.raises(pytest.fail.Exception) as failed, disks.small_disk("1m", at=where):
        held.append(os.open(where / "kept", os.O_CREAT | os.O_WRONLY))
    os.close(held[0])
    message = str(failed.value)
    assert "still in use" in message and f"{os.getpid()} (" in message
    assert str(where / "kept") in message and "detached lazily" in message
    assert not _mounted(where) and not where.exists()  # lazily, but gone from the tree


def test_the_tests_own_error_is_raised_when_the_small_disk_cannot_be_cleaned_up(
        tmp_path: Path) -> None:
    where = tmp_path / "disk"
    with pytest.warns(UserWarning, match=f"cannot remove {where}"), \
            pytest.raises(ValueError, match="the test's own"), \
            disks.small_disk("1m", at=where):
        # the mount goes from under the helper, and its directory cannot be removed
        subprocess.run(["umount", str(where)], check=True)
        (where / "stray").touch()
        raise ValueError("the test's own")
    assert not _mounted(where)
