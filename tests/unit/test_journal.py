"""The journal's native protocol on a real datagram socket: fields, components, an entry too
big for a datagram (memfd), and a journal that cannot keep up (dropped, never waited for)."""

from __future__ import annotations

import array
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbid.journal import JournalHandler, component_of


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[socket.socket, JournalHandler, logging.Logger]]:
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    handler = JournalHandler(path)
    logger = logging.getLogger("symbid.executor.test")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield sock, handler, logger
    finally:
        logger.removeHandler(handler)
        handler.close()
        sock.close()


def _fields(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            out[key.decode()] = value.decode()
            data = rest
        else:  # KEY\n<8-byte length><value>\n
            size = int.from_bytes(rest[:8], "little")
            out[line.decode()] = rest[8:8 + size].decode()
            data = rest[8 + size + 1:]
    return out


def test_every_entry_carries_its_component_and_the_job_fields(journal) -> None:
    sock, _, logger = journal
    logger.info("run %s started", "r1", extra={"SYMBID_JOB": "nightly", "SYMBID_RUN": "r1",
                                                "SYMBID_EVENT": "run_started"})
    fields = _fields(sock.recv(65536))
    assert fields["MESSAGE"] == "run r1 started"
    assert fields["PRIORITY"] == "6"
    assert fields["SYSLOG_IDENTIFIER"] == "symbid"
    assert fields["SYMBID_COMPONENT"] == "executor"
    assert (fields["SYMBID_JOB"], fields["SYMBID_RUN"], fields["SYMBID_EVENT"]) == (
        "nightly", "r1", "run_started")


def test_components_follow_the_module_that_logged() -> None:
    assert component_of("symbid.scheduler") == "scheduler"
    assert component_of("symbid.daemon") == "scheduler"
    assert component_of("symbid.delivery.webhook") == "delivery"
    assert component_of("symbid.outbox") == "delivery"
    assert component_of("symbid.policy") == "policy"
    assert component_of("symbid.agentpin") == "policy"
    assert component_of("symbid.api.native") == "api"
    assert component_of("symbid.control") == "api"
    assert component_of("symbid.store.sqlite") == "store"
    assert component_of("symbid.sandbox") == "executor"


def test_a_multi_line_value_uses_the_length_prefixed_form(journal) -> None:
    sock, _, logger = journal
    logger.warning("first line\nsecond line")
    data = sock.recv(65536)
    assert b"MESSAGE\n" in data
    assert _fields(data)["MESSAGE"] == "first line\nsecond line"


def test_an_entry_too_big_for_a_datagram_goes_as_a_sealed_memfd(journal) -> None:
    sock, _, logger = journal
    big = "x" * (900 * 1024)  # beyond the socket's largest datagram (wmem_max)
    logger.error("%s", big)
    fds = array.array("i")
    msg, ancdata, _, _ = sock.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
    assert msg == b""
    level, kind, payload = ancdata[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    fds.frombytes(payload[:fds.itemsize])
    fd = fds[0]
    try:
        import fcntl

        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        fields = _fields(os.pread(fd, 2 * len(big), 0))
    finally:
        os.close(fd)
    assert fields["MESSAGE"] == big
    assert fields["PRIORITY"] == "3"


def test_a_journal_that_cannot_keep_up_drops_and_counts_instead_of_waiting(journal) -> None:
    sock, handler, logger = journal
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    started = time.monotonic()
    for i in range(2000):  # nobody reads: the receive queue fills
        logger.info("entry %d", i)
    assert time.monotonic() - started < 30  # sanity only: a blocking send never returns
    assert handler.dropped > 0
    received = 0
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            received += 1
    except BlockingIOError:
        pass
    assert received + handler.dropped == 2000
