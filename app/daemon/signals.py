"""Signals as requests the main loop acts on: SIGTERM/SIGINT stop, SIGHUP reloads.

Handlers only note what arrived in plain attributes; the main loop turns those into requests
(`poll`) and does the work. A handler must take no lock: it runs in the main thread between two
of its bytecodes, possibly while that thread holds the very lock (a `threading.Event`'s, held
inside its `wait` and `clear`), and would wait on itself for ever. A second SIGTERM or SIGINT
while stopping exits at once.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from pmsync.logs import get_logger

log = get_logger("pmsync.daemon")

EXIT_FORCED = 1


class SignalRequests:
    """What the signals received so far ask for."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._reload = threading.Event()
        self.stop_signal: str | None = None
        self._stop_received: str | None = None  # set by a handler, read by `poll`
        self._reload_received = False

    def install(self) -> None:
        """Route SIGTERM, SIGINT and SIGHUP here (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def take_reload(self) -> bool:
        """True once per SIGHUP received."""
        if self._reload.is_set():
            self._reload.clear()
            return True
        return False

    def request_reload(self) -> None:
        self._reload.set()
        self.wake.set()

    def request_stop(self, reason: str) -> None:
        self.stop_signal = reason
        self.stop.set()
        self.wake.set()

    def poll(self) -> None:
        """Turn the signals received since the last call into requests (the main loop calls
        this every tick; handlers never do, see the module's docstring)."""
        if self._stop_received is not None and not self.stop.is_set():
            self.request_stop(self._stop_received)
        if self._reload_received:
            self._reload_received = False
            self.request_reload()

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stop_received is not None or self.stop.is_set():
            os.write(2, f"pmsync: second {name}, exiting now\n".encode())
            os._exit(EXIT_FORCED)
        self._stop_received = name

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload_received = True
