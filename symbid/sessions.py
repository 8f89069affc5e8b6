"""Session contexts per ``session_mode`` (DESIGN §6 steps 2 and 6): what a run gets, what
it leaves.

- ``ephemeral_with_summary`` (default): a fresh context plus the previous run's summary.
- ``shared_persistent``: the history of the job's runs (bounded by a byte budget: the
  oldest turns are dropped, and ``history_dropped`` counts them; an llm agent's turns
  hold its runs' messages, within its ``max_context_bytes``) and a private state
  directory, ``<runs_dir>/state/<job id>``, kept between runs until the job is deleted
  or its context cleared.
- ``fully_ephemeral``: nothing is carried over.

A command agent sees its context as JSON in ``SYMBI_CONTEXT_FILE`` and may write its
own summary to ``SYMBI_SUMMARY_FILE`` (at most :data:`SUMMARY_FILE_CAP` bytes are kept);
without one, the summary is the last :data:`OUTPUT_SUMMARY_CAP` bytes of its output.
The context a run leaves is stored with the run's final state, in one transaction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from symbid.identity import file_identity
from symbid.model import SessionMode, format_instant
from symbid.records import ContextLeft, SessionContext, Turn
from symbid.runfiles import USERS_DIR, remove_tree, user_root, user_root_owner
from symbid.text import mask

log = logging.getLogger(__name__)

DEFAULT_HISTORY_BYTES = 256 * 1024  # a shared history's budget (its JSON turns)
SUMMARY_FILE_CAP = 4096  # bytes of SYMBI_SUMMARY_FILE kept as the summary
OUTPUT_SUMMARY_CAP = 1024  # bytes of the output's tail kept when no summary file is written
TURN_INPUT_CAP = 4096  # bytes of a run's input kept in its turn

CONTEXT_VAR = "SYMBI_CONTEXT_FILE"
SUMMARY_VAR = "SYMBI_SUMMARY_FILE"
STATE_VAR = "SYMBI_STATE_DIR"
CONTEXT_NAME = "symbi-context.json"
SUMMARY_NAME = "symbi-summary"


def state_dir(runs_dir: str, job_id: str, user: Optional[str] = None) -> str:
    """The private state directory of a shared_persistent job whose runs execute as
    ``user`` (None: the daemon's own), in that user's root of the runs."""
    return os.path.join(user_root(runs_dir, user), "state", job_id)


def state_dirs(runs_dir: str, job_id: str) -> list[tuple[str, Optional[int], Optional[int]]]:
    """The job's state directories that exist, whichever user its runs executed as, each
    with the file identity to reach it by: that of the user whose root it is in (the
    owner of ``users/NAME``, which no run can swap), None for the daemon's own."""
    roots: list[tuple[Optional[str], Optional[tuple[int, int]]]] = [(None, None)]
    try:
        roots += [(e.name, user_root_owner(runs_dir, e.name))
                  for e in os.scandir(os.path.join(os.path.abspath(runs_dir), USERS_DIR))
                  if e.is_dir(follow_symlinks=False)]
    except OSError:
        pass
    out: list[tuple[str, Optional[int], Optional[int]]] = []
    for user, owner in roots:
        if user is not None and owner is None:
            continue
        uid, gid = owner if owner is not None else (None, None)
        path = state_dir(runs_dir, job_id, user)
        try:
            with file_identity(uid, gid):
                if os.path.isdir(path):
                    out.append((path, uid, gid))
        except OSError as exc:
            log.warning("cannot look for the state directory %s: %s", path, exc)
    return out


def remove_state(runs_dir: str, job_id: str) -> None:
    """Remove a job's state directories (deleted job); none is fine."""
    _clear_state(runs_dir, job_id, keep=False)


def empty_state(runs_dir: str, job_id: str) -> None:
    """Empty a job's state directories (context cleared), keeping the directories."""
    _clear_state(runs_dir, job_id, keep=True)


def _clear_state(runs_dir: str, job_id: str, *, keep: bool) -> None:
    for path, uid, gid in state_dirs(runs_dir, job_id):
        try:
            with file_identity(uid, gid):  # with the rights of the runs that used it
                remove_tree(path, keep=keep)
        except OSError as exc:
            log.warning("cannot %s the state directory %s: %s",
                        "empty" if keep else "remove", path, exc)


def _cut_tail(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", "ignore")


def _cut_head(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def summarize(written: Optional[bytes], output: Optional[str], secrets: list[str]) -> \
        Optional[str]:
    """A run's summary: what it wrote to its summary file (capped, masked), else the
    last bytes of its (already masked) output; None when both are empty."""
    if written is not None and written.strip():
        text = written[:SUMMARY_FILE_CAP].decode("utf-8", "replace").strip()
        return mask(text, secrets, cut_end=len(written) >= SUMMARY_FILE_CAP)
    if output and output.strip():
        return _cut_tail(output.rstrip("\n"), OUTPUT_SUMMARY_CAP)
    return None


def turn_size(turn: Turn) -> int:
    return len(json.dumps(turn.to_dict(), ensure_ascii=False).encode())


def trim(history: tuple[Turn, ...], budget: int) -> tuple[tuple[Turn, ...], int]:
    """The newest turns that fit in ``budget`` bytes and the number dropped (oldest
    first). The newest turn is always kept."""
    total = 0
    keep = 0
    for turn in reversed(history):
        size = turn_size(turn)
        if keep and total + size > budget:
            break
        total += size
        keep += 1
    return history[len(history) - keep:], len(history) - keep


@dataclass
class Session:
    """One job's context while a run (or a heartbeat wake-up) goes on."""

    job_id: str
    mode: SessionMode
    summary: Optional[str] = None
    history: tuple[Turn, ...] = ()
    dropped: int = 0
    budget: int = DEFAULT_HISTORY_BYTES
    generation: int = 0  # of the stored context it started from
    based_on: Optional[str] = None  # the run that left the stored context it started from
    new_turns: tuple[Turn, ...] = ()  # the turns this run (or wake-up) added

    @classmethod
    def open(cls, job_id: str, mode: SessionMode, stored: Optional[SessionContext],
             budget: int = DEFAULT_HISTORY_BYTES) -> Session:
        """What a run of a job in ``mode`` starts from, given the stored context."""
        if stored is None:
            return cls(job_id, mode, budget=budget)
        base = stored.run_id
        if mode is SessionMode.FULLY_EPHEMERAL:
            return cls(job_id, mode, budget=budget, generation=stored.generation, based_on=base)
        if mode is SessionMode.SHARED_PERSISTENT and \
                stored.mode is SessionMode.SHARED_PERSISTENT:
            history, dropped = trim(stored.history, budget)
            return cls(job_id, mode, stored.summary, history, stored.dropped + dropped, budget,
                       stored.generation, base)
        return cls(job_id, mode, stored.summary, budget=budget, generation=stored.generation,
                   based_on=base)

    def as_mode(self, mode: SessionMode) -> Session:
        """The same context seen in another mode (a heartbeat's ``context_mode``)."""
        if mode is SessionMode.FULLY_EPHEMERAL:
            return Session(self.job_id, mode, budget=self.budget, generation=self.generation,
                           based_on=self.based_on)
        if mode is SessionMode.SHARED_PERSISTENT:
            return dataclasses.replace(self, mode=mode)
        return Session(self.job_id, mode, self.summary, budget=self.budget,
                       generation=self.generation, based_on=self.based_on)

    @property
    def shared(self) -> bool:
        return self.mode is SessionMode.SHARED_PERSISTENT

    def view(self) -> dict[str, Any]:
        """The JSON a command agent finds in SYMBI_CONTEXT_FILE."""
        out: dict[str, Any] = {"session_mode": self.mode.value, "summary": self.summary}
        if self.shared:
            out["history"] = [t.to_dict() for t in self.history]
            out["history_dropped"] = self.dropped
        return out

    def record(self, run_id: str, given: Optional[str], summary: Optional[str],
               now: int, messages: Sequence[Mapping[str, Any]] = ()) -> None:
        """What a finished run (or iteration) leaves, per the mode: for an llm agent's
        run in shared mode its ``messages`` (its input onward) are the turn."""
        if self.mode is SessionMode.FULLY_EPHEMERAL:
            return
        self.summary = summary
        if self.shared:
            turn = Turn(input=None if given is None else _cut_head(given, TURN_INPUT_CAP),
                        output=summary, run_id=run_id, at=now, messages=tuple(messages))
            if turn.messages and turn_size(turn) > self.budget:  # too big to carry whole
                turn = dataclasses.replace(turn, messages=())
            self.new_turns += (turn,)
            self.history, dropped = trim(self.history + (turn,), self.budget)
            self.dropped += dropped

    def stored(self, run_id: str, now: int) -> ContextLeft:
        """The context to store (for fully_ephemeral: its mode and nothing else), with
        what :func:`rebased` needs."""
        return ContextLeft(
            SessionContext(job_id=self.job_id, mode=self.mode, summary=self.summary,
                           history=self.history, dropped=self.dropped, run_id=run_id,
                           updated_at=now, generation=self.generation),
            based_on=self.based_on, turns=self.new_turns, budget=self.budget)


def rebased(left: ContextLeft, current: Optional[SessionContext]) -> SessionContext:
    """The context a finished run stores, given the one stored now: when another run
    of the job (an overlapping manual run, ``symbi run --session``) left one since this
    run started, this run's turns go on top of that one's history, so neither is lost;
    this run's summary, the latest, wins. A context cleared meanwhile is left to the
    store's generation check."""
    ctx = left.context
    if current is None or current.run_id == left.based_on or \
            current.generation != ctx.generation:
        return ctx
    if ctx.mode is SessionMode.SHARED_PERSISTENT and \
            current.mode is SessionMode.SHARED_PERSISTENT:
        history, dropped = trim(current.history + left.turns, left.budget)
        return dataclasses.replace(ctx, history=history, dropped=current.dropped + dropped)
    return ctx


def context_to_wire(ctx: Optional[SessionContext], mode: SessionMode,
                    state: Optional[str]) -> dict[str, Any]:
    """``GET /api/v1/schedule/{id}/context``: the stored context (or an empty one in the
    job's mode) and the state directory of a shared_persistent job."""
    if ctx is None:
        ctx = SessionContext(job_id="", mode=mode)
    return {
        "session_mode": mode.value,
        "stored_mode": ctx.mode.value if ctx.run_id else None,
        "summary": ctx.summary,
        "history": [t.to_dict() for t in ctx.history],
        "history_dropped": ctx.dropped,
        "run_id": ctx.run_id,
        "updated_at": format_instant(ctx.updated_at) if ctx.run_id else None,
        "state_dir": state,
    }
