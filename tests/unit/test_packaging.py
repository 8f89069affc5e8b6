"""The package builds quietly with new setuptools and still with Debian 12's 66."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_license_is_declared_in_the_form_both_setuptools_take_without_warnings() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # a TOML table warns on setuptools >= 77, an SPDX string fails on 66, and license
    # classifiers warn on >= 77: the license comes from setup.py
    assert "license" not in project and "license" in project["dynamic"]
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    assert 'setup(license="Apache-2.0")' in (ROOT / "setup.py").read_text()
