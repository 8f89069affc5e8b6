"""A run's output, live and stored, its cancel, and finding runs and jobs by an id prefix:
a real daemon on a socket (and TCP) in a temp dir, real child processes."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbid.client import SymbiontClient
from symbid.control import MAX_FOLLOWERS
from symbid.errors import Conflict, InvalidInput, NotFound, SymbidError
from tests.integration.daemon_helper import TOKEN, Daemon
from tests.integration.test_sandbox import alive, wait_gone

SECRET = "s3cr3t-value-0123456789"
AGENTS = """
agent quick { command: ["/bin/sh", "-c", "echo done"] }
agent talk { command: ["/bin/sh", "-c",
                       "echo one; read line < \\"$FIFO\\"; echo \\"$line\\"; echo two"],
             env: { FIFO: "FIFO_PATH" } }
agent secret { command: ["/bin/sh", "-c", "echo token=$TOKEN; read line < \\"$FIFO\\""],
               env: { TOKEN: "${SYMBI_TEST_SECRET}", FIFO: "FIFO_PATH" } }
agent family { command: ["/bin/sh", "-c", "sleep 300 & echo $! > \\"$KID\\"; echo started; wait"],
               env: { KID: "KID_PATH" } }
agent hang { command: ["/bin/sh", "-c", "echo waiting; exec sleep 300"] }
"""


def make_daemon(tmp_path: Path, config: str = "") -> Daemon:
    fifo = tmp_path / "release.fifo"
    os.mkfifo(fifo)
    text = AGENTS.replace("FIFO_PATH", str(fifo)).replace("KID_PATH", str(tmp_path / "kid"))
    d = Daemon(tmp_path, {"agents.symbi": text}, config=config)
    d.start(env={"SYMBI_TEST_SECRET": SECRET})
    return d


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = make_daemon(tmp_path)
    yield d
    d.cleanup()


def release(d: Daemon, line: str = "released") -> None:
    """Let an agent waiting on the fifo go on (opening it waits for the agent's read)."""
    with open(d.root / "release.fifo", "w") as fifo:
        fifo.write(line + "\n")


def start(d: Daemon, agent: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """A manual run of a new job of ``agent``, once it is running."""
    name = name or f"{agent}-job"
    status, job = d.api("POST", "/api/v1/schedule", {"name": name, "agent_id": agent,
                                                     "cron_expr": "0 0 1 1 *", **fields})
    assert status == 201, job
    status, run = d.api("POST", f"/api/v1/schedule/{name}/run")
    assert status == 202, run
    return dict(run)


def run_of(d: Daemon, run_id: str) -> dict[str, Any]:
    status, run = d.api("GET", f"/api/v1/runs/{run_id}")
    assert status == 200, run
    return dict(run)


def wait_status(d: Daemon, run_id: str, *statuses: str) -> dict[str, Any]:
    return dict(d.wait_for(lambda: (r := run_of(d, run_id))["status"] in statuses and r))


def clients(d: Daemon) -> list[SymbiontClient]:
    return [SymbiontClient(socket_path=d.socket),
            SymbiontClient(base_url=f"http://127.0.0.1:{d.port}", api_key=TOKEN)]


# --- output -------------------------------------------------------------------------------


def test_the_output_of_a_finished_run_is_its_stored_output_as_text(daemon: Daemon) -> None:
    run = start(daemon, "quick")
    wait_status(daemon, run["id"], "succeeded")
    for tcp in (False, True):
        status, body = daemon.api("GET", f"/api/v1/runs/{run['id']}/output", tcp=tcp)
        assert (status, body) == (200, "done\n")
    for client in clients(daemon):
        assert client.schedule.get_output(run["id"]) == "done\n"
        assert "".join(client.schedule.follow_output(run["id"])) == "done\n"
    head = subprocess.run(["curl", "-sSI", "--unix-socket", daemon.socket,
                           f"http://localhost/api/v1/runs/{run['id']}/output?follow=true"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert head.stdout.startswith("HTTP/1.1 200")
    assert "content-type: text/plain; charset=utf-8" in head.stdout.lower()
    assert "content-length: 5" in head.stdout.lower()


def test_a_running_runs_output_is_what_it_printed_so_far(daemon: Daemon) -> None:
    run = start(daemon, "talk")
    daemon.wait_for(lambda: daemon.api("GET", f"/api/v1/runs/{run['id']}/output")[1]
                    == "one\n")
    assert run_of(daemon, run["id"])["status"] in ("pending", "running")
    head = subprocess.run(["curl", "-sSI", "--unix-socket", daemon.socket,
                           f"http://localhost/api/v1/runs/{run['id']}/output?follow=true"],
                          capture_output=True, text=True, check=True, timeout=60)
    # HEAD never streams: the headers of the output so far, and no body
    assert head.stdout.startswith("HTTP/1.1 200") and "content-length: 4" in head.stdout.lower()
    release(daemon)
    done = wait_status(daemon, run["id"], "succeeded")
    assert done["output"] == "one\nreleased\ntwo\n"
    assert daemon.api("GET", f"/api/v1/runs/{run['id']}/output")[1] == done["output"]


def test_the_output_of_an_unknown_run_is_404_and_a_bad_follow_is_400(daemon: Daemon) -> None:
    status, body = daemon.api("GET", "/api/v1/runs/no-such-run/output")
    assert status == 404 and body["error"]["code"] == "not_found"
    run = start(daemon, "quick")
    status, body = daemon.api("GET", f"/api/v1/runs/{run['id']}/output?follow=yes")
    assert status == 400 and body["error"]["field"] == "follow"
    status, body = daemon.api("GET", f"/api/v1/runs/{run['id']}/output?tail=5")
    assert status == 400 and body["error"]["field"] == "tail"
    for client in clients(daemon):
        with pytest.raises(NotFound):
            client.schedule.get_output("no-such-run")
        with pytest.raises(NotFound):
            list(client.schedule.follow_output("no-such-run"))


@pytest.mark.parametrize("over", ["socket", "tcp"])
def test_following_streams_the_output_as_it_is_printed_and_ends_with_the_run(
        daemon: Daemon, over: str) -> None:
    client = clients(daemon)[over == "tcp"]
    run = start(daemon, "talk")
    pieces = client.schedule.follow_output(run["id"])
    got = ""
    while got != "one\n":
        got += next(pieces)
    # it came while the run went (the store may not have its start recorded yet)
    assert run_of(daemon, run["id"])["status"] in ("pending", "running")
    release(daemon, "ünïcödé 報告")
    got += "".join(pieces)  # ends when the run's final state is stored
    final = run_of(daemon, run["id"])
    assert final["status"] == "succeeded"
    assert got == final["output"] == "one\nünïcödé 報告\ntwo\n"


def test_following_a_run_that_has_not_started_waits_for_its_output(tmp_path: Path) -> None:
    d = make_daemon(tmp_path, "max_concurrent_jobs = 1\n")
    try:
        hog = start(d, "hang")
        wait_status(d, hog["id"], "running")
        client = SymbiontClient(socket_path=d.socket)
        later = start(d, "quick")
        assert run_of(d, later["id"])["status"] == "pending"
        got: list[str] = []
        follower = threading.Thread(
            target=lambda: got.extend(client.schedule.follow_output(later["id"])))
        follower.start()
        client.schedule.cancel_run(hog["id"])  # its place goes to the waiting run
        follower.join(timeout=60)
        assert not follower.is_alive()
        assert "".join(got) == "done\n" and run_of(d, later["id"])["status"] == "succeeded"
    finally:
        d.cleanup()


def test_a_secret_is_masked_in_live_output(daemon: Daemon) -> None:
    run = start(daemon, "secret")
    daemon.wait_for(lambda: daemon.api("GET", f"/api/v1/runs/{run['id']}/output")[1]
                    == "token=***\n")
    client = SymbiontClient(socket_path=daemon.socket)
    pieces = client.schedule.follow_output(run["id"])
    assert next(pieces) == "token=***\n"
    release(daemon, "bye")
    rest = "".join(pieces)
    assert SECRET not in rest
    assert run_of(daemon, run["id"])["output"] == "token=***\n"


def _follow_raw(d: Daemon, run_id: str) -> socket.socket:
    """A follower on the socket that reads the response head and then nothing more."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(d.socket)
    sock.sendall(f"GET /api/v1/runs/{run_id}/output?follow=true HTTP/1.1\r\n"
                 "Host: localhost\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    return sock


def test_followers_are_limited_and_one_that_goes_away_frees_its_place(daemon: Daemon) -> None:
    run = start(daemon, "hang")
    wait_status(daemon, run["id"], "running")
    followers = [_follow_raw(daemon, run["id"]) for _ in range(MAX_FOLLOWERS)]
    status, body = daemon.api("GET", f"/api/v1/runs/{run['id']}/output?follow=true")
    assert status == 503 and body["error"]["code"] == "too_many_followers"
    assert str(MAX_FOLLOWERS) in body["error"]["message"]
    assert daemon.api("GET", "/api/v1/health/scheduler")[0] == 200  # others are served
    assert daemon.api("GET", f"/api/v1/runs/{run['id']}/output")[1] == "waiting\n"
    followers.pop().close()  # a client that goes away while the run prints nothing
    followers.append(daemon.wait_for(lambda: _try_follow(daemon, run["id"])))
    for sock in followers:
        sock.close()


def _try_follow(d: Daemon, run_id: str) -> socket.socket | None:
    try:
        return _follow_raw(d, run_id)
    except AssertionError:
        return None


def test_a_follow_ends_when_the_daemon_stops(daemon: Daemon) -> None:
    run = start(daemon, "hang")
    wait_status(daemon, run["id"], "running")
    pieces = SymbiontClient(socket_path=daemon.socket).schedule.follow_output(run["id"])
    assert next(pieces) == "waiting\n"
    assert daemon.stop() == 0
    assert list(pieces) == []  # the stream ended; the daemon did not wait for it


# --- cancel -------------------------------------------------------------------------------


def test_cancelling_a_running_run_kills_its_process_group(daemon: Daemon) -> None:
    run = start(daemon, "family")
    kid_file = daemon.root / "kid"
    wait_status(daemon, run["id"], "running")
    daemon.wait_for(lambda: kid_file.exists() and kid_file.read_text().strip())
    grandchild = int(kid_file.read_text())
    assert alive(grandchild)

    status, answer = daemon.api("POST", f"/api/v1/runs/{run['id']}/cancel")
    assert status in (200, 202), answer
    assert answer["id"] == run["id"] and answer["status"] in ("running", "cancelled")
    final = wait_status(daemon, run["id"], "cancelled")
    assert final["error_message"].startswith(f"cancelled by uid:{os.getuid()}; ")
    assert final["output"] == "started\n"
    assert wait_gone(grandchild, timeout=30)  # it was in the run's process group
    job = daemon.api("GET", "/api/v1/schedule/family-job")[1]
    assert (job["failure_count"], job["status"]) == (0, "active")
    assert "RunCancelled" in daemon.log.read_text()


def test_cancelling_a_pending_run_records_it_cancelled_without_starting(
        tmp_path: Path) -> None:
    d = make_daemon(tmp_path, "max_concurrent_jobs = 1\n")
    try:
        hog = start(d, "hang")
        wait_status(d, hog["id"], "running")
        waiting = start(d, "quick")
        assert run_of(d, waiting["id"])["status"] == "pending"
        for_tcp = SymbiontClient(base_url=f"http://127.0.0.1:{d.port}", api_key=TOKEN)
        answer = for_tcp.schedule.cancel_run(waiting["id"])
        assert answer.status == "cancelled" and answer.started_at is None
        assert answer.error_message == "cancelled by token:default before it started"
        status, again = d.api("POST", f"/api/v1/runs/{waiting['id']}/cancel")
        assert status == 409 and "cancelled" in again["error"]["message"]
        d.api("POST", f"/api/v1/runs/{hog['id']}/cancel")
        wait_status(d, hog["id"], "cancelled")
        assert run_of(d, waiting["id"])["started_at"] is None
    finally:
        d.cleanup()


def test_cancelling_a_finished_or_unknown_run_is_refused(daemon: Daemon) -> None:
    run = start(daemon, "quick")
    wait_status(daemon, run["id"], "succeeded")
    status, body = daemon.api("POST", f"/api/v1/runs/{run['id']}/cancel")
    assert status == 409 and "already succeeded" in body["error"]["message"]
    status, body = daemon.api("POST", "/api/v1/runs/no-such-run/cancel")
    assert status == 404
    status, body = daemon.api("POST", f"/api/v1/runs/{run['id']}/cancel", {"force": True})
    assert status == 400 and body["error"]["field"] == "force"
    client = SymbiontClient(socket_path=daemon.socket)
    with pytest.raises(Conflict):
        client.schedule.cancel_run(run["id"])
    with pytest.raises(NotFound):
        client.schedule.cancel_run("no-such-run")


def test_a_cancelled_scheduled_run_is_not_retried(daemon: Daemon) -> None:
    status, job = daemon.api("POST", "/api/v1/schedule", {
        "name": "every-second", "agent_id": "hang", "cron_expr": "* * * * * *",
        "max_retries": 3})
    assert status == 201, job
    running = daemon.wait_for(lambda: [r for r in daemon.history("every-second")
                                       if r["status"] == "running"])
    run_id = running[0]["id"]
    daemon.api("POST", f"/api/v1/runs/{run_id}/cancel")
    final = wait_status(daemon, run_id, "cancelled")
    daemon.api("POST", "/api/v1/schedule/every-second/pause")
    assert final["trigger"] == "schedule" and final["retry_at"] is None
    runs = daemon.history("every-second")
    assert not [r for r in runs if r["trigger"] == "retry"]
    job = daemon.api("GET", "/api/v1/schedule/every-second")[1]
    assert job["failure_count"] == 0 and job["status"] == "paused"
    for r in runs:
        if r["status"] == "running":
            daemon.api("POST", f"/api/v1/runs/{r['id']}/cancel")


def test_a_one_shot_whose_run_is_cancelled_ends_failed(daemon: Daemon) -> None:
    status, job = daemon.api("POST", "/api/v1/schedule", {
        "name": "once", "agent_id": "hang", "at": "2020-01-01T00:00:00Z",
        "allow_past": True, "max_retries": 2})
    assert status == 201, job
    running = daemon.wait_for(lambda: [r for r in daemon.history("once")
                                       if r["status"] == "running"])
    daemon.api("POST", f"/api/v1/runs/{running[0]['id']}/cancel")
    wait_status(daemon, running[0]["id"], "cancelled")
    job = daemon.wait_for(lambda: (j := daemon.api("GET", "/api/v1/schedule/once")[1])
                          ["status"] != "active" and j)
    assert job["status"] == "failed"
    assert [r["status"] for r in daemon.history("once")] == ["cancelled"]


# --- id prefixes --------------------------------------------------------------------------


def test_jobs_and_runs_are_found_by_an_id_prefix(daemon: Daemon) -> None:
    run = start(daemon, "quick")
    wait_status(daemon, run["id"], "succeeded")
    other = start(daemon, "quick", name="other")
    wait_status(daemon, other["id"], "succeeded")
    job_id = run["job_id"]

    status, jobs = daemon.api("GET", f"/api/v1/schedule?id_prefix={job_id[:8].upper()}")
    assert status == 200 and [j["id"] for j in jobs] == [job_id]
    status, runs = daemon.api("GET", f"/api/v1/runs?id_prefix={run['id'][:13]}&limit=5")
    assert status == 200 and [r["id"] for r in runs] == [run["id"]]
    assert runs[0]["output_preview"] == "done\n" and "output" not in runs[0]
    for client in clients(daemon):
        assert [j.id for j in client.schedule.list(id_prefix=job_id[:8])] == [job_id]
        assert [r.id for r in client.schedule.find_runs(run["id"][:8], limit=1)] == [run["id"]]

    for path in ("/api/v1/schedule?id_prefix=abc", "/api/v1/schedule?id_prefix=zzzzzzzz",
                 "/api/v1/runs?id_prefix=3f2a9c1d%25", "/api/v1/runs?id_prefix=", "/api/v1/runs"):
        status, body = daemon.api("GET", path)
        assert status == 400 and body["error"]["field"] == "id_prefix", (path, body)
    status, body = daemon.api("GET", f"/api/v1/runs?id_prefix={run['id'][:8]}&job=x")
    assert status == 400 and body["error"]["field"] == "job"
    with pytest.raises(InvalidInput) as bad:
        clients(daemon)[0].schedule.find_runs("short")
    assert bad.value.field == "id_prefix"
    with pytest.raises(SymbidError):
        clients(daemon)[0].schedule.list(id_prefix="not-hex!")


def test_the_openapi_document_lists_the_run_routes(daemon: Daemon) -> None:
    status, spec = daemon.api("GET", "/api/v1/openapi.json")
    assert status == 200
    for path in ("/api/v1/runs", "/api/v1/runs/{run_id}/output", "/api/v1/runs/{run_id}/cancel"):
        assert path in spec["paths"], path
    listing = spec["paths"]["/api/v1/schedule"]["get"]["parameters"]
    assert "id_prefix" in [p["name"] for p in listing]
