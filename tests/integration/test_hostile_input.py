"""Untrusted input never breaks the daemon: every row of issue 8's table, against a real
daemon, over TCP (with the token) and over the Unix socket.

Timings are printed (``-s``), never asserted.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import select
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.integration.daemon_helper import BIN, TOKEN, Daemon, UnixHTTP

AGENTS = 'agent echo { command: ["/bin/sh", "-c", "echo started; cat"] }\n'
TRANSPORTS = ["tcp", "unix"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("hostile"), {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def call(d: Daemon, transport: str, method: str, path: str, body: Any = None, *,
         raw: Optional[bytes] = None) -> tuple[int, Any]:
    return d.api(method, path, body, tcp=transport == "tcp", raw=raw)


def create(d: Daemon, transport: str, **fields: Any) -> tuple[int, Any]:
    body = {"agent_id": "echo", "cron_expr": "0 * * * *", **fields}
    return call(d, transport, "POST", "/api/v1/schedule", body)


def with_api_settings(root: Path, lines: str) -> Daemon:
    """A TCP daemon (not started) whose [api] table has these lines too."""
    d = Daemon(root, {"a.symbi": AGENTS})
    d.config.write_text(d.config.read_text().replace(
        'token_file = "token"\n', f'token_file = "token"\n{lines}'))
    return d


def no_traceback(d: Daemon) -> None:
    log = d.log.read_text()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]


def raw_tcp(d: Daemon, data: bytes, wait: float = 2.0) -> bytes:
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(data)
    s.settimeout(wait)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


# --- JSON bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_deep_json_is_a_400_that_names_the_limit(daemon: Daemon, transport: str) -> None:
    status, body = call(daemon, transport, "POST", "/api/v1/schedule", raw=b"[" * 200_000)
    assert status == 400 and "64 levels" in body["error"]["message"]
    no_traceback(daemon)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("field", ["name", "input"])
def test_a_lone_surrogate_is_a_400_naming_the_field(
    daemon: Daemon, transport: str, field: str
) -> None:
    body = {"name": f"sur-{field}-{transport}", "agent_id": "echo", "cron_expr": "0 * * * *",
            field: "a\ud800b"}
    raw = json.dumps(body).encode()  # json escapes it as \ud800: valid JSON, not text
    status, answer = call(daemon, transport, "POST", "/api/v1/schedule", raw=raw)
    assert status == 400 and answer["error"]["field"] == field
    assert call(daemon, transport, "GET", "/api/v1/schedule")[0] == 200


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("at", "tz", "words"), [
    ("2026-01-01T00:00:00+25:00", "UTC", "offset"),
    ("9999-12-31T23:30:00", "America/Los_Angeles", "out of range"),
])
def test_an_at_out_of_range_or_with_a_bad_offset_is_a_400(
    daemon: Daemon, transport: str, at: str, tz: str, words: str
) -> None:
    status, body = call(daemon, transport, "POST", "/api/v1/schedule",
                        {"name": "far", "agent_id": "echo", "at": at, "timezone": tz})
    assert status == 400 and body["error"]["field"] == "at" and words in body["error"]["message"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("field", "value"), [
    ("max_retries", 10**30), ("max_concurrent", 2**63), ("jitter_seconds", 86_401),
    ("catch_up_limit", 10**9), ("cron_expr", "0 " * 300_000 + "* * * *"),
])
def test_values_past_their_documented_maximum_are_a_400(
    daemon: Daemon, transport: str, field: str, value: Any
) -> None:
    status, body = create(daemon, transport, name=f"big-{field}", **{field: value})
    assert status == 400 and body["error"]["field"] == field, body
    assert "at most" in body["error"]["message"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_numbers_are_a_400(daemon: Daemon, transport: str, constant: bytes) -> None:
    raw = (b'{"name": "nan", "agent_id": "echo", "cron_expr": "0 * * * *", '
           b'"jitter_seconds": ' + constant + b"}")
    status, body = call(daemon, transport, "POST", "/api/v1/schedule", raw=raw)
    assert status == 400 and "not a JSON number" in body["error"]["message"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_duplicate_json_keys_are_a_400(daemon: Daemon, transport: str) -> None:
    raw = b'{"name": "dup", "name": "dup2", "agent_id": "echo", "cron_expr": "0 * * * *"}'
    status, body = call(daemon, transport, "POST", "/api/v1/schedule", raw=raw)
    assert status == 400 and body["error"]["field"] == "name"
    assert "given twice" in body["error"]["message"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", ["team/report", "line\nbreak", "\x1b[31mred", "../../etc/passwd",
                                  "x" * 100_000, "a\u202eb", "nul\x00", "deadbeef-0000"])
def test_names_that_break_the_rule_are_refused(daemon: Daemon, transport: str, name: str) -> None:
    status, body = create(daemon, transport, name=name)
    assert status == 400 and body["error"]["field"] == "name", body
    assert "\n" not in body["error"]["message"] and "\x1b" not in body["error"]["message"]


# --- the TCP listener ------------------------------------------------------------------


def test_a_huge_body_without_a_token_is_refused_from_its_headers(daemon: Daemon) -> None:
    s = socket.create_connection(("127.0.0.1", daemon.port))
    started = time.monotonic()
    s.sendall(b"POST /api/v1/schedule HTTP/1.1\r\nHost: x\r\nContent-Length: 80000000\r\n\r\n")
    s.settimeout(5)
    head = s.recv(200)
    took = time.monotonic() - started
    s.close()
    assert head.split(b" ")[1] in (b"401", b"413"), head
    print(f"\n80 MB body, no token: {head.split(b' ')[1].decode()} after {took * 1000:.1f} ms, "
          "before a byte of the body was sent")


def test_content_length_with_transfer_encoding_is_a_400_and_nothing_after_it(
    daemon: Daemon,
) -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    smuggled = (b"POST /api/v1/schedule HTTP/1.1\r\nHost: x\r\n" + auth +
                b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                b"GET /api/v1/health/scheduler HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    answer = raw_tcp(daemon, smuggled)
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer
    assert answer.count(b"HTTP/1.") == 1  # the smuggled GET got no answer
    assert b"healthy" not in answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_head_sends_the_headers_only(daemon: Daemon, transport: str) -> None:
    if transport == "tcp":
        answer = raw_tcp(daemon, b"HEAD /api/v1/health/scheduler HTTP/1.1\r\nHost: x\r\n"
                                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n", 1)
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.socket)
        s.sendall(b"HEAD /api/v1/health/scheduler HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(1)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except socket.timeout:
            pass
        s.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
    assert body == b""


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(daemon: Daemon, scheme: str) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    conn.request("GET", "/api/v1/health/scheduler",
                 headers={"Authorization": f"{scheme} {TOKEN}"})
    assert conn.getresponse().status == 200
    conn.close()


def test_a_thousand_slow_clients_do_not_keep_an_authorised_probe_out(daemon: Daemon) -> None:
    import http.client

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    slow: list[socket.socket] = []
    started = time.monotonic()
    try:
        for _ in range(1000):  # loopback only; no token; a header line every 5 s
            s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
            s.sendall(b"GET /api/v1/health/scheduler HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        opened = time.monotonic() - started
        latencies = []
        for round_ in range(3):
            t = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=5)
            conn.request("GET", "/api/v1/health/scheduler",
                         headers={"Authorization": f"Bearer {TOKEN}"})
            status = conn.getresponse().status
            conn.close()
            latencies.append(time.monotonic() - t)
            assert status == 200
            for s in slow:
                try:
                    s.sendall(f"X-Slow-{round_}: still here\r\n".encode())
                except OSError:
                    pass  # closed by the head deadline: that is the point
            time.sleep(5)
        print(f"\n1000 slow clients opened in {opened:.1f} s; authorised probe answered in "
              + ", ".join(f"{x * 1000:.0f} ms" for x in latencies))
    finally:
        for s in slow:
            s.close()


# --- the DSL ---------------------------------------------------------------------------


def test_a_file_nested_100000_deep_is_refused_with_bounded_work(tmp_path: Path) -> None:
    path = tmp_path / "deep.symbi"
    path.write_text("schedule s { input: " + "[" * 100_000 + "]" * 100_000 + " }\n")
    started = time.monotonic()
    out = subprocess.run([str(BIN / "symbi"), "dsl", "check", str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    took = time.monotonic() - started
    assert out.returncode == 1 and "nested more than" in out.stderr
    assert max(len(line) for line in out.stderr.splitlines()) <= 200
    print(f"\nDSL nested 100,000 deep: refused in {took:.2f} s (the whole symbi process)")


def test_a_file_starting_with_a_byte_order_mark_is_loaded(daemon: Daemon) -> None:
    daemon.write_agents("bom.symbi", "\ufeffagent bommed { command: [\"/bin/true\"] }\n"
                                     'schedule { name: "bom-job", agent: bommed, '
                                     'cron: "0 * * * *" }\n')
    result = daemon.cli("reload", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "bom-job" in json.loads(result.stdout)["created"]


# --- what reaches logs, tables and terminals ------------------------------------------------


def test_an_agent_cannot_forge_log_lines_or_drive_the_terminal(daemon: Daemon) -> None:
    daemon.write_agents("forger.symbi", 'agent forger { command: ["/bin/sh", "-c", '
                        '"printf \'oops\\\\nINFO fake log created\\\\n\\\\033[31mred\' >&2; '
                        'exit 1"] }\n')
    assert daemon.cli("reload").returncode == 0
    status, job = daemon.api("POST", "/api/v1/schedule", {
        "name": "forged", "agent_id": "forger", "cron_expr": "0 0 1 1 *", "max_retries": 0})
    assert status == 201, job
    daemon.api("POST", "/api/v1/schedule/forged/run")
    daemon.wait_for(lambda: any(r["status"] == "failed" for r in daemon.history("forged")))
    log = daemon.log.read_text()
    assert "\nINFO fake log created" not in log and "\x1b[31m" not in log
    assert "INFO fake log created" in log  # it is there, escaped on its own line
    table = daemon.cli("cron", "history", "forged")
    assert "\x1b" not in table.stdout and "\\x1b" in table.stdout


def test_resolved_secrets_are_masked_wherever_the_run_is_shown(tmp_path: Path) -> None:
    secret = "s3cr3t-value-0123456789"
    d = Daemon(tmp_path, {"a.symbi": 'agent leak { command: ["/bin/sh", "-c", '
                                      '"echo token=$TOKEN; echo err $TOKEN >&2; exit 1"], '
                                      'env: { TOKEN: "${LEAKED}" } }\n'})
    try:
        d.start(env={"LEAKED": secret})
        d.api("POST", "/api/v1/schedule", {"name": "leaky", "agent_id": "leak",
                                           "cron_expr": "0 0 1 1 *", "max_retries": 0})
        _, run = d.api("POST", "/api/v1/schedule/leaky/run")
        d.wait_for(lambda: d.api("GET", f"/api/v1/runs/{run['id']}")[1]["status"] == "failed")
        full = d.api("GET", f"/api/v1/runs/{run['id']}")[1]
        assert full["output"] == "token=***\n" and "***" in full["error_message"]
        shown = [json.dumps(full), json.dumps(d.history("leaky")), d.log.read_text(),
                 d.cli("cron", "history", "leaky").stdout]
        d.stop()
        stored = b"".join(p.read_bytes() for p in d.state.glob("symbid.db*"))
        assert not any(secret in text for text in shown)
        assert secret.encode() not in stored  # not in the database, nor in its WAL
    finally:
        d.cleanup()


# --- files and permissions -------------------------------------------------------------------


def test_the_database_is_private_whatever_the_umask(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": AGENTS})
    old = os.umask(0)
    try:
        d.start()
    finally:
        os.umask(old)
    try:
        d.api("POST", "/api/v1/schedule", {"name": "w", "agent_id": "echo",
                                           "cron_expr": "0 * * * *"})
        for name in ("symbid.db", "symbid.db-wal", "symbid.db-shm"):
            mode = stat.S_IMODE(os.stat(d.state / name).st_mode)
            assert mode == 0o600, (name, oct(mode))
        assert stat.S_IMODE(os.stat(d.state).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o660
    finally:
        d.cleanup()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_a_run_as_another_user_can_use_its_tmpdir_home_and_working_directory(
    tmp_path: Path,
) -> None:
    runs_root = Path(tempfile.mkdtemp(prefix="sy-runs-", dir="/tmp"))
    os.chmod(runs_root, 0o711)
    agents = ('agent nob { command: ["/bin/sh", "-c", "echo x > \\"$TMPDIR/x\\" && '
              'echo y > \\"$HOME/y\\" && echo z > z && id -un"], user: "nobody" }\n')
    d = Daemon(tmp_path, {"a.symbi": agents})
    d.config.write_text(d.config.read_text().replace(  # parents missing: made 0711 too
        'runs_dir = "runs"\n', f'runs_dir = "{runs_root}/a/b/runs"\n'))
    try:
        d.start()
        d.api("POST", "/api/v1/schedule", {"name": "as-nobody", "agent_id": "nob",
                                           "cron_expr": "0 0 1 1 *", "max_retries": 0})
        _, run = d.api("POST", "/api/v1/schedule/as-nobody/run")
        done = d.wait_for(lambda: (r := d.api("GET", f"/api/v1/runs/{run['id']}")[1])
                          ["status"] not in ("pending", "running") and r)
        assert (done["status"], done["output"]) == ("succeeded", "nobody\n"), done
        for part in ("a", "a/b", "a/b/runs"):
            assert stat.S_IMODE(os.stat(runs_root / part).st_mode) == 0o711, part
        assert stat.S_IMODE(os.stat(d.state).st_mode) == 0o700
    finally:
        d.cleanup()
        subprocess.run(["rm", "-rf", str(runs_root)], check=False)


# --- big outputs and body limits -------------------------------------------------------------


def test_listings_carry_a_preview_and_the_run_has_the_whole_output(daemon: Daemon) -> None:
    big = "x" * 300_000
    status, run = daemon.api("POST", "/api/v1/schedule", {
        "name": "bigout", "agent_id": "echo", "cron_expr": "0 0 1 1 *", "input": big})
    assert status == 201
    _, run = daemon.api("POST", "/api/v1/schedule/bigout/run")
    daemon.wait_for(lambda: daemon.api("GET", f"/api/v1/runs/{run['id']}")[1]["status"]
                    == "succeeded")
    (row,) = daemon.history("bigout")
    assert "output" not in row and len(row["output_preview"]) == 200
    assert row["output_bytes"] == len("started\n") + len(big)
    full = daemon.api("GET", f"/api/v1/runs/{run['id']}")[1]
    assert full["output"] == "started\n" + big


def test_the_body_cap_is_configurable(tmp_path: Path) -> None:
    d = with_api_settings(tmp_path, "max_body_bytes = 2048\n")
    try:
        d.start()
        status, body = create(d, "unix", name="fits", input="a" * 1000)
        assert status == 201, body
        for transport in TRANSPORTS:
            status, _ = create(d, transport, name="too-big", input="a" * 4000)
            assert status == 413
    finally:
        d.cleanup()


# --- names stored before the rule ------------------------------------------------------------


def test_names_stored_before_the_rule_keep_working_and_are_listed_at_start(
    tmp_path: Path,
) -> None:
    import sqlite3

    d = Daemon(tmp_path, {"a.symbi": AGENTS})
    try:
        d.start()
        assert create(d, "unix", name="old-style")[0] == 201
        d.stop()
        conn = sqlite3.connect(str(d.state / "symbid.db"))
        with conn:
            conn.execute("UPDATE jobs SET name = 'old style' WHERE name = 'old-style'")
        conn.close()
        d.start()
        assert "job name 'old style' contains ' '" in d.log.read_text()
        status, job = d.api("GET", "/api/v1/schedule/old%20style")
        assert status == 200 and job["name"] == "old style"
        assert d.api("POST", "/api/v1/schedule/old%20style/pause")[0] == 200
    finally:
        d.cleanup()


# --- review fixes ------------------------------------------------------------------------------


def test_a_client_that_sends_a_partial_head_or_nothing_is_closed_at_the_deadline(
    tmp_path: Path,
) -> None:
    d = with_api_settings(tmp_path, "head_timeout_seconds = 1\n")
    try:
        d.start()
        silent = socket.create_connection(("127.0.0.1", d.port))
        partial = socket.create_connection(("127.0.0.1", d.port))
        partial.sendall(b"GET /api/v1/health/scheduler HTTP/1.1\r\nHost: x\r\n")
        trickle = socket.create_connection(("127.0.0.1", d.port))
        blank = socket.create_connection(("127.0.0.1", d.port))  # empty "requests" forever
        started = time.monotonic()
        closed: dict[str, float] = {}
        clients = (("silent", silent), ("partial", partial), ("trickle", trickle),
                   ("blank", blank))
        while len(closed) < len(clients) and time.monotonic() - started < 10:
            for name, s in clients:
                if name in closed:
                    continue
                if name in ("trickle", "blank"):
                    try:
                        s.sendall(b"X" if name == "trickle" else b"\r\n\r\n")
                    except OSError:
                        closed[name] = time.monotonic() - started
                        continue
                s.settimeout(0.05)
                try:
                    if s.recv(1) == b"":
                        closed[name] = time.monotonic() - started
                except socket.timeout:
                    pass
                except OSError:
                    closed[name] = time.monotonic() - started
            time.sleep(0.1)
        assert set(closed) == {"silent", "partial", "trickle", "blank"}, closed
        assert all(t < 5 for t in closed.values()), closed
        print("\nhead deadline 1 s: closed after " +
              ", ".join(f"{k} {v:.1f} s" for k, v in sorted(closed.items())))
        status, _ = d.api("GET", "/api/v1/health/scheduler", tcp=True)
        assert status == 200
    finally:
        d.cleanup()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_unicode_name_is_addressable_by_name(daemon: Daemon, transport: str) -> None:
    from urllib.parse import quote

    name = f"café-報告-{transport}"
    assert create(daemon, transport, name=name)[0] == 201
    status, job = call(daemon, transport, "GET", f"/api/v1/schedule/{quote(name)}")
    assert status == 200 and job["name"] == name
    shown = daemon.cli("cron", "status", "--name", name)
    assert shown.returncode == 0 and name in shown.stdout


def test_cron_next_at_the_end_of_the_calendar_is_one_line_and_counts_are_capped() -> None:
    for args in (["--from", "9999-12-31T23:59:00Z"], ["--count", "1001"]):
        out = subprocess.run([str(BIN / "symbi"), "cron", "next", "* * * * *", *args],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 1 and len(out.stderr.splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_history_rows_carry_previews_of_input_too(daemon: Daemon) -> None:
    assert daemon.api("POST", "/api/v1/schedule", {
        "name": "biginput", "agent_id": "echo", "cron_expr": "0 0 1 1 *",
        "input": "i" * 5000})[0] == 201
    _, run = daemon.api("POST", "/api/v1/schedule/biginput/run")
    daemon.wait_for(lambda: daemon.api("GET", f"/api/v1/runs/{run['id']}")[1]["status"]
                    == "succeeded")
    (row,) = daemon.history("biginput")
    assert "input" not in row and row["input_preview"] == "i" * 200
    assert daemon.api("GET", f"/api/v1/runs/{run['id']}")[1]["input"] == "i" * 5000


def test_names_in_files_from_before_the_rule_keep_working(tmp_path: Path) -> None:
    import sqlite3

    d = Daemon(tmp_path, {"a.symbi": 'agent "old agent" { command: ["/bin/echo", "hi"] }\n'
                                     'agent fresh { command: ["/bin/true"] }\n'})
    try:
        d.start()  # the old name is refused: the file does not load
        assert "names take letters" in d.log.read_text()
        d.stop()
        conn = sqlite3.connect(str(d.state / "symbid.db"))  # as an older symbid stored it
        with conn:
            conn.execute(
                "INSERT INTO jobs (id, name, agent_id, cron_expr, timezone, status, "
                "definition, next_run, created_at, updated_at) VALUES ('j-old', 'uses-old', "
                "'old agent', '0 0 1 1 *', 'UTC', 'active', ?, NULL, 0, 0)",
                (json.dumps({"session_mode": "ephemeral_with_summary",
                             "heartbeat": {"enabled": False,
                                           "context_mode": "ephemeral_with_summary",
                                           "max_iterations": 100},
                             "delivery": [], "delivery_config": {}, "policy": {},
                             "max_concurrent": 1, "max_retries": 0, "jitter_seconds": None,
                             "catch_up": "latest", "catch_up_limit": 100, "input": None,
                             "agent_pin_jwt": None}),))
        conn.close()
        d.start()
        assert "it keeps working because it is already in use" in d.log.read_text()
        _, run = d.api("POST", "/api/v1/schedule/uses-old/run")
        done = d.wait_for(lambda: (r := d.api("GET", f"/api/v1/runs/{run['id']}")[1])
                          ["status"] not in ("pending", "running") and r)
        assert (done["status"], done["output"]) == ("succeeded", "hi\n")
    finally:
        d.cleanup()


def test_a_database_left_readable_by_an_older_symbid_is_made_private(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": AGENTS})
    try:
        d.start()
        d.stop()
        os.chmod(d.state, 0o755)
        os.chmod(d.state / "symbid.db", 0o644)
        d.start()
        assert stat.S_IMODE(os.stat(d.state).st_mode) == 0o700
        for name in ("symbid.db", "symbid.db-wal", "symbid.db-shm"):
            if (d.state / name).exists():
                assert stat.S_IMODE(os.stat(d.state / name).st_mode) == 0o600, name
    finally:
        d.cleanup()


def test_a_chunked_body_past_the_cap_and_a_tokenless_body_get_json_errors(
    daemon: Daemon,
) -> None:
    chunk = b"a" * 65536
    s = socket.create_connection(("127.0.0.1", daemon.port))
    # (a route of the 1 MiB cap: POST /api/v1/schedule takes a batch, up to 16 MiB)
    s.sendall(b"PUT /api/v1/schedule/some-job HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    answer = b""
    for _ in range(20):  # up to 1.3 MB in chunks: past the 1 MiB cap
        try:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            break
        # read the answer as soon as it comes: sending on after the daemon closed would
        # make the kernel reset the connection and drop it
        if select.select([s], [], [], 0.1)[0]:
            break
    s.settimeout(5)
    try:
        while part := s.recv(65536):
            answer += part
    except OSError:
        pass
    s.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 413 " in head.split(b"\r\n")[0] and json.loads(body)["error"]["code"] == "too_large"
    s = socket.create_connection(("127.0.0.1", daemon.port))
    s.sendall(b"POST /api/v1/schedule HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
    s.settimeout(5)
    first = b""
    while part := s.recv(4096):  # answered, and closed, before any body byte was sent
        first += part
    s.close()
    head, _, body = first.partition(b"\r\n\r\n")
    assert b" 401 " in head.split(b"\r\n")[0] and b"www-authenticate" in head.lower()
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_a_client_answered_413_before_it_sent_its_body_can_still_send_it(
    daemon: Daemon,
) -> None:
    # the order of the CI failure on the Unix socket: the daemon refuses from the head and
    # answers before the body is sent; the client's send must not be met by a closed socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(daemon.socket))
    s.settimeout(5)
    s.sendall(b"PUT /api/v1/schedule/some-job HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 2000000\r\n\r\n")  # past the 1 MiB cap of that route
    answer = b""
    while part := s.recv(4096):  # to the end: the daemon has finished answering
        answer += part
    assert b" 413 " in answer.split(b"\r\n")[0]
    s.sendall(b"a" * 2_000_000)  # the daemon lingers: read and discarded, not a broken pipe
    s.close()


def test_a_tokenless_request_expecting_100_continue_is_refused_not_invited(
    daemon: Daemon,
) -> None:
    s = socket.create_connection(("127.0.0.1", daemon.port))
    s.settimeout(5)
    s.sendall(b"POST /api/v1/schedule HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n"
              b"Expect: 100-continue\r\n\r\n")
    answer = b""
    while part := s.recv(4096):
        answer += part
    s.close()
    assert answer.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in answer


def test_a_tokenless_head_gets_headers_only(daemon: Daemon) -> None:
    answer = raw_tcp(daemon, b"HEAD /api/v1/schedule HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 401 " in head.split(b"\r\n")[0] and body == b""


def test_a_keep_alive_client_idle_between_requests_is_not_cut_by_the_head_deadline(
    tmp_path: Path,
) -> None:
    d = with_api_settings(tmp_path, "head_timeout_seconds = 1\n")
    try:
        d.start()
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(2):
            conn.request("GET", "/api/v1/health/scheduler", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            time.sleep(1.6)  # longer than the head deadline, between requests
        conn.close()
    finally:
        d.cleanup()


def test_the_dialect_refuses_to_make_a_one_shot_recurring_without_a_cron(daemon: Daemon) -> None:
    status, made = daemon.api("POST", "/symbiont/api/v1/schedules", {
        "name": "dialect-once", "cron_expression": "0 9 * * *", "agent_name": "echo",
        "one_shot": True})
    assert status in (200, 201), made
    status, body = daemon.api("PUT", f"/symbiont/api/v1/schedules/{made['job_id']}",
                              {"one_shot": False})
    assert status == 400 and "one_shot" in body["error"]["message"]
    status, body = daemon.api("PUT", f"/symbiont/api/v1/schedules/{made['job_id']}",
                              {"one_shot": False, "cron_expression": "0 10 * * *"})
    assert status == 200, body


def test_a_huge_reference_is_not_echoed_back(daemon: Daemon) -> None:
    ref = "a" * 200_000
    for path in (f"/api/v1/schedule/{ref}", f"/api/v1/runs/{ref}", f"/api/v1/agents/{ref}"):
        status, body = daemon.api("GET", path)
        assert status == 404 and len(body["error"]["message"]) < 400, path


def test_unknown_query_parameters_are_refused_naming_them(daemon: Daemon) -> None:
    for path in ("/api/v1/schedule?stauts=active", "/api/v1/agents?x=1",
                 "/api/v1/health/scheduler?verbose=1"):
        status, body = daemon.api("GET", path)
        assert status == 400 and "unknown query parameter" in body["error"]["message"], path
    assert daemon.api("GET", "/api/v1/schedule?status=active&agent_id=echo")[0] == 200


# --- found by schemathesis -------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_405_says_in_allow_which_methods_the_route_takes(daemon: Daemon,
                                                           transport: str) -> None:
    conn: http.client.HTTPConnection = http.client.HTTPConnection(
        "127.0.0.1", daemon.port, timeout=30) if transport == "tcp" else UnixHTTP(daemon.socket)
    try:
        conn.request("TRACE", "/api/v1/agents", headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert (response.status, body["error"]["code"]) == (405, "method_not_allowed")
    assert response.getheader("Allow") == "GET, POST, HEAD"


@pytest.mark.parametrize("query", ["count=2&count=3", "count=&count=2", "limit=5&limit=5"])
def test_a_query_parameter_given_twice_is_refused_naming_it(daemon: Daemon, query: str) -> None:
    assert create(daemon, "unix", name="twice")[0] in (201, 409)
    name = query.split("=", 1)[0]
    path = "next_run" if name == "count" else "history"
    status, body = daemon.api("GET", f"/api/v1/schedule/twice/{path}?{query}")
    assert status == 400 and body["error"]["field"] == name, body
    assert "given 2 times" in body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/schedule/empty/next_run?count=",
                                  "/api/v1/schedule/empty/history?limit=",
                                  "/api/v1/schedule/empty/history?status=",
                                  "/api/v1/schedule?status=", "/api/v1/schedule?agent_id=",
                                  "/api/v1/audit?limit="])
def test_an_empty_query_parameter_is_refused_not_taken_for_its_default(daemon: Daemon,
                                                                       path: str) -> None:
    assert create(daemon, "unix", name="empty")[0] in (201, 409)
    status, body = daemon.api("GET", path)
    name = path.rsplit("?", 1)[1].rstrip("=")
    assert status == 400 and body["error"]["field"] == name, (path, body)


def test_a_json_null_body_is_refused_where_an_object_or_nothing_is_taken(daemon: Daemon) -> None:
    assert create(daemon, "unix", name="nullbody")[0] in (201, 409)
    for path in ("/api/v1/schedule/nullbody/run", "/api/v1/agents/echo/run"):
        status, body = daemon.api("POST", path, raw=b"null")
        assert (status, body["error"]["code"]) == (400, "invalid_json"), (path, body)
        assert daemon.api("POST", path, raw=b"")[0] == 202, path
