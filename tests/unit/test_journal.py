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
        logger.propagate = True
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


def test_a_journal_that_is_not_there_drops_and_counts_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = JournalHandler(str(tmp_path / "no-journal-here"))  # journald restarting
    logger = logging.getLogger("symbid.scheduler.gone")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("one")
        logger.warning("two")
        assert handler.dropped == 2
        assert capsys.readouterr().err == ""
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


def test_a_value_cut_to_the_limit_stays_valid_utf8() -> None:
    from symbid.journal import _MAX_VALUE, encode_entry

    data = encode_entry({"MESSAGE": "a" + "ä" * _MAX_VALUE})  # the limit falls inside one
    value = data[len(b"MESSAGE="):-1]
    assert len(value) <= _MAX_VALUE
    assert value.decode("utf-8") == "a" + "ä" * ((_MAX_VALUE - 1) // 2)


def test_every_line_of_a_stderr_record_carries_its_priority() -> None:
    from symbid.journal import FieldsFormatter

    record = logging.LogRecord("symbid.api", logging.ERROR, __file__, 1, "first\nsecond",
                               None, None)
    record.SYMBID_JOB = "nightly"
    assert FieldsFormatter("%(message)s").format(record).split("\n") == \
        ["<3>first", "<3>second [job=nightly]"]


def test_stderr_is_the_journal_only_when_journal_stream_names_it(tmp_path: Path,
                                                                 monkeypatch) -> None:
    import sys

    from symbid.journal import stderr_is_journal

    with open(tmp_path / "stream", "w") as fh:
        monkeypatch.setattr(sys, "stderr", fh)
        st = os.fstat(fh.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"})
        assert not stderr_is_journal({})
