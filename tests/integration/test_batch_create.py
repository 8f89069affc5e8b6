"""Batch create: an array body on POST /api/v1/schedule through a real daemon, all or
nothing, its refusals by index, its own body cap ([api] max_batch_bytes)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_helper import TOKEN, Daemon

AGENTS = 'agent echo { command: ["/bin/sh", "-c", "echo started; cat"] }\n'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("batch"), {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def job(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "agent_id": "echo", "cron_expr": "0 * * * *", **fields}


def names(d: Daemon) -> set[str]:
    status, jobs = d.api("GET", "/api/v1/schedule")
    assert status == 200
    return {j["name"] for j in jobs}


def created_events(d: Daemon, name: str) -> list[Any]:
    status, events = d.api("GET", f"/api/v1/audit?type=CronJobCreated&job={name}")
    assert status == 200, events
    return list(events)


def test_an_array_body_creates_every_job_in_order_with_the_single_create_shape(
    daemon: Daemon,
) -> None:
    status, made = daemon.api("POST", "/api/v1/schedule", [
        job("b-one"), job("b-two", cron_expr="*/5 * * * *", timezone="Europe/Berlin"),
        job("b-three", at="2999-01-01T00:00:00Z", cron_expr=None)])
    assert status == 201, made
    assert [j["name"] for j in made] == ["b-one", "b-two", "b-three"]
    _, single = daemon.api("GET", "/api/v1/schedule/b-two")
    assert set(made[1]) == set(single) and made[1]["id"] == single["id"]
    assert made[1]["timezone"] == "Europe/Berlin" and made[2]["at"] == "2999-01-01T00:00:00Z"
    for name in ("b-one", "b-two", "b-three"):
        (event,) = created_events(daemon, name)
        assert event["actor"]


def test_a_bad_element_creates_nothing_and_the_error_names_its_index_and_field(
    daemon: Daemon,
) -> None:
    batch = [job(f"k-{i}") for i in range(6)]
    batch[3]["cron_expr"] = "61 * * * *"
    batch[5]["max_retries"] = "lots"
    status, body = daemon.api("POST", "/api/v1/schedule", batch)
    assert status == 400, body
    error = body["error"]
    assert error["field"] == "[3].cron_expr"
    assert error["code"] == "invalid_cron"
    assert "[3]" in error["message"] and "none was created" in error["message"]
    assert [(e["index"], e["field"]) for e in error["errors"]] == \
        [(3, "[3].cron_expr"), (5, "[5].max_retries")]
    assert not {f"k-{i}" for i in range(6)} & names(daemon)
    assert created_events(daemon, "k-0") == []


def test_an_element_that_is_not_an_object_or_lacks_a_field_is_named_by_index(
    daemon: Daemon,
) -> None:
    status, body = daemon.api("POST", "/api/v1/schedule",
                              [job("n-0"), "oops", {"name": "n-2", "agent_id": "echo"},
                               job("n-3", agent_id="nobody")])
    assert status == 400, body
    assert [e["field"] for e in body["error"]["errors"]] == \
        ["[1]", "[2].cron_expr", "[3].agent_id"]
    assert "n-0" not in names(daemon)


def test_names_given_twice_or_already_taken_are_refused_by_index(daemon: Daemon) -> None:
    assert daemon.api("POST", "/api/v1/schedule", job("d-taken"))[0] == 201
    status, body = daemon.api("POST", "/api/v1/schedule",
                              [job("d-a"), job("d-b"), job("d-a")])
    assert status == 409, body
    assert body["error"]["field"] == "[2].name"
    assert "given twice" in body["error"]["message"] and "[0]" in body["error"]["message"]
    status, body = daemon.api("POST", "/api/v1/schedule",
                              [job("d-c"), job("d-taken"), job("d-d")])
    assert status == 409, body
    assert body["error"]["field"] == "[1].name"
    assert "already exists" in body["error"]["message"]
    assert not {"d-a", "d-b", "d-c", "d-d"} & names(daemon)


def test_an_empty_array_is_refused_naming_it(daemon: Daemon) -> None:
    status, body = daemon.api("POST", "/api/v1/schedule", [])
    assert status == 400, body
    assert "empty array" in body["error"]["message"]


def test_a_single_object_keeps_its_error_shape(daemon: Daemon) -> None:
    status, body = daemon.api("POST", "/api/v1/schedule", job("s-bad", cron_expr="nope"))
    assert status == 400
    assert body["error"]["field"] == "cron_expr" and "errors" not in body["error"]


def test_ten_thousand_jobs_are_created_in_one_request(daemon: Daemon) -> None:
    batch = [job(f"bulk-{i:05d}", cron_expr=f"{i % 60} {i % 24} * * *")
             for i in range(10_000)]
    status, made = daemon.api("POST", "/api/v1/schedule", batch)
    assert status == 201, str(made)[:500]
    assert len(made) == 10_000 and made[-1]["name"] == "bulk-09999"
    assert len({j["id"] for j in made}) == 10_000
    assert sum(n.startswith("bulk-") for n in names(daemon)) == 10_000


def _post(d: Daemon, body: bytes, *, tcp: bool, chunked: bool = False,
          path: str = "/api/v1/schedule") -> tuple[int, Any]:
    conn: http.client.HTTPConnection
    if tcp:
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    else:
        from tests.integration.daemon_helper import UnixHTTP
        conn = UnixHTTP(d.socket)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    try:
        if chunked:
            pieces = (body[i:i + 1000] for i in range(0, len(body), 1000))
            conn.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_batch_over_max_batch_bytes_gets_413_naming_the_key(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": AGENTS})
    d.config.write_text(d.config.read_text().replace(
        'token_file = "token"\n',
        'token_file = "token"\nmax_body_bytes = 2048\nmax_batch_bytes = 8192\n'))
    try:
        d.start()
        fits = json.dumps([job(f"f-{i}") for i in range(40)]).encode()
        assert 2048 < len(fits) < 8192
        status, made = _post(d, fits, tcp=False)
        assert status == 201 and len(made) == 40
        over = json.dumps([job(f"o-{i}") for i in range(150)]).encode()
        assert len(over) > 8192
        for tcp in (True, False):
            for chunked in (False, True):
                status, body = _post(d, over, tcp=tcp, chunked=chunked)
                assert status == 413, body
                assert body["error"]["code"] == "too_large"
                assert "[api] max_batch_bytes" in body["error"]["message"]
        # refused from the head alone: the answer comes before any body byte is sent
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.socket)
        s.settimeout(10)
        s.sendall(b"POST /api/v1/schedule HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n"
                  b"Content-Type: application/json\r\n\r\n")
        answer = b""
        while part := s.recv(4096):
            answer += part
        s.close()
        assert b" 413 " in answer.split(b"\r\n")[0] and b"max_batch_bytes" in answer
        # one object is held to max_body_bytes on that route too, and other routes are
        status, body = _post(d, json.dumps(job("big", input="x" * 3000)).encode(), tcp=True)
        assert status == 413 and "[api] max_body_bytes" in body["error"]["message"]
        status, body = _post(d, json.dumps({"input": "x" * 3000}).encode(), tcp=True,
                             path="/api/v1/schedule/f-1/run")
        assert status == 413 and "[api] max_body_bytes" in body["error"]["message"]
        assert not any(n.startswith("o-") for n in names(d))
        assert "Traceback" not in d.log.read_text()
    finally:
        d.cleanup()



def test_the_python_client_creates_a_batch_and_reads_its_refusal_by_index(
    daemon: Daemon,
) -> None:
    from symbid.client import SymbiontClient
    from symbid.errors import BatchRefused

    client = SymbiontClient(socket_path=daemon.socket)
    made = client.schedule.create_many([job("c-one"), job("c-two")])
    assert [j.name for j in made] == ["c-one", "c-two"]
    with pytest.raises(BatchRefused) as info:
        client.schedule.create_many([job("c-three"), job("c-four", timezone="No/Where"),
                                     job("c-one")])
    refused = info.value
    assert refused.field == "[1].timezone" and refused.code == "invalid_timezone"
    assert [(i, e.field, e.code) for i, e in refused.problems] == \
        [(1, "timezone", "invalid_timezone"), (2, "name", "conflict")]
    assert "c-three" not in names(daemon)
