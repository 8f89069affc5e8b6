"""Running runs' output, kept in the daemon as it is read, for showing while they go.

The supervisor thread feeds each run's stdout here as it reads it (only what fits
under the run's output cap, so a live output is never larger than the stored one
will be). It is decoded as UTF-8 incrementally and masked with
:class:`symbid.text.MaskStream`, so that what is shown is masked the same way as
what is stored, and never shows a secret while it is still being printed.

A live output is released once the run's final state is in the store: a reader
that sees it end can read the run's status from the store. Everything here is
thread-safe.
"""

from __future__ import annotations

import codecs
import threading
from typing import Optional

from symbid.text import MaskStream


class LiveOutput:
    """One run's output so far, as pieces of masked text (append-only)."""

    def __init__(self, secrets: list[str]) -> None:
        self._cond = threading.Condition()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._masker = MaskStream(secrets)
        self._pieces: list[str] = []
        self._exited = False
        self._ended = False

    def feed(self, data: bytes) -> None:
        """More of the run's stdout (supervisor thread)."""
        with self._cond:
            if self._exited:
                return
            self._add(self._masker.feed(self._decoder.decode(data)))

    def exited(self, *, truncated: bool) -> None:
        """The run's process is done: what is held back is given out (``truncated``: the
        output was cut at its cap, so a secret's piece at the end is masked)."""
        with self._cond:
            if self._exited:
                return
            self._exited = True
            rest = self._masker.feed(self._decoder.decode(b"", final=True))
            self._add(rest + self._masker.end(cut=truncated))

    def end(self) -> None:
        """No more output will come: readers waiting for it stop waiting."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _add(self, text: str) -> None:
        if text:
            self._pieces.append(text)
            self._cond.notify_all()

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._ended

    def text(self) -> str:
        """Everything shown so far."""
        with self._cond:
            return "".join(self._pieces)

    def read(self, cursor: int, timeout: float) -> tuple[str, int, bool]:
        """(the text after piece ``cursor``, the new cursor, whether the output has ended
        and all of it was read): waits up to ``timeout`` seconds for more."""
        with self._cond:
            if len(self._pieces) <= cursor and not self._ended:
                self._cond.wait(timeout)
            text = "".join(self._pieces[cursor:])
            cursor = len(self._pieces)
            return text, cursor, self._ended


class LiveOutputs:
    """The live outputs of the runs going, by run id."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._outputs: dict[str, LiveOutput] = {}
        self._closed = False

    def open(self, run_id: str, secrets: list[str]) -> LiveOutput:
        """A run is about to start: its output is kept from now on."""
        output = LiveOutput(secrets)
        with self._cond:
            if self._closed:
                output.end()
            else:
                self._outputs[run_id] = output
            self._cond.notify_all()
        return output

    def get(self, run_id: str) -> Optional[LiveOutput]:
        with self._cond:
            return self._outputs.get(run_id)

    def wait(self, run_id: str, timeout: float) -> Optional[LiveOutput]:
        """The run's live output, waiting up to ``timeout`` seconds for it to start."""
        with self._cond:
            if run_id not in self._outputs and not self._closed:
                self._cond.wait(timeout)
            return self._outputs.get(run_id)

    def release(self, run_id: str) -> None:
        """The run is over (its final state is stored, or it never started): its output
        is let go, and its readers see it end."""
        with self._cond:
            output = self._outputs.pop(run_id, None)
        if output is not None:
            output.end()

    def count(self) -> int:
        with self._cond:
            return len(self._outputs)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def close(self) -> None:
        """The daemon is stopping: every reader stops waiting."""
        with self._cond:
            self._closed = True
            outputs, self._outputs = list(self._outputs.values()), {}
            self._cond.notify_all()
        for output in outputs:
            output.end()
