"""Metrics and the health endpoint, fed by real requests against the Zendesk simulator."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pmsync.app.daemon.health import HealthApp, HealthServer
from pmsync.app.daemon.metrics import CURRENT_CONNECTOR, Metrics, ProgressSnapshot
from pmsync.connectors.http import set_replica_tag
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import generate as generate_jira
from pmsync.simulators.zendesk import ZendeskSimulator
from pmsync.sync.engine import StreamResult
from pmsync.sync.store import store as st
from pmsync.sync.store.store import Store, utcnow
from tests.jira_support import make_connector as make_jira
from tests.jira_support import start_sim as start_jira
from tests.test_zendesk_contract import make_connector


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels."""
    text = generate_latest(metrics.registry).decode()
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    found = Metrics("r1", lambda: None)
    yield found
    found.close()


def test_progress_is_counted_page_by_page_without_double_counting(metrics: Metrics) -> None:
    result = StreamResult("zendesk", "tickets")
    snapshot = ProgressSnapshot()
    result.records_read, result.inserted = 100, 90
    metrics.progress(result, snapshot)
    result.records_read, result.inserted, result.updated, result.dead_letters = 150, 120, 5, 2
    metrics.finished(result, snapshot)
    labels = {"connector": "zendesk", "stream": "tickets"}
    assert value(metrics, "pmsync_records_read_total", **labels) == 150
    assert value(metrics, "pmsync_records_written_total", change="inserted", **labels) == 120
    assert value(metrics, "pmsync_records_written_total", change="updated", **labels) == 5
    assert value(metrics, "pmsync_dead_lettered_total", **labels) == 2
    assert value(metrics, "pmsync_stream_runs_total", status="ok", **labels) == 1
    assert value(metrics, "pmsync_writebacks_planned_total", connector="zendesk") is None
    metrics.touch_connector("zendesk")
    assert value(metrics, "pmsync_writebacks_planned_total", connector="zendesk") == 0


def test_requests_are_counted_per_connector_and_name_the_replica(
    metrics: Metrics, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    connector = make_connector(sim, zendesk_token)
    token = CURRENT_CONNECTOR.set("zendesk")
    set_replica_tag("r1")
    try:
        connector.check()
        for _page in connector.read(connector.stream("users"), None):
            pass
        sim.inject(503, path_prefix="/api/v2/users/me")
        with pytest.raises(Exception, match="503"):
            connector.check()
    finally:
        set_replica_tag(None)
        CURRENT_CONNECTOR.reset(token)
        connector.close()
    ok = [r for r in sim.requests if r.status == 200]
    assert value(metrics, "pmsync_api_requests_total", connector="zendesk", code="200") == len(ok)
    assert value(metrics, "pmsync_api_requests_total", connector="zendesk", code="503") == 1
    assert all("pmsync-replica/r1" in r.headers["user-agent"] for r in sim.requests)
    assert value(metrics, "pmsync_api_quota_limit", connector="zendesk", rule="plan") == 100_000
    used = value(metrics, "pmsync_api_quota_used", connector="zendesk", rule="plan")
    assert used == len(sim.requests)


def test_stream_state_and_dead_letters_come_from_the_store(store_url: str) -> None:
    store = Store(store_url)
    now = utcnow()
    with store.transaction() as connection:
        st.update_stream_state(
            connection, "zendesk", "tickets", status="ok", last_success_at=now, failures=0
        )
        st.update_stream_state(connection, "zendesk", "users", status="failed", failures=3)
        st.add_dead_letter(
            connection,
            connector="zendesk",
            stream="tickets",
            key="7",
            field="created_at",
            reason="not a date",
            payload="{}",
            run_id="r",
            now=now,
        )
    metrics = Metrics("r1", lambda: store)
    try:
        tickets = {"connector": "zendesk", "stream": "tickets"}
        users = {"connector": "zendesk", "stream": "users"}
        assert value(metrics, "pmsync_store_up") == 1
        stamp = value(metrics, "pmsync_stream_last_success_timestamp_seconds", **tickets)
        assert stamp == pytest.approx(now.timestamp(), abs=1e-3)
        freshness = value(metrics, "pmsync_stream_freshness_seconds", **tickets)
        assert freshness is not None
        assert 0 <= freshness < 60
        assert value(metrics, "pmsync_stream_freshness_seconds", **users) is None  # never synced
        assert value(metrics, "pmsync_stream_failing", **users) == 1
        assert value(metrics, "pmsync_stream_consecutive_failures", **users) == 3
        assert value(metrics, "pmsync_dead_letters_open", **tickets) == 1
        assert value(metrics, "pmsync_dead_letters_open", **users) == 0
    finally:
        metrics.close()
        store.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test URL
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_endpoint_serves_health_readiness_and_metrics(metrics: Metrics) -> None:
    state: dict[str, Any] = {"ready": False}
    app = HealthApp(
        metrics.registry,
        health=lambda: (True, {"main_loop": True}),
        ready=lambda: (state["ready"], {"store": state["ready"]}),
    )
    server = HealthServer(app, "127.0.0.1", 0)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = _get(f"{base}/healthz")
        assert (status, orjson.loads(body)) == (200, {"ok": True, "main_loop": True})
        assert _get(f"{base}/readyz")[0] == 503
        state["ready"] = True
        assert _get(f"{base}/readyz")[0] == 200
        status, body = _get(f"{base}/metrics")
        assert status == 200
        assert b'pmsync_build_info{replica="r1"' in body
        assert _get(f"{base}/other")[0] == 404
    finally:
        server.stop()


def test_a_request_counts_under_the_connector_that_made_it_whichever_worker_sent_it(
    metrics: Metrics, clock: FakeClock
) -> None:
    # Linking asks Jira about ticket keys from whichever worker derives: here the Zendesk one.
    sim = start_jira("cloud", clock)
    try:
        generate_jira(sim, issues=3, seed=1)
        jira = make_jira(sim, clock)
        sim.inject(500, path_prefix="/rest/api/2/issue/", times=None)
        token = CURRENT_CONNECTOR.set("zendesk")
        try:
            jira.lookup_issue_keys(["CORE-1"])
        finally:
            CURRENT_CONNECTOR.reset(token)
        assert value(metrics, "pmsync_api_requests_total", connector="jira", code="500")
        assert value(metrics, "pmsync_api_requests_total", connector="zendesk", code="500") is None
        jira.close()
    finally:
        sim.stop()
