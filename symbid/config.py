"""Daemon configuration.

``[scheduler]`` carries the seed guide's keys with the seed's defaults, plus the
knobs symbid adds (each documented in symbid.toml(5)).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from symbid.errors import InvalidInput


@dataclass(frozen=True)
class SchedulerConfig:
    # The seed's CronSchedulerConfig, with its defaults.
    tick_interval_seconds: float = 1.0  # caps the loop's sleep; not a poll interval
    max_jitter_seconds: float = 0.0
    max_concurrent_jobs: int = 10
    enable_metrics: bool = True
    default_max_retries: int = 3
    shutdown_timeout_seconds: float = 30.0
    # symbid's additions.
    misfire_grace_seconds: float = 60.0  # a slot later than this is "missed" (catch-up applies)
    retry_backoff_seconds: float = 30.0  # first retry delay; doubles per attempt
    retry_backoff_max_seconds: float = 3600.0
    keep_runs: int = 1000  # run records kept per job
    kill_grace_seconds: float = 5.0  # SIGTERM -> SIGKILL grace for a run's process group


_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def secret_refs(value: str) -> list[str]:
    """The ``${NAME}`` references in a value, in order."""
    return _REF.findall(value)


def resolve_refs(value: str, environ: Mapping[str, str], *, what: str) -> str:
    """Replace each ``${NAME}`` with the daemon's environment variable NAME.

    Done only at the moment a value is used; raises :class:`InvalidInput` naming
    the variable when it is not set.
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in environ:
            raise InvalidInput(
                f"{what}: ${{{name}}} is not set in symbid's environment "
                "(set it in the service's Environment= or EnvironmentFile=)",
                field=what,
            )
        return environ[name]

    return _REF.sub(sub, value)
