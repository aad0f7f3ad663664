"""Ctrl-C during a threaded apply: the caller re-raises only once every connector's thread has
stopped, so no write goes out after the CLI let go of the write-back lock."""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from pmsync.sync.writeback.apply import _run_each


@pytest.fixture
def ctrl_c_seen() -> Iterator[list[str]]:
    """SIGINT raises KeyboardInterrupt, as Python's default handler does, and notes where the
    main thread was: with the inherited handler this test failed three full parallel runs in a
    row on a fresh machine (DID NOT RAISE), never alone; the note says why if it fails again."""
    seen: list[str] = []

    def interrupt(_signum: int, frame: FrameType | None) -> None:
        seen.append("".join(traceback.format_stack(frame, limit=4)))
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    yield seen
    signal.signal(signal.SIGINT, previous)


def test_an_interrupted_apply_stops_its_threads_before_it_raises(ctrl_c_seen: list[str]) -> None:
    failed = threading.Event()
    main = threading.main_thread().ident
    assert main is not None
    writes: list[tuple[str, int]] = []

    def connector(name: str) -> Callable[[], None]:
        def write_all() -> None:
            for number in range(200):
                if failed.is_set():
                    return
                writes.append((name, number))
                time.sleep(0.01)
                if name == "jira" and number == 5:
                    signal.pthread_kill(main, signal.SIGINT)  # the user presses Ctrl-C

        return write_all

    try:
        _run_each({"jira": connector("jira"), "salesforce": connector("salesforce")}, failed)
    except KeyboardInterrupt:
        pass
    else:
        pytest.fail(f"no KeyboardInterrupt; the handler ran where: {ctrl_c_seen}")
    written = len(writes)
    time.sleep(0.2)
    assert len(writes) == written  # nothing written after the caller got the interrupt
    assert written < 100  # and the threads stopped early instead of finishing their writes
    assert not any(thread.name.startswith("pmsync-apply-") for thread in threading.enumerate())
