"""What a reload applies of a changed configuration, and what waits for the next start."""

from __future__ import annotations

from dataclasses import replace

from symbid.config import Config
from symbid.daemon import reload_plan

OLD = Config(path="/etc/symbid/symbid.toml")


def test_a_key_held_by_a_part_built_at_start_waits_and_is_not_called_applied() -> None:
    new = replace(OLD, scheduler=replace(OLD.scheduler, enable_metrics=False,
                                         kill_grace_seconds=30.0))
    applied, line, waiting = reload_plan(OLD, new)
    assert applied == OLD  # nothing of it applies now
    assert line == ("/etc/symbid/symbid.toml reloaded: at the next start: "
                    "[scheduler] enable_metrics, [scheduler] kill_grace_seconds")
    assert waiting == ["[scheduler] enable_metrics", "[scheduler] kill_grace_seconds"]


def test_applied_and_waiting_changes_are_told_apart() -> None:
    new = replace(OLD, scheduler=replace(OLD.scheduler, keep_runs=5),
                  delivery=replace(OLD.delivery, workers=8, webhook_retry_attempts=1),
                  api=replace(OLD.api, max_connections=7))
    applied, line, _ = reload_plan(OLD, new)
    assert applied.scheduler.keep_runs == 5 and applied.delivery.webhook_retry_attempts == 1
    assert applied.delivery.workers == OLD.delivery.workers and applied.api == OLD.api
    assert line == ("/etc/symbid/symbid.toml reloaded: changed [scheduler], "
                    "[scheduler.delivery]; at the next start: [api], "
                    "[scheduler.delivery] workers")
    assert reload_plan(OLD, OLD)[1] == "/etc/symbid/symbid.toml reloaded: nothing changed"
