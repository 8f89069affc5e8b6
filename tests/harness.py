"""The scheduling loop under test: a real store in tmp_path, an injected clock, fake edges."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any, Optional

from symbid.agentdef import Agent
from symbid.api import ApiContext, make_app
from symbid.config import SchedulerConfig
from symbid.executor import Agents
from symbid.jobs import JobService
from symbid.model import Job, format_instant
from symbid.policy import PolicyGate
from symbid.records import Run
from symbid.registry import AgentService
from symbid.scheduler import CronScheduler
from symbid.startlog import StartLog
from symbid.store import SqliteJobStore
from symbid.timer import Waiter, Wake
from symbid.timing import parse_instant
from tests.fakes import FakeClock, FakeLauncher, FakeWaiter


class Harness:
    def __init__(self, tmp_path: Path, start: str = "2026-03-01T00:00:00Z", **cfg: Any) -> None:
        self.clock = FakeClock(start)
        keep = cfg.pop("keep_runs", 1000)
        busy = cfg.pop("busy_timeout_ms", 10_000)
        self.tmp_path = tmp_path
        self.store = SqliteJobStore(str(tmp_path / "state.db"), keep_runs=keep,
                                    busy_timeout_ms=busy)
        self.launcher = FakeLauncher(self.clock)
        # what the policy gate knows of agents (their capabilities): the jobs' "agent"
        self.agents = Agents({"agent": Agent(name="agent", command=("/bin/true",))})
        self.environment = "production"  # [daemon] environment, as the gate reads it
        self.waiter = FakeWaiter()
        settings = {"retry_backoff_seconds": 10.0, "misfire_grace_seconds": 60.0}
        settings.update(cfg)
        self.config = SchedulerConfig(**settings)
        # the policy gate (one for every scheduler of this harness: restarts keep it)
        self.gate = PolicyGate(self.agents, environment=lambda: self.environment)
        self._start_logs: list[StartLog] = []
        self.sched = self.new_scheduler()
        self.sched.recover()  # as the daemon does before its loop starts
        self.jobs = JobService(self.store, self.clock, wake=self.sched.wake)

    def new_scheduler(self, waiter: Optional[Waiter] = None) -> CronScheduler:
        start_log = StartLog(str(self.tmp_path / "start-log"))
        self._start_logs.append(start_log)
        return CronScheduler(self.store, self.launcher, self.clock, self.config,
                             start_log=start_log, waiter=waiter or self.waiter,
                             rng=random.Random(7), gate=self.gate)

    def close(self) -> None:
        """Close the files it holds open (the store, every scheduler's start log)."""
        for start_log in self._start_logs:
            start_log.close()
        self.store.close()

    def api_context(self) -> ApiContext:
        registry = AgentService(self.store, self.clock, Agents(),
                                agents_dir=str(self.tmp_path / "agents.d"))
        return ApiContext(store=self.store, jobs=self.jobs, scheduler=self.sched,
                          clock=self.clock, agents=registry)

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request to the WSGI app in this process (over the "unix" transport)."""
        app = make_app(self.api_context())
        raw = json.dumps(body).encode() if body is not None else b""
        query = ""
        if "?" in path:
            path, query = path.split("?", 1)
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                   "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw),
                   "REMOTE_USER": "uid:0"}
        got: list[str] = []
        chunks = app(environ, lambda status, headers: got.append(status))
        data = b"".join(chunks)
        return int(got[0].split()[0]), json.loads(data) if data else None

    def add(self, name: str, cron: Optional[str] = None, at: Optional[str] = None,
            tz: str = "UTC", **kw: Any) -> Job:
        allow_past = kw.pop("allow_past", False)
        job = Job(id="", name=name, agent_id="agent", cron_expr=cron,
                  at=parse_instant(at) if at else None, timezone=tz, **kw)
        return self.jobs.create(job, allow_past=allow_past, actor="test")

    def run_until(self, when: str) -> None:
        """Advance time to ``when``, visiting every instant the loop asks to be woken at."""
        target = parse_instant(when)
        if self.waiter.clock_set_next:  # a step wakes the loop before its next pass
            self.sched.handle_wake(self.waiter.wait_until(None, self.config.tick_interval_seconds))
        for _ in range(100_000):
            wake = self.sched.tick(self.clock.now())
            # what the loop does between passes: wait, and react to why it ended
            reason = self.waiter.wait_until(wake, self.config.tick_interval_seconds)
            self.sched.handle_wake(reason)
            if reason is Wake.CLOCK_SET:
                continue  # the loop recomputes at once
            if wake is None or wake > target:
                break
            if wake > self.clock.now():
                self.clock.set(wake)
        else:  # pragma: no cover
            raise AssertionError("the loop never settled")
        self.clock.set(target)
        self.sched.tick(target)

    def restart(self, *, graceful: bool = False) -> Any:
        """The daemon stops (SIGTERM) or dies (SIGKILL); a new one starts on the same store."""
        if graceful:
            self.sched.stop()
        self.launcher = FakeLauncher(self.clock)
        self.sched = self.new_scheduler()
        self.jobs = JobService(self.store, self.clock, wake=self.sched.wake)
        return self.sched.recover()

    def history(self, name: str) -> list[Run]:
        job = self.store.get_job(name)
        return list(reversed(self.store.history(job.id, limit=10_000)))

    def started(self, name: Optional[str] = None) -> list[tuple[str, str, str]]:
        """(job name, slot, start time) of each start, in order."""
        return [(j.name, format_instant(r.slot), format_instant(t))
                for j, r, t in self.launcher.started if name is None or j.name == name]

    def job(self, name: str) -> Job:
        return self.store.get_job(name)
