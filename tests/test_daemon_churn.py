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
from pathlib import Path

import pytest

from pmsync.simulators.company import compute_truth
from pmsync.simulators.demo import Demo
from pmsync.sync.store.store import Store, utcnow
from tests.churn import churn
from tests.daemon_helpers import DaemonProcess, wait_until
from tests.trust_support import NO_MOVES, expected_demand, mismatches, set_config, small_demo

POLL = 2.0  # seconds, every connector
FAULTS = (429, 500, 502, 503, "reset", "truncate")


def configure(demo: Demo) -> None:
    """Write-back after each cycle, short polls, Jira changes searchable at the next minute,
    the links' census every other poll."""
    set_config(demo, "writeback", "auto_apply = true")
    for name in ("salesforce", "zendesk", "jira"):
        set_config(demo, f"connectors.{name}", f'poll_interval = "{POLL}s"')
    set_config(demo, "connectors.jira", 'settle_lag = "0m"')
    # Removed links are found by the links' census, at its own cadence: here every other poll
    # (in between, a cycle reads only new links), so the churn's removed links are found in time.
    set_config(demo, "connectors.zendesk", f'links_census_interval = "{2 * POLL}s"')
    set_config(demo, "log", 'level = "info"\nformat = "json"')
    set_config(demo, "daemon", 'http_port = 0\nlease_interval = "1s"')


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
def test_reads_go_on_while_another_connector_writes_back(tmp_path: Path) -> None:
    """Item 11: Jira's write-back is slow; Salesforce and Zendesk keep catching up meanwhile."""
    with small_demo(tmp_path / "demo", seed=29, mess=NO_MOVES) as demo:
        configure(demo)
        daemon = start(demo, tmp_path / "daemon.log")
        try:
            wait_until(lambda: not mismatches(demo), "the first fill", timeout=120, every=1)
            jira = demo.simulators.jira
            jira.slow_answers(0.5, "/rest/api/2/issue/", "PUT")  # a long Jira write-back
            raise_every_arr(demo)
            store = Store(f"sqlite:///{demo.store_path}")
            before = len(jira.requests_to("/rest/api/2/issue/", "PUT"))
            stalest, writing = 0.0, 0.0
            started = time.monotonic()
            while mismatches(demo) and time.monotonic() - started < 150:
                if len(jira.requests_to("/rest/api/2/issue/", "PUT")) > before:
                    writing = writing or time.monotonic()
                    stalest = max(stalest, freshness(store, ("salesforce", "zendesk")))
                time.sleep(0.25)
            assert not mismatches(demo)
            assert time.monotonic() - writing > 15, "the Jira write-back was not long"
            assert stalest < POLL + 8, f"a stream went {stalest:.1f}s without catching up"
            code, seconds = daemon.terminate()
            assert code == 0
            assert seconds < 10
        finally:
            daemon.cleanup()


def raise_every_arr(demo: Demo) -> None:
    """Every asking account's ARR goes up: most asked-for issues get new figures."""
    salesforce = demo.simulators.salesforce
    asking = {a for d in expected_demand(demo).values() for a in d.accounts}
    for account in [a for a in demo.company.accounts if a.id in asking]:
        account.arr_field = account.arr + 1_000
        salesforce.update("Account", account.id, {"ARR__c": account.arr_field})
    demo.company.truth = compute_truth(demo.company)


@pytest.mark.slow
def test_the_daemon_comes_right_after_churn_and_faults(tmp_path: Path) -> None:
    with small_demo(tmp_path / "demo", seed=29) as demo:
        configure(demo)
        daemon = start(demo, tmp_path / "daemon.log")
        try:
            wait_until(lambda: not mismatches(demo), "the first fill", timeout=120, every=1)
            changed = churn(demo)
            faults = [
                sim.chaos(0.05, kinds=FAULTS, seed=n) for n, sim in enumerate(demo.simulators.all())
            ]
            # Two poll intervals with faults, then they stop.
            time.sleep(2 * POLL + 1)
            assert sum(f.struck for f in faults) > 0
            for sim in demo.simulators.all():
                sim.clear_faults()
            wait_until(lambda: not mismatches(demo), f"figures after churn ({changed})", 150, 1)
            code, seconds = daemon.terminate()
            assert code == 0
            assert seconds < 10
        finally:
            daemon.cleanup()
