"""One run's lifecycle (DESIGN §6), from an agent definition to a final outcome.

The scheduler decides *when* a run starts; the executor turns the job and its
agent into a child process (step 4, through :mod:`symbid.sandbox`) and reports
the outcome (step 7 material) back to whoever it is bound to. Steps 2 and 6
(sessions: the context a run gets and the one it leaves, :mod:`symbid.sessions`) and
heartbeat wake-ups (iterations of one run, :mod:`symbid.heartbeat`) are here; steps 3
and 5 (policy, delivery) plug in as their issues arrive.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from symbid import llmresult, llmrun
from symbid.agentdef import Agent, AgentKind
from symbid.agents.child import RESULT_VAR
from symbid.clock import Clock
from symbid.config import LlmConfig, referenced_values, resolve_refs
from symbid.errors import SandboxError, SymbidError
from symbid.heartbeat import MAX_RUNTIME, Wakeup
from symbid.live import LiveOutputs
from symbid.metrics import Metrics
from symbid.model import Job, RunStatus, format_duration, format_instant
from symbid.records import LlmUsage, Run, RunOutcome, SessionContext, ToolCall
from symbid.runfiles import RunFile
from symbid.sandbox import STDERR_TAIL, ChildExit, Spawned, SpawnSpec, Supervisor
from symbid.sessions import (
    CONTEXT_NAME,
    CONTEXT_VAR,
    DEFAULT_HISTORY_BYTES,
    SUMMARY_FILE_CAP,
    SUMMARY_NAME,
    SUMMARY_VAR,
    Session,
    state_dir,
    summarize,
)
from symbid.text import escape, mask, secret_parts

log = logging.getLogger(__name__)


class UnknownAgent(SymbidError):
    code = "unknown_agent"
    http_status = 400


class RunSink(Protocol):
    def run_finished(self, outcome: RunOutcome) -> None: ...

    def process_started(self, run_id: str, spawned: Spawned) -> None: ...


class ContextSource(Protocol):
    def get_context(self, job_id: str) -> Optional[SessionContext]: ...


class AgentRegistry(Protocol):
    def get(self, name: str) -> Optional[Agent]: ...

    def problem(self, name: str) -> Optional[str]: ...

    def users(self) -> set[str]: ...


LISTED_AGENTS = 10  # defined agents an "is not defined" message names


def unknown_agent(name: str, defined: list[str], hint: str) -> str:
    """The message for an agent that is not defined: which are, and where to define one."""
    if defined:
        more = len(defined) - LISTED_AGENTS
        known = "defined agents: " + escape(", ".join(defined[:LISTED_AGENTS])) + \
            (f" and {more} more" if more > 0 else "")
    else:
        known = "no agent is defined"
    return f"agent '{escape(name)}' is not defined ({known}); {hint}"


class Agents:
    """The agents the daemon knows, replaceable as a whole (thread-safe). In the daemon it
    is derived from the store's registry (:mod:`symbid.registry`); ``hint`` says where
    an agent is defined."""

    def __init__(self, agents: Optional[Mapping[str, Agent]] = None, *,
                 hint: str = "define it in agents_dir and reload") -> None:
        self._lock = threading.Lock()
        self._agents: dict[str, Agent] = dict(agents or {})
        self.hint = hint

    def get(self, name: str) -> Optional[Agent]:
        with self._lock:
            return self._agents.get(name)

    def problem(self, name: str) -> Optional[str]:
        """None when ``name`` is defined; else why it cannot be used."""
        with self._lock:
            if name in self._agents:
                return None
            defined = sorted(self._agents)
        return unknown_agent(name, defined, self.hint)

    def replace(self, agents: Mapping[str, Agent]) -> None:
        with self._lock:
            self._agents = dict(agents)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._agents)

    def users(self) -> set[str]:
        """The users the agents name for their runs."""
        with self._lock:
            return {a.user for a in self._agents.values() if a.user is not None}


@dataclass
class _Going:
    """A run on its way: what each of its processes (a heartbeat's iterations) needs."""

    job: Job
    run: Run
    agent: Agent
    env: dict[str, str]
    secrets: list[str]
    text: Optional[str]
    session: Optional[Session]  # what the run leaves (the job's session_mode)
    view: Optional[Session]  # what its next process sees (a heartbeat's context_mode)
    wakeup: Optional[Wakeup]
    usage: Optional[LlmUsage] = None  # an llm agent's, summed over the iterations
    tool_calls: tuple[ToolCall, ...] = ()

    def took(self, result: llmresult.Result) -> None:
        """What one llm process used, added to the run's."""
        self.usage = result.usage if self.usage is None else self.usage.plus(result.usage)
        room = llmresult.TOOL_CALLS_KEPT - len(self.tool_calls)
        self.tool_calls += result.tool_calls[:max(0, room)]


def _describe_exit(child: ChildExit, secrets: list[str]) -> str:
    if child.signal is not None:
        try:
            name = signal.Signals(child.signal).name
        except ValueError:
            name = f"signal {child.signal}"
        text = f"killed by {name}"
    else:
        text = f"exit status {child.exit_code}"
    tail = mask(child.stderr_tail.decode("utf-8", "replace"), secrets,
                cut_start=len(child.stderr_tail) >= STDERR_TAIL).strip()
    if tail:
        last = tail.splitlines()[-3:]
        text += ": " + " | ".join(line.strip() for line in last)
    return text


class Executor:
    """Starts runs as isolated child processes and reports their outcomes."""

    def __init__(
        self,
        supervisor: Supervisor,
        agents: AgentRegistry,
        clock: Clock,
        *,
        runs_dir: str,
        run_user: Optional[str] = None,
        kill_grace: float = 5.0,
        environ: Optional[Mapping[str, str]] = None,
        live: Optional[LiveOutputs] = None,
        contexts: Optional[ContextSource] = None,
        llm: Optional[LlmConfig] = None,
        metrics: Optional[Metrics] = None,
    ) -> None:
        self._supervisor = supervisor
        self._agents = agents
        self._clock = clock
        self._runs_dir = runs_dir
        self._run_user = run_user  # [daemon] run_user: for agents that name no user
        self._kill_grace = kill_grace
        self._environ = environ if environ is not None else os.environ
        self._sink: Optional[RunSink] = None
        self.live = live if live is not None else LiveOutputs()
        self._lock = threading.Lock()
        self._cancelled_by: dict[str, str] = {}  # run id -> who asked for the cancel
        self._contexts = contexts
        self.llm = llm or LlmConfig()  # [llm]: replaced on reload
        self._metrics = metrics if metrics is not None else Metrics(enabled=False)
        self._stopping = False  # shutdown: a heartbeat starts no further iteration
        self._waking: set[str] = set()  # heartbeat runs, from their start to their outcome

    def _user_of(self, agent: Agent) -> Optional[str]:
        """Who the agent's runs execute as: its own ``user``, else ``[daemon] run_user``."""
        return agent.user if agent.user is not None else self._run_user

    def bind(self, sink: RunSink) -> None:
        self._sink = sink

    def run_uids(self) -> frozenset[int]:
        uids = {os.geteuid()}
        for name in self._agents.users() | ({self._run_user} if self._run_user else set()):
            try:
                uids.add(pwd.getpwnam(name).pw_uid)
            except KeyError:
                continue  # its runs cannot have started
        return frozenset(uids)

    def agent_problem(self, name: str) -> Optional[str]:
        """None when the agent ``name`` is defined; else the message saying it is not."""
        return self._agents.problem(name)

    def start(self, job: Job, run: Run, mark: Callable[[], None]) -> Spawned:
        """Start ``run`` of ``job``, calling ``mark()`` just before its child is spawned;
        raises :class:`SymbidError` when it cannot start."""
        agent = self._agents.get(job.agent_id)
        if agent is None:
            raise UnknownAgent(self._agents.problem(job.agent_id)
                               or f"agent '{escape(job.agent_id)}' is not defined")
        if agent.kind is AgentKind.COMMAND and not agent.command:
            raise SandboxError(f"agent {agent.name!r} has no command to run")
        env = {
            k: resolve_refs(v, self._environ, what=f"agent {agent.name} env {k}")
            for k, v in agent.env.items()
        }
        # What ${NAME} references resolved to is masked in everything the run leaves.
        secrets = secret_parts([x for v in agent.env.values()
                                for x in referenced_values(v, self._environ)])
        env.update(
            SYMBI_JOB_ID=job.id,
            SYMBI_JOB_NAME=job.name,
            SYMBI_SLOT=format_instant(run.slot),
            SYMBI_ATTEMPT=str(run.attempt),
            SYMBI_TRIGGER=run.trigger.value,
        )
        session = None
        if self._contexts is not None:
            budget = DEFAULT_HISTORY_BYTES if agent.kind is not AgentKind.LLM else \
                agent.max_context_bytes or self.llm.max_context_bytes
            session = Session.open(job.id, job.session_mode, self._contexts.get_context(job.id),
                                   budget)
        going = _Going(job=job, run=run, agent=agent, env=env, secrets=secrets,
                       text=run.input if run.input is not None else job.input,
                       session=session, view=session,
                       wakeup=Wakeup(job.heartbeat) if job.heartbeat.enabled else None)
        if going.wakeup is not None:  # before the spawn: its first iteration may end at once
            with self._lock:
                self._waking.add(run.id)
        try:
            spawned = self._spawn(going, mark)
        except BaseException:
            with self._lock:
                self._waking.discard(run.id)
            raise
        log.info(
            "job %s: run %s started (pid %d, slot %s, attempt %d, %s)",
            job.name, run.id, spawned.pid, format_instant(run.slot), run.attempt,
            run.trigger.value,
            extra={"SYMBID_JOB": job.name, "SYMBID_RUN": run.id, "SYMBID_EVENT": "run_started"},
        )
        return spawned

    def _spawn(self, going: _Going, mark: Optional[Callable[[], None]]) -> Spawned:
        """Start the run's (next) process: the context protocol's files, and for a
        heartbeat what is left of its max_runtime."""
        job, run, agent = going.job, going.run, going.agent
        env = dict(going.env)
        files: tuple[RunFile, ...] = ()
        state: Optional[str] = None
        view = going.view
        if view is not None:
            context = json.dumps(view.view(), ensure_ascii=False).encode()
            files = (RunFile(CONTEXT_VAR, CONTEXT_NAME, content=context),
                     RunFile(SUMMARY_VAR, SUMMARY_NAME, read_back=SUMMARY_FILE_CAP))
            if view.shared or (going.session is not None and going.session.shared):
                state = state_dir(self._runs_dir, job.id, self._user_of(agent))
        timeout = job.policy.max_runtime_seconds
        if going.wakeup is not None:
            env["SYMBI_ITERATION"] = str(going.wakeup.count + 1)
            timeout = going.wakeup.remaining(timeout)
        argv, stdin = agent.command, (going.text or "").encode()
        if agent.kind is AgentKind.LLM:  # the child calls the model (see symbid/llmrun.py)
            start = llmrun.launch(agent, self.llm, self._environ, text=going.text, view=view,
                                  timeout=timeout, runs_dir=self._runs_dir)
            argv, stdin = start.argv, start.stdin
            env.update(start.env)
            files += start.files
            going.secrets = sorted(set(going.secrets) | set(start.secrets), key=len,
                                   reverse=True)
        spec = SpawnSpec(
            tag=run.id,
            argv=argv,
            env=env,
            runs_dir=self._runs_dir,
            stdin=stdin,
            cwd=agent.working_dir,
            user=self._user_of(agent),
            group=agent.group,
            limits=agent.limits,
            timeout=timeout,
            kill_grace=self._kill_grace,
            before_spawn=mark,
            on_stdout=self.live.open(run.id, going.secrets).feed,
            files=files,
            state_dir=state,
        )
        try:
            return self._supervisor.spawn(spec, lambda child: self._exited(going, child))
        except BaseException:
            self.live.release(run.id)
            raise

    def kill_all(self, reason: str) -> int:
        if reason == "shutdown":
            self._stopping = True
        return self._supervisor.kill_all(reason)

    def cancel(self, run_id: str, by: str) -> bool:
        """Kill a run's process group as ``max_runtime`` does (SIGTERM, then SIGKILL after
        the grace); it ends ``cancelled`` by ``by``. False when its process is gone."""
        with self._lock:
            self._cancelled_by[run_id] = by
        if self._supervisor.kill(run_id, "cancel"):
            return True
        with self._lock:
            if run_id in self._waking:  # between two iterations: the next one never starts
                return True
            self._cancelled_by.pop(run_id, None)
        return False

    def release_output(self, run_id: str) -> None:
        """The run's final state is stored: its live output goes."""
        self.live.release(run_id)

    def _exited(self, going: _Going, child: ChildExit) -> None:
        """A run's process ended: its outcome (or its next iteration). Whatever goes wrong
        in working the outcome out, one is reported, so no run is left ``running``."""
        try:
            self._ended(going, child)
        except Exception as exc:
            run = going.run
            log.exception("job %s: run %s: its outcome could not be worked out",
                          going.job.name, run.id,
                          extra={"SYMBID_JOB": going.job.name, "SYMBID_RUN": run.id})
            with self._lock:
                self._waking.discard(run.id)
                self._cancelled_by.pop(run.id, None)
            if self._sink is not None:
                self._sink.run_finished(RunOutcome(
                    run_id=run.id, job_id=going.job.id, status=RunStatus.FAILED,
                    finished_at=self._clock.now(), exit_code=child.exit_code,
                    signal=child.signal, execution_time_ms=round(child.duration * 1000),
                    error_message=f"symbid could not work out the run's outcome "
                                  f"({type(exc).__name__}); see the daemon's log"))

    def _ended(self, going: _Going, child: ChildExit) -> None:
        job, run, secrets = going.job, going.run, going.secrets
        with self._lock:
            by = self._cancelled_by.pop(run.id, None)
        output = self.live.get(run.id)
        if output is not None:
            output.exited(truncated=child.stdout_truncated)
        error: Optional[str] = None
        if child.killed == "timeout":
            status = RunStatus.TIMED_OUT
            limit = job.policy.max_runtime_seconds or 0
            error = f"exceeded max_runtime {format_duration(limit)}; process group killed"
        elif child.killed == "shutdown":
            status = RunStatus.INTERRUPTED
            error = "symbid stopped; the run's process group was killed"
        elif child.killed == "cancel":
            status = RunStatus.CANCELLED
            error = f"cancelled by {by or 'an operator'}; the run's process group was killed"
        elif child.exit_code == 0:
            status = RunStatus.SUCCEEDED
        else:
            status = RunStatus.FAILED
            error = _describe_exit(child, secrets)
        if error is not None:
            error = mask(error, secrets)
        text = mask(child.stdout.decode("utf-8", "replace"), secrets,
                    cut_end=child.stdout_truncated)
        summary = summarize(child.files.get(SUMMARY_VAR), text, secrets)
        messages: tuple[dict[str, object], ...] = ()
        if going.agent.kind is AgentKind.LLM:
            result = llmresult.result_of(child.files.get(RESULT_VAR), secrets,
                                      None if going.wakeup is None else going.wakeup.count + 1)
            if result is not None:
                going.took(result)
                # observed per process: a long wake-up keeps no list of them
                self._metrics.llm_requests_took(going.agent.name, result.request_seconds)
                messages = result.messages
                if result.summary_error:
                    log.warning("job %s: run %s: %s; the summary is the last reply",
                                job.name, run.id, escape(result.summary_error),
                                extra={"SYMBID_JOB": job.name, "SYMBID_RUN": run.id,
                                       "SYMBID_EVENT": "llm_summary_failed"})
                if result.summary:
                    summary = result.summary
                if status is RunStatus.FAILED and result.error:
                    error = result.error
        now = self._clock.now()
        for session in {id(s): s for s in (going.session, going.view) if s is not None}.values():
            session.record(run.id, going.text, summary, now, messages)
        wakeup = going.wakeup
        stop: Optional[str] = None
        if wakeup is not None:
            wakeup.add(status, summary, child.duration)
            stop = wakeup.stop_reason(status, text)
            if stop is None and by is not None:
                stop, status = "cancelled", RunStatus.CANCELLED
                error = f"cancelled by {by} between two iterations"
            if stop is None and self._stopping:
                stop, status = "interrupted", RunStatus.INTERRUPTED
                error = "symbid stopped between two iterations"
            if stop is None and wakeup.remaining(job.policy.max_runtime_seconds) == 0:
                stop, status = MAX_RUNTIME, RunStatus.TIMED_OUT
                limit = job.policy.max_runtime_seconds or 0
                error = f"the wake-up used up max_runtime {format_duration(limit)}"
            if stop is None:
                with self._lock:  # a cancel since this exit was reported
                    by = self._cancelled_by.pop(run.id, None)
                if by is not None:
                    stop, status = "cancelled", RunStatus.CANCELLED
                    error = f"cancelled by {by} between two iterations"
            if stop is None:
                if going.view is going.session and going.session is not None:
                    going.view = going.session.as_mode(job.heartbeat.context_mode)
                self.live.release(run.id)
                try:
                    spawned = self._spawn(going, None)
                except SymbidError as exc:
                    stop, status = "failed", RunStatus.FAILED
                    error = mask(f"iteration {wakeup.count + 1} could not start: "
                                 f"{exc.message}", secrets)
                else:
                    if self._sink is not None:
                        self._sink.process_started(run.id, spawned)
                    # A cancel that came while the next iteration was being spawned found
                    # no process to kill: its flag is still here, so the kill is done now.
                    with self._lock:
                        late = run.id in self._cancelled_by
                    if late:
                        self._supervisor.kill(run.id, "cancel")
                    return
        with self._lock:
            self._waking.discard(run.id)
            self._cancelled_by.pop(run.id, None)  # a cancel that raced the wake-up's end
        outcome = RunOutcome(
            run_id=run.id,
            job_id=job.id,
            status=status,
            finished_at=now,
            execution_time_ms=round((wakeup.elapsed if wakeup else child.duration) * 1000),
            exit_code=child.exit_code,
            signal=child.signal,
            error_message=error,
            output=text,
            output_truncated=child.stdout_truncated,
            summary=summary,
            context=None if going.session is None else going.session.stored(run.id, now),
            iterations=wakeup.iterations if wakeup else (),
            stop_reason=stop,
            usage=going.usage,
            tool_calls=going.tool_calls,
        )
        if going.usage is not None:
            log.info("job %s: run %s: %d model request(s), %d prompt and %d completion "
                     "token(s), %d tool call(s)", job.name, run.id, going.usage.requests,
                     going.usage.prompt_tokens, going.usage.completion_tokens,
                     len(going.tool_calls),
                     extra={"SYMBID_JOB": job.name, "SYMBID_RUN": run.id,
                            "SYMBID_EVENT": "llm_usage"})
        log.info(
            "job %s: run %s %s%s%s", job.name, run.id, status.value,
            f" ({error})" if error else "",
            f" after {wakeup.count} iteration(s): {stop}" if wakeup else "",
            extra={"SYMBID_JOB": job.name, "SYMBID_RUN": run.id, "SYMBID_EVENT": "run_finished"},
        )
        if self._sink is not None:
            self._sink.run_finished(outcome)
