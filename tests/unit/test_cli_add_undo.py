"""`symbi cron add --file` takes back what it did when the daemon refuses a schedule,
even when the daemon goes away halfway through the undo. The daemon's side of a refusal
is tested against a real daemon (tests/integration/test_cli.py); here a client whose
daemon vanishes at a chosen moment, which a real socket cannot be timed to do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from symbid.cli import cron
from symbid.dsl import load_file
from symbid.errors import EXIT_ERROR, InvalidInput, Unavailable

FILE = ('agent fresh { command: ["/bin/true"] }\n'
        'schedule a { agent: "fresh" cron: "@daily" }\n'
        'schedule b { agent: "fresh" cron: "@daily" delivery: ["stdout", "slack"] }\n')


class Daemon:
    """A client whose daemon refuses the second schedule and then, when ``vanishes``,
    answers nothing more."""

    def __init__(self, *, vanishes: bool) -> None:
        self.vanishes, self.up, self.jobs, self.agents_left = vanishes, True, [], ["fresh"]
        self.schedule = SimpleNamespace(create=self._create, delete=self._delete)
        self.agents = SimpleNamespace(delete=self._delete_agent, create=lambda **_: None)

    def _create(self, **fields: Any) -> Any:
        if self.jobs:
            self.up = not self.vanishes
            raise InvalidInput("delivery 'slack' needs a channel", field="delivery")
        self.jobs.append(fields["name"])
        return SimpleNamespace(id="j-1", name=fields["name"])

    def _reach(self) -> None:
        if not self.up:
            raise Unavailable("cannot reach symbid at /run/symbid/control.sock")

    def _delete(self, job_id: str) -> None:
        self._reach()
        self.jobs.clear()

    def _delete_agent(self, name: str) -> None:
        self._reach()
        self.agents_left.remove(name)


def _refusal(tmp_path: Path, daemon: Daemon) -> InvalidInput:
    path = tmp_path / "f.symbi"
    path.write_text(FILE)
    loaded = load_file(str(path))
    try:
        cron._add_all(daemon, loaded, list(loaded.jobs), [("fresh", None)])  # type: ignore[arg-type]
    except InvalidInput as exc:
        return exc
    raise AssertionError("the refusal was not raised")


def test_a_refusal_takes_back_the_schedules_and_agents_before_it(tmp_path: Path) -> None:
    daemon = Daemon(vanishes=False)
    exc = _refusal(tmp_path, daemon)
    assert daemon.jobs == [] and daemon.agents_left == []
    assert exc.message.startswith(f"{tmp_path / 'f.symbi'}:3:65: schedule 'b': delivery "
                                  "'slack' needs a channel; no schedule was added; a added "
                                  "before it was removed again; agent fresh removed")


def test_a_daemon_gone_during_the_undo_keeps_the_refusal_and_says_what_is_left(
        tmp_path: Path) -> None:
    daemon = Daemon(vanishes=True)
    exc = _refusal(tmp_path, daemon)
    assert exc.exit_status == EXIT_ERROR and "delivery 'slack' needs a channel" in exc.message
    assert "no schedule was added" not in exc.message
    left = exc.message.index("schedule a is left (cannot reach symbid at "
                             "/run/symbid/control.sock): remove it with `symbi cron remove a`")
    agent = exc.message.index("agent fresh could not be removed (cannot reach symbid")
    assert left < agent  # the schedule first: an agent a job uses cannot be removed
    assert "remove it with `symbi agent remove fresh`" in exc.message
