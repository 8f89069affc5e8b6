"""`symbi cron add --file` takes back the agents it defined when the daemon refuses its
batch of schedules, even when the daemon goes away during the undo. The daemon's side of
a refusal is tested against a real daemon (tests/integration/test_cli.py); here a client
whose daemon vanishes at a chosen moment, which a real socket cannot be timed to do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from symbid.cli import cron
from symbid.dsl import load_file
from symbid.errors import EXIT_ERROR, BatchRefused, InvalidInput, SymbidError, Unavailable

FILE = ('agent fresh { command: ["/bin/true"] }\n'
        'schedule a { agent: "fresh" cron: "@daily" }\n'
        'schedule b { agent: "fresh" cron: "@daily" delivery: ["stdout", "slack"] }\n')


class Daemon:
    """A client whose daemon refuses the batch (its second schedule) and then, when
    ``vanishes``, answers nothing more."""

    def __init__(self, *, vanishes: bool) -> None:
        self.vanishes, self.up, self.jobs, self.agents_left = vanishes, True, [], ["fresh"]
        self.batches: list[list[dict[str, Any]]] = []
        self.schedule = SimpleNamespace(create_many=self._create_many)
        self.agents = SimpleNamespace(delete=self._delete_agent, create=lambda **_: None)

    def _create_many(self, bodies: list[dict[str, Any]]) -> Any:
        self.batches.append(bodies)
        self.up = not self.vanishes
        raise BatchRefused([(1, InvalidInput("delivery 'slack' needs a channel",
                                             field="delivery"))], len(bodies))

    def _reach(self) -> None:
        if not self.up:
            raise Unavailable("cannot reach symbid at /run/symbid/control.sock")

    def _delete_agent(self, name: str) -> None:
        self._reach()
        self.agents_left.remove(name)


def _refusal(tmp_path: Path, daemon: Daemon) -> SymbidError:
    path = tmp_path / "f.symbi"
    path.write_text(FILE)
    loaded = load_file(str(path))
    try:
        cron._add_all(daemon, loaded, list(loaded.jobs), [("fresh", None)])  # type: ignore[arg-type]
    except BatchRefused as exc:
        return exc
    raise AssertionError("the refusal was not raised")


def test_a_refusal_takes_back_the_agents_and_names_the_schedule_by_place_and_index(
        tmp_path: Path) -> None:
    daemon = Daemon(vanishes=False)
    exc = _refusal(tmp_path, daemon)
    assert [[b["name"] for b in batch] for batch in daemon.batches] == [["a", "b"]]
    assert daemon.agents_left == []
    assert exc.message.startswith(f"{tmp_path / 'f.symbi'}:3:65: schedule 'b': delivery "
                                  "'slack' needs a channel (element [1] of the batch)")
    assert exc.message.splitlines()[-1] == "no schedule was added; agent fresh removed"
    assert exc.field is None


def test_a_daemon_gone_during_the_undo_keeps_the_refusal_and_says_what_is_left(
        tmp_path: Path) -> None:
    daemon = Daemon(vanishes=True)
    exc = _refusal(tmp_path, daemon)
    assert exc.exit_status == EXIT_ERROR and "delivery 'slack' needs a channel" in exc.message
    assert "agent fresh could not be removed (cannot reach symbid" in exc.message
    assert "remove it with `symbi agent remove fresh`" in exc.message


def test_a_refusal_of_the_whole_request_names_the_file_and_undoes_the_agents(
        tmp_path: Path) -> None:
    daemon = Daemon(vanishes=False)

    def too_large(bodies: list[dict[str, Any]]) -> Any:
        raise SymbidError("request body is larger than 1024 bytes ([api] max_batch_bytes)")

    daemon.schedule = SimpleNamespace(create_many=too_large)
    path = tmp_path / "f.symbi"
    path.write_text(FILE)
    loaded = load_file(str(path))
    try:
        cron._add_all(daemon, loaded, list(loaded.jobs), [("fresh", None)])  # type: ignore[arg-type]
    except SymbidError as exc:
        assert exc.message == (f"{path}: request body is larger than 1024 bytes ([api] "
                               "max_batch_bytes); no schedule was added; agent fresh removed")
    else:
        raise AssertionError("the refusal was not raised")
