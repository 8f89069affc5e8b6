"""A real `symbid` process on a socket in a temporary directory, driven like an operator would."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

BIN = Path(sys.executable).parent
TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


class Daemon:
    """Owns a state dir, an agents dir, a config file and (when started) the process."""

    def __init__(self, root: Path, agents: Optional[dict[str, str]] = None,
                 config: str = "", tcp: bool = True, *, daemon: str = "",
                 runs: str = "runs") -> None:
        # Unix socket paths must be short: keep the socket in its own short directory.
        self.sockdir = tempfile.mkdtemp(prefix="sy-", dir="/tmp")
        self.root = root
        self.state = root / "state"
        self.agents_dir = root / "agents.d"
        self.agents_dir.mkdir(parents=True, exist_ok=True)
        self.socket = os.path.join(self.sockdir, "control.sock")
        self.port = free_port() if tcp else None
        (root / "token").write_text(TOKEN + "\n")
        (root / "token").chmod(0o600)  # symbid refuses a token file others may read
        listen = f'[api]\nlisten = "127.0.0.1:{self.port}"\ntoken_file = "token"\n' if tcp \
            else ""
        self.config = root / "symbid.toml"
        self.config.write_text(
            f'[daemon]\nstate_dir = "state"\nsocket = "{self.socket}"\n'
            f'agents_dir = "agents.d"\nlog_dir = "logs"\nruns_dir = "{runs}"\n{daemon}\n\n'
            f"{listen}\n"
            "[scheduler]\nshutdown_timeout_seconds = 3\nkill_grace_seconds = 1\n"
            "retry_backoff_seconds = 1\n" + config
        )
        for name, text in (agents or {}).items():
            self.write_agents(name, text)
        self.proc: Optional[subprocess.Popen[str]] = None
        self.log = root / "symbid.log"

    def write_agents(self, name: str, text: str) -> None:
        (self.agents_dir / name).write_text(text)

    # --- process -----------------------------------------------------------------------
    def start(self, *extra: str, env: Optional[dict[str, str]] = None,
              wait: bool = True) -> subprocess.Popen[str]:
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "SYMBI_API_KEY")}
        environ.update(env or {})
        self._log_fh = open(self.log, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "symbid"), "--config", str(self.config), *extra],
            stdout=self._log_fh, stderr=subprocess.STDOUT, text=True, env=environ,
        )
        if wait:
            self.wait_ready()
        return self.proc

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"symbid exited {self.proc.returncode}:\n"
                                     f"{self.log.read_text()}")
            try:
                status, _ = self.api("GET", "/api/v1/health/scheduler")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"symbid did not come up:\n{self.log.read_text()}")

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._log_fh.close()
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def cleanup(self) -> None:
        """Stop the daemon as systemd would (SIGTERM: it kills its runs' process groups),
        so that no run outlives the test; SIGKILL only if it does not stop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.sockdir, ignore_errors=True)

    # --- talking to it -----------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, *, tcp: bool = False,
            token: Optional[str] = TOKEN, raw: Optional[bytes] = None) -> tuple[int, Any]:
        if tcp:
            conn: http.client.HTTPConnection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=30)
        else:
            conn = UnixHTTP(self.socket)
        headers = {"Content-Type": "application/json"}
        if tcp and token is not None:
            headers["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (json.dumps(body).encode()
                                               if body is not None else None)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        ctype = response.getheader("Content-Type", "")
        if "json" in ctype:
            return response.status, json.loads(data)
        return response.status, data.decode()

    def cli(self, *args: str, input_text: Optional[str] = None,
            env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
        environ = dict(os.environ, SYMBI_SOCKET=self.socket, NO_COLOR="1")
        environ.update(env or {})
        return subprocess.run([str(BIN / "symbi"), *args], capture_output=True, text=True,
                              env=environ, input=input_text, timeout=60, check=False)

    def wait_for(self, what: Any, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting; log:\n{self.log.read_text()[-3000:]}")

    def history(self, job: str, limit: int = 100) -> list[dict[str, Any]]:
        status, data = self.api("GET", f"/api/v1/schedule/{job}/history?limit={limit}")
        assert status == 200, data
        return list(data)


def add_job(d: Daemon, name: str, agent: str, **fields: Any) -> dict[str, Any]:
    """Create a job of ``agent`` through the API (a yearly cron unless ``fields`` say
    otherwise); its wire form."""
    status, job = d.api("POST", "/api/v1/schedule", {"name": name, "agent_id": agent,
                                                     "cron_expr": "0 0 1 1 *", **fields})
    assert status == 201, job
    return dict(job)


def start_run(d: Daemon, name: str, **body: Any) -> str:
    """Queue a manual run of job ``name``; its id."""
    status, run = d.api("POST", f"/api/v1/schedule/{name}/run", body or None)
    assert status == 202, run
    return str(run["id"])


def final_run(d: Daemon, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The run's wire form once its final state is stored."""
    def final() -> Any:
        s, r = d.api("GET", f"/api/v1/runs/{run_id}")
        return r if s == 200 and r["status"] not in ("pending", "running") else None
    return dict(d.wait_for(final, timeout=timeout))


class NotifyReceiver:
    """The datagram socket a daemon started with ``NOTIFY_SOCKET=receiver.path`` sends its
    sd_notify messages to, collected by a thread (a context manager that closes it)."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="sy-n-", dir="/tmp")
        self.path = os.path.join(self._dir, "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.2)
        self.messages: list[str] = []
        self._closed = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                self.messages.append(self._sock.recv(65536).decode("utf-8", "replace"))
            except socket.timeout:
                continue
            except OSError:
                return

    def statuses(self, since: int = 0) -> list[str]:
        """The STATUS= values sent from message ``since`` on."""
        return [line[len("STATUS="):] for m in self.messages[since:]
                for line in m.splitlines() if line.startswith("STATUS=")]

    def wait_for_status(self, match: Callable[[str], bool], since: int = 0,
                        timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.statuses(since) if match(s)]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no such STATUS= in {timeout} s: {self.statuses(since)[-5:]}")

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=5)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> NotifyReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
