"""Ctrl-C during a threaded apply: the caller re-raises only once every connector's thread has
stopped, so no write goes out after the CLI let go of the write-back lock."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

from pmsync.sync.writeback.apply import _run_each


def test_an_interrupted_apply_stops_its_threads_before_it_raises() -> None:
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
                    # The user presses Ctrl-C. Sent to the main thread itself: a SIGINT the
                    # kernel hands to another thread reaches Python's handler only when the
                    # main thread next looks, which a full suite's worker delayed past the
                    # writes (twice in a row, with no handler changed).
                    signal.pthread_kill(main, signal.SIGINT)

        return write_all

    with pytest.raises(KeyboardInterrupt):
        _run_each({"jira": connector("jira"), "salesforce": connector("salesforce")}, failed)
    written = len(writes)
    time.sleep(0.2)
    assert len(writes) == written  # nothing written after the caller got the interrupt
    assert written < 100  # and the threads stopped early instead of finishing their writes
    assert not any(thread.name.startswith("pmsync-apply-") for thread in threading.enumerate())
