"""Delivery through the real daemon: what a job may say about its channels when it is
defined, and (as the channels land) what reaches them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.daemon_helper import Daemon

AGENTS = 'agent echo { command: ["/bin/sh", "-c", "echo delivered-output"] }\n'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("delivery"), {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def job(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "agent_id": "echo", "cron_expr": "0 0 1 1 *", **extra}


@pytest.mark.parametrize("extra, field, words", [
    ({"delivery": ["carrier-pigeon"]}, "delivery", "unknown delivery channel 'carrier-pigeon'"),
    ({"delivery": ["stdout", "stdout"]}, "delivery", "listed twice"),
    ({"delivery": ["webhook"]}, "webhook_url", "needs webhook_url"),
    ({"delivery": ["email"]}, "email_recipients", "needs email_recipients"),
    ({"delivery": ["webhook"], "webhook_url": "http://127.0.0.1:9/x",
      "webhook_secret": "hunter2"}, "webhook_secret", "${VAR} reference"),
])
def test_a_delivery_that_cannot_work_is_refused_when_the_job_is_defined(
        daemon: Daemon, extra: dict[str, object], field: str, words: str) -> None:
    status, body = daemon.api("POST", "/api/v1/schedule", job("bad-delivery", **extra))
    assert status == 400, body
    assert body["error"]["field"] == field and words in body["error"]["message"]
    assert daemon.api("GET", "/api/v1/schedule/bad-delivery")[0] == 404  # nothing written


def test_an_update_to_an_unknown_channel_is_refused_and_changes_nothing(
        daemon: Daemon) -> None:
    status, made = daemon.api("POST", "/api/v1/schedule", job("good-delivery",
                                                              delivery=["stdout"]))
    assert status == 201, made
    status, body = daemon.api("PUT", "/api/v1/schedule/good-delivery",
                              {"delivery": ["carrier-pigeon"]})
    assert status == 400 and body["error"]["field"] == "delivery"
    assert daemon.api("GET", "/api/v1/schedule/good-delivery")[1]["delivery"] == ["stdout"]
