"""Issue 11 under `pmsync run` with auto_apply, the way users run it.

The churn of test_churn.py with 5% faults, against a daemon process: after the faults stop, the
written figures come right within a poll interval plus a cycle (Jira needs its newest minute to
settle first). While Jira's write-back is slow, the other connectors keep reading: no stream's
freshness exceeds its poll interval plus one cycle (item 11); and a SIGTERM while a worker
waits for a lock ends the daemon promptly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmsync.simulators.demo import Demo
from pmsync.sync.store.store import Store, utcnow
from tests.churn import churn
from tests.daemon_helpers import DaemonProcess, wait_until
from tests.trust_support import mismatches, set_config, small_demo

POLL = 2.0  # seconds, every connector
FAULTS = (429, 500, 502, 503, "reset", "truncate")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with small_demo(tmp_path / "demo", seed=29) as launched:
        set_config(launched, "writeback", "auto_apply = true")
        text = launched.config_path.read_text()
        for name in ("salesforce", "zendesk", "jira"):
            text = text.replace(
                f"[connectors.{name}]\n", f'[connectors.{name}]\npoll_interval = "{POLL}s"\n'
            )
        # A change is searchable once its minute has settled; 0m: at the next minute.
        text = text.replace("[connectors.jira]\n", '[connectors.jira]\nsettle_lag = "0m"\n')
        text = text.replace('[log]\nlevel = "warning"', '[log]\nlevel = "info"\nformat = "json"')
        text += '\n[daemon]\nhttp_port = 0\nlease_interval = "1s"\n'
        launched.config_path.write_text(text)
        yield launched


def start(demo: Demo, log: Path) -> DaemonProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    return DaemonProcess(demo.config_path, {**env, **demo.env}, log).start()


def freshness(store: Store, connectors: tuple[str, ...]) -> float:
    """Seconds since the stalest stream of `connectors` last caught up."""
    now = utcnow()
    ages = [
        (now - state.last_success_at).total_seconds()
        for state in store.stream_states()
        if state.connector in connectors and state.last_success_at is not None
    ]
    return max(ages, default=float("inf"))


@pytest.mark.slow
def test_the_daemon_comes_right_after_churn_and_faults_and_nobody_waits_on_jira(
    demo: Demo, tmp_path: Path
) -> None:
    daemon = start(demo, tmp_path / "daemon.log")
    try:
        wait_until(lambda: not mismatches(demo), "the first fill", timeout=120, every=1)

        changed = churn(demo)
        faults = [
            sim.chaos(0.05, kinds=FAULTS, seed=n) for n, sim in enumerate(demo.simulators.all())
        ]
        jira = demo.simulators.jira
        jira.slow_answers(0.15, "/rest/api/2/issue/", "PUT")  # a long Jira write-back
        store = Store(f"sqlite:///{demo.store_path}")
        writes_before = len(jira.requests_to("/rest/api/2/issue/", "PUT"))
        stalest = 0.0
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            writing = len(jira.requests_to("/rest/api/2/issue/", "PUT")) > writes_before
            if writing:
                stalest = max(stalest, freshness(store, ("salesforce", "zendesk")))
            if not mismatches(demo):
                break
            time.sleep(0.5)
        assert sum(f.struck for f in faults) > 0
        for sim in demo.simulators.all():
            sim.clear_faults()
        jira.latencies.clear()
        wait_until(lambda: not mismatches(demo), f"figures after churn ({changed})", 120, 1)
        assert len(jira.requests_to("/rest/api/2/issue/", "PUT")) - writes_before > 20
        # Reads of the other connectors went on during Jira's write-back (item 11).
        assert stalest < POLL + 10, f"a stream went {stalest:.1f}s without catching up"

        code, seconds = daemon.terminate()
        assert code == 0
        assert seconds < 10
    finally:
        daemon.cleanup()
