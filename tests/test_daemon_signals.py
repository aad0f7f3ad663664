"""Signal handlers take no lock: a SIGTERM that lands while the main thread holds the lock of
the daemon's wake-up event (inside its `wait` or `clear`) must not hang the daemon."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import os, signal
from pmsync.app.daemon.signals import SignalRequests
signals = SignalRequests()
signals.install()
with signals.wake._cond:  # as Event.wait and Event.clear hold it, between two bytecodes
    os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, in this thread
    os.kill(os.getpid(), signal.SIGHUP)
signals.poll()
print(signals.stop.is_set(), signals.stop_signal, signals.take_reload(), signals.take_reload())
"""


def test_a_signal_while_the_main_thread_holds_the_wake_lock_is_taken_not_hung() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "SIGTERM", "True", "False"]


def test_a_second_sigterm_before_the_first_was_taken_exits_at_once() -> None:
    probe = (
        "import os, signal, time\n"
        "from pmsync.app.daemon.signals import SignalRequests\n"
        "signals = SignalRequests()\n"
        "signals.install()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(5)\n"
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 1
    assert "second SIGTERM, exiting now" in done.stderr
    assert "still running" not in done.stdout
