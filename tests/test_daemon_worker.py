"""A connector worker in-process: reads, then the write-back hook, under its ownership."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pmsync.app.daemon.leases import SingleProcessLease
from pmsync.app.daemon.metrics import Metrics
from pmsync.app.daemon.schedule import Schedule
from pmsync.app.daemon.settings import DaemonSettings
from pmsync.app.daemon.worker import ConnectorWorker, WorkerContext
from pmsync.app.daemon.writeback import WriteBackReport
from pmsync.app.runtime import Runtime
from pmsync.connectors.base import Connector
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import write_config
from tests.daemon_helpers import wait_until


def test_write_back_runs_after_the_reads_with_the_same_connector(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    config = write_config(tmp_path, zendesk_url=small_zendesk.base_url)
    runtime = Runtime.load(str(config))
    leases = SingleProcessLease(None, "r1")
    metrics = Metrics("r1", lambda: runtime.store)
    calls: list[dict[str, Any]] = []

    def write_back(
        given: Runtime,
        connector: Connector,
        *,
        should_stop: Callable[[], bool],
        sleep: Callable[[float], None] = time.sleep,
    ) -> WriteBackReport:
        calls.append(
            {
                "connector": connector,
                "thread": threading.current_thread().name,
                "owned": leases.holds(connector.name),
                "stopping": should_stop(),
                "synced": {s.stream for s in runtime.store.stream_states() if s.last_success_at},
            }
        )
        return WriteBackReport(planned=3, applied=2, failed=1)

    context = WorkerContext(
        runtime=runtime,
        schedule=Schedule(jitter=0.0, failure_backoff=1.0, max_failure_backoff=2.0),
        leases=leases,
        metrics=metrics,
        settings=DaemonSettings(),
        write_back=write_back,
        total_connectors=lambda: 1,
        owner="r1@test:1",
    )
    worker = ConnectorWorker("zendesk", runtime.jobs(), context)
    worker.start()
    try:
        wait_until(lambda: calls, "the write-back hook")
    finally:
        worker.request_stop(keep_lease=False)
        worker.join(10)
    assert not worker.is_alive()
    (call,) = calls  # one cycle: the poll interval is five minutes
    assert call["connector"] is runtime.connector("zendesk")  # same session, same budget
    assert call["thread"] == "pmsync-zendesk"
    assert call["owned"]
    assert not call["stopping"]
    assert call["synced"] == {"tickets", "users", "organizations", "jira_links"}
    for name, expected in (("planned", 3), ("applied", 2), ("failed", 1)):
        sample = metrics.registry.get_sample_value(
            f"pmsync_writebacks_{name}_total", {"connector": "zendesk"}
        )
        assert sample == expected
    assert not leases.holds("zendesk")  # released when the worker stopped
    metrics.close()
    runtime.close()
