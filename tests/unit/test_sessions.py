"""The session rules (pure): what a run sees per mode, what it leaves, the summary, the
history's byte budget; and a heartbeat wake-up's stop rules and bounded memory."""

from __future__ import annotations

from symbid.heartbeat import ITERATION_SUMMARY_CAP, ITERATIONS_KEPT, Wakeup, says_sleep
from symbid.model import Heartbeat, RunStatus, SessionMode
from symbid.records import SessionContext, Turn
from symbid.sessions import (
    OUTPUT_SUMMARY_CAP,
    SUMMARY_FILE_CAP,
    Session,
    rebased,
    summarize,
    trim,
    turn_size,
)

SHARED = SessionMode.SHARED_PERSISTENT
EPHEMERAL = SessionMode.EPHEMERAL_WITH_SUMMARY
NOTHING = SessionMode.FULLY_EPHEMERAL


def stored(mode: SessionMode = SHARED, turns: int = 2) -> SessionContext:
    return SessionContext(job_id="j", mode=mode, summary="last",
                          history=tuple(Turn(f"in{i}", f"out{i}", f"r{i}", i)
                                        for i in range(turns)), run_id="r1", updated_at=1)


def test_ephemeral_with_summary_sees_only_the_previous_summary() -> None:
    view = Session.open("j", EPHEMERAL, stored()).view()
    assert view == {"session_mode": "ephemeral_with_summary", "summary": "last"}


def test_shared_persistent_sees_the_history_and_how_many_turns_were_dropped() -> None:
    view = Session.open("j", SHARED, stored()).view()
    assert [t["run_id"] for t in view["history"]] == ["r0", "r1"]
    assert view["history_dropped"] == 0 and view["summary"] == "last"


def test_fully_ephemeral_sees_nothing_and_leaves_nothing() -> None:
    session = Session.open("j", NOTHING, stored())
    assert session.view() == {"session_mode": "fully_ephemeral", "summary": None}
    session.record("r9", "in", "said", 5)
    assert session.stored("r9", 5).context.summary is None


def test_a_job_switched_to_shared_starts_its_history_empty() -> None:
    view = Session.open("j", SHARED, stored(EPHEMERAL, turns=0)).view()
    assert view["history"] == [] and view["summary"] == "last"


def test_a_shared_run_appends_its_turn_and_leaves_its_summary() -> None:
    session = Session.open("j", SHARED, stored())
    session.record("r9", "given", "said", 5)
    ctx = session.stored("r9", 5).context
    assert ctx.summary == "said"
    assert ctx.history[-1] == Turn("given", "said", "r9", 5)


def test_the_oldest_turns_are_dropped_past_the_budget_and_counted() -> None:
    turn = Turn("x" * 100, "y" * 100, "r00", 0)
    budget = turn_size(turn) * 10
    session = Session("j", SHARED, budget=budget)
    for i in range(25):
        session.record(f"r{i:02d}", "x" * 100, "y" * 100, 0)
    assert len(session.history) == 10
    assert session.dropped == 15
    assert session.history[-1].run_id == "r24"
    assert sum(turn_size(t) for t in session.history) <= budget


def test_the_newest_turn_is_kept_even_when_it_alone_is_over_budget() -> None:
    history, dropped = trim((Turn("a", "b", "r1", 0), Turn("c" * 500, "d", "r2", 0)), 10)
    assert [t.run_id for t in history] == ["r2"] and dropped == 1


def test_the_summary_file_wins_and_is_capped_and_masked() -> None:
    assert summarize(b"mine\n", "output", []) == "mine"
    assert summarize(b"key=hunter2", "output", ["hunter2"]) == "key=***"
    assert len(summarize(b"z" * 10_000, None, []) or "") == SUMMARY_FILE_CAP


def test_without_a_summary_file_the_summary_is_the_outputs_last_kilobyte() -> None:
    out = "a" * 5000 + "end\n"
    got = summarize(None, out, []) or ""
    assert got.endswith("end") and len(got.encode()) == OUTPUT_SUMMARY_CAP
    assert summarize(b"  \n", "", []) is None


def test_sleep_is_the_last_line_of_the_output() -> None:
    assert says_sleep("checked\nsleep\n")
    assert says_sleep("sleep")
    assert not says_sleep("sleep\nworking")
    assert not says_sleep("asleep")
    assert not says_sleep(None)


def test_a_wakeup_stops_on_sleep_then_max_iterations_then_a_failure() -> None:
    w = Wakeup(Heartbeat(enabled=True, max_iterations=2))
    w.add(RunStatus.SUCCEEDED, "working", 0.1)
    assert w.stop_reason(RunStatus.SUCCEEDED, "working") is None
    assert w.stop_reason(RunStatus.SUCCEEDED, "sleep") == "sleep"
    w.add(RunStatus.SUCCEEDED, "working", 0.1)
    assert w.stop_reason(RunStatus.SUCCEEDED, "working") == "max_iterations"
    assert w.stop_reason(RunStatus.FAILED, "") == "failed"
    assert w.stop_reason(RunStatus.TIMED_OUT, "") == "max_runtime"
    assert w.remaining(1.0) is not None and abs((w.remaining(1.0) or 0) - 0.8) < 1e-9


def test_a_wakeups_memory_stays_bounded_over_ten_thousand_iterations() -> None:
    w = Wakeup(Heartbeat(enabled=True, max_iterations=100_000))
    session = Session("j", EPHEMERAL)
    for _ in range(10_000):
        w.add(RunStatus.SUCCEEDED, "s" * 4000, 0.0)
        session.record("r", "in", "s" * 4000, 0)
    assert w.count == 10_000
    assert len(w.iterations) == ITERATIONS_KEPT
    assert w.iterations[-1].number == 10_000
    assert all(len(i.summary or "") == ITERATION_SUMMARY_CAP for i in w.iterations)
    assert session.history == () and session.summary == "s" * 4000


def test_two_overlapping_shared_runs_both_keep_their_turns() -> None:
    a = Session.open("j", SHARED, stored())
    b = Session.open("j", SHARED, stored())  # started before a finished
    a.record("ra", "A", "did A", 10)
    b.record("rb", "B", "did B", 11)
    first = rebased(a.stored("ra", 10), stored())  # nothing else was left meanwhile
    assert [t.input for t in first.history] == ["in0", "in1", "A"]
    second = rebased(b.stored("rb", 11), first)  # b is rebuilt on a's context
    assert [t.input for t in second.history] == ["in0", "in1", "A", "B"]
    assert second.summary == "did B" and second.run_id == "rb"


def test_a_rebuilt_history_stays_within_its_budget_and_counts_what_it_dropped() -> None:
    a = Session.open("j", SHARED, stored(), budget=turn_size(Turn("in0", "out0", "r0", 0)) * 3)
    b = Session.open("j", SHARED, stored(), budget=a.budget)
    a.record("ra", "A", "x", 10)
    b.record("rb", "B", "y", 11)
    second = rebased(b.stored("rb", 11), rebased(a.stored("ra", 10), stored()))
    assert [t.input for t in second.history][-1] == "B"
    assert second.dropped >= 1


def test_a_context_cleared_meanwhile_is_not_rebuilt() -> None:
    import dataclasses

    a = Session.open("j", SHARED, stored())
    a.record("ra", "A", "did A", 10)
    cleared = dataclasses.replace(stored(turns=0), summary=None, run_id=None, generation=1)
    assert rebased(a.stored("ra", 10), cleared).generation == 0  # the store refuses it
