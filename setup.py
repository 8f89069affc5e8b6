"""Only the license lives here; see pyproject.toml for why."""

from setuptools import setup

setup(license="Apache-2.0")
