"""Fuzzing the create and update bodies of a real daemon: never a 5xx, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbid.api.native import JOB_FIELDS
from tests.integration.daemon_helper import Daemon

AGENTS = 'agent echo { command: ["/bin/echo"] }\n'

text = st.text(max_size=40) | st.sampled_from([
    "", " ", "0 * * * *", "*/5 * * * * *", "@daily", "0 0 31 2 *", "2026-01-01T00:00:00Z",
    "9999-12-31T23:30:00", "UTC", "Europe/Berlin", "No/Such_Zone", "5m", "-1s", "echo",
    "a\ud800b", "line\nbreak", "\x1b[31m", "x" * 2000, "deadbeef", "latest", "all", "skip",
])
scalar = st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | \
    st.floats(allow_nan=True, allow_infinity=True) | text
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(text, inner, max_size=4), max_leaves=12)
keys = st.sampled_from([*JOB_FIELDS, "allow_past", "id", "status", "next_run", "bogus"])
BASE = {"name": "fuzzed", "agent_id": "echo", "cron_expr": "*/7 * * * *"}
# Random bodies, and valid bodies with a few fields made random: those reach every check.
body = st.dictionaries(keys, value, max_size=8) | st.builds(
    lambda extra: {**BASE, **extra}, st.dictionaries(keys, value, max_size=3))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("fuzz"), {"agents.symbi": AGENTS})
    d.start()
    assert d.api("POST", "/api/v1/schedule", {"name": "target", "agent_id": "echo",
                                              "cron_expr": "0 * * * *"})[0] == 201
    yield d
    d.cleanup()


def send(d: Daemon, method: str, path: str, data: Any) -> int:
    raw = json.dumps(data, allow_nan=True).encode()
    status, answer = d.api(method, path, raw=raw)
    assert status < 500, (status, answer, data)
    log = Path(d.log).read_text()
    assert "Traceback" not in log, (data, log[-3000:])
    return status


dialect_keys = st.sampled_from(["name", "cron_expression", "agent_name", "timezone",
                                "policy_ids", "one_shot", "bogus"])
DIALECT_BASE = {"name": "dfuzz", "cron_expression": "0 */7 * * *", "agent_name": "echo"}
dialect_body = st.dictionaries(dialect_keys, value, max_size=6) | st.builds(
    lambda extra: {**DIALECT_BASE, **extra}, st.dictionaries(dialect_keys, value, max_size=2))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=dialect_body)
def test_the_sdk_dialect_never_answers_5xx(daemon: Daemon, data: dict[str, Any]) -> None:
    status = send(daemon, "POST", "/symbiont/api/v1/schedules", data)
    if status == 200:
        for job in daemon.api("GET", "/symbiont/api/v1/schedules")[1]:
            if job["name"] != "target":
                assert daemon.api("DELETE", f"/symbiont/api/v1/schedules/{job['job_id']}")[0] \
                    == 200
    data.pop("name", None)
    send(daemon, "PUT", "/symbiont/api/v1/schedules/target", data)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=body)
def test_creates_never_answer_5xx(daemon: Daemon, data: dict[str, Any]) -> None:
    status = send(daemon, "POST", "/api/v1/schedule", data)
    if status == 201:  # what got through must be a job the daemon can show and plan
        name = data["name"]
        (job,) = [j for j in daemon.api("GET", "/api/v1/schedule")[1] if j["name"] == name]
        assert "error" not in job
        assert daemon.api("GET", f"/api/v1/schedule/{job['id']}/next_run?count=3")[0] == 200
        if name != "target":  # keep the daemon small
            assert daemon.api("DELETE", f"/api/v1/schedule/{job['id']}")[0] == 200


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.lists(body | value, max_size=4))
def test_batch_creates_never_answer_5xx_and_are_all_or_nothing(
    daemon: Daemon, data: list[Any],
) -> None:
    before = {j["id"] for j in daemon.api("GET", "/api/v1/schedule")[1]}
    status = send(daemon, "POST", "/api/v1/schedule", data)
    after = [j for j in daemon.api("GET", "/api/v1/schedule")[1] if j["id"] not in before]
    if status != 201:  # nothing of a refused batch was created
        assert after == []
        return
    assert [j["name"] for j in after] == sorted(e["name"] for e in data)
    for job in after:
        assert "error" not in job
        assert daemon.api("DELETE", f"/api/v1/schedule/{job['id']}")[0] == 200


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=body)
def test_updates_never_answer_5xx(daemon: Daemon, data: dict[str, Any]) -> None:
    data.pop("name", None)  # the target keeps its name, so every example finds it
    send(daemon, "PUT", "/api/v1/schedule/target", data)


def test_the_fuzzed_daemon_logged_no_traceback(daemon: Daemon) -> None:
    assert daemon.api("GET", "/api/v1/schedule")[0] == 200
    log = Path(daemon.log).read_text()
    assert "Traceback" not in log, log[-3000:]
