"""Write-back and sweep state an operator sees (issue 12, item 9).

A failing sweep or write-back showed only in the log and the counters: `pmsync status` listed
every stream ok. Now each is recorded per connector and shown by `status` (table and --json)
and /readyz, and a failing sweep backs off like a failing read instead of being tried again
every cycle.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.app.daemon.leases import SingleProcessLease
from pmsync.app.daemon.metrics import Metrics
from pmsync.app.daemon.schedule import Schedule
from pmsync.app.daemon.settings import DaemonSettings
from pmsync.app.daemon.worker import ConnectorWorker, WorkerContext
from pmsync.app.daemon.writeback import auto_write_back
from pmsync.app.runtime import Runtime
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import write_config
from tests.daemon_helpers import DaemonProcess, run_cli, wait_until
from tests.trust_support import NO_MOVES, mismatches, set_config, small_demo

DELETED_USERS = "/api/v2/deleted_users"


def _sweeps(runtime: Runtime) -> dict[str, Any]:
    return {t.stream: t for t in runtime.store.task_states() if t.task == "sweep"}


def test_a_failing_sweep_backs_off_and_status_shows_it(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    extra = '[connectors.zendesk]\npoll_interval = "0.2s"\nsweep_interval = "1s"\n'
    config = write_config(tmp_path, zendesk_url=small_zendesk.base_url)
    text = config.read_text().replace("[connectors.zendesk]\n", extra, 1)
    config.write_text(text)
    small_zendesk.inject(500, path_prefix=DELETED_USERS, times=None)
    runtime = Runtime.load(str(config))
    settings = DaemonSettings(
        failure_backoff=timedelta(hours=1), max_failure_backoff=timedelta(hours=2)
    )
    context = WorkerContext(
        runtime=runtime,
        schedule=Schedule(jitter=0.0, failure_backoff=1.0, max_failure_backoff=2.0),
        leases=SingleProcessLease(None, "r1"),
        metrics=Metrics("r1", lambda: runtime.store),
        settings=settings,
        write_back=auto_write_back,
        total_connectors=lambda: 1,
        owner="r1@test:1",
    )
    worker = ConnectorWorker("zendesk", runtime.jobs(), context)
    worker.start()
    try:
        wait_until(lambda: "users" in _sweeps(runtime), "the users sweep to fail", timeout=60)
        attempts = len(small_zendesk.requests_to(DELETED_USERS))
        cycles = worker.cycles
        wait_until(lambda: worker.cycles >= cycles + 3, "three more cycles", timeout=60)
    finally:
        worker.request_stop(keep_lease=False)
        worker.join(10)
    context.metrics.close()
    sweep = _sweeps(runtime)["users"]
    runtime.close()
    assert len(small_zendesk.requests_to(DELETED_USERS)) == attempts  # not tried every cycle
    assert sweep.failures == 1
    assert sweep.last_success_at is None
    assert "500" in str(sweep.last_error)
    assert sweep.next_attempt_at is not None

    runner = CliRunner()
    shown = json.loads(runner.invoke(cli, ["-c", str(config), "status", "--json"]).stdout)
    users = next(row for row in shown if row["stream"] == "zendesk.users")
    assert users["status"] == "ok"  # the reads are fine ...
    assert users["sweep"]["failures"] == 1  # ... the sweep is not, and says so
    assert "500" in users["sweep"]["last_error"]
    assert users["writeback"] is None  # Zendesk is not written to here
    table = runner.invoke(cli, ["-c", str(config), "status"], terminal_width=200).stdout
    assert "zendesk.users sweep" in table
    assert "failing (1x)" in table
    assert "zendesk.users sweep:" in table  # its error under the table


@pytest.mark.slow
def test_a_failing_write_back_shows_in_status_and_readyz_until_it_recovers(
    tmp_path: Path,
) -> None:
    with small_demo(tmp_path / "demo", seed=29, mess=NO_MOVES) as demo:
        set_config(demo, "writeback", "auto_apply = true\nretry_attempts = 1")
        for name in ("salesforce", "zendesk", "jira"):
            set_config(demo, f"connectors.{name}", 'poll_interval = "1s"')
        set_config(demo, "connectors.jira", 'settle_lag = "0m"')
        set_config(demo, "log", 'level = "info"\nformat = "json"')
        set_config(demo, "daemon", 'http_port = 0\nlease_interval = "1s"')
        jira = demo.simulators.jira
        jira.inject(500, path_prefix="/rest/api/2/issue/", method="PUT", times=None)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        env = {**env, **demo.env}
        daemon = DaemonProcess(demo.config_path, env, tmp_path / "daemon.log").start()
        try:

            def failing() -> dict[str, Any] | None:
                tasks = daemon.ready().get("tasks", [])
                return next(
                    (t for t in tasks if t["connector"] == "jira" and t["failures"] >= 1), None
                )

            task = wait_until(failing, "a failed Jira write-back in /readyz", timeout=120)
            assert task["task"] == "writeback"
            assert "500" in task["last_error"], task
            # A cycle with nothing to write before the first failing one counts as a success.
            success = task["last_success_at"]
            assert success is None or success < task["last_attempt_at"], task

            done = run_cli(demo.config_path, env, "status", "--json")
            rows = json.loads(done.stdout)
            issues = next(row for row in rows if row["stream"].startswith("jira."))
            assert issues["status"] == "ok"
            assert issues["writeback"]["failures"] >= 1
            assert "500" in issues["writeback"]["last_error"]
            table = run_cli(demo.config_path, {**env, "COLUMNS": "200"}, "status").stdout
            assert "jira write-back" in table
            assert "failing (" in table

            jira.clear_faults()

            def recovered() -> bool:
                tasks = daemon.ready().get("tasks", [])
                return any(
                    t["connector"] == "jira" and t["failures"] == 0 and t["last_success_at"]
                    for t in tasks
                )

            wait_until(recovered, "the Jira write-back to recover", timeout=120)
            wait_until(lambda: not mismatches(demo), "the written figures", timeout=120)
            assert daemon.terminate()[0] == 0
        finally:
            daemon.cleanup()
