"""Incremental reads of Jira issues: zone safety, tied minutes, eventual consistency, paging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pmsync.connectors.jira import IssueCursor
from pmsync.connectors.jira.errors import rate_limit_reset_seconds
from pmsync.errors import AuthError, RetriableError
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import Deployment, JiraSimulator, generate
from pmsync.sync.engine import StreamResult, SyncEngine
from pmsync.sync.store.store import Store
from tests.conftest import START
from tests.jira_support import (
    default_mapping,
    engine_and_store,
    make_connector,
    search_requests,
    start_sim,
)


def _total(results: list[StreamResult], attribute: str) -> int:
    return sum(int(getattr(r, attribute)) for r in results)


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Kolkata"])
def test_updates_in_one_minute_across_pages_are_stored_exactly_once(
    jira_deployment: Deployment, zone: str, clock: FakeClock, store_url: str
) -> None:
    """API user in UTC-8 / UTC+5:30; 500 issues updated in one minute, pages of 100."""
    sim = start_sim(jira_deployment, clock, time_zone=zone)
    try:
        issues = generate(sim, issues=700, seed=21)
        connector = make_connector(sim, clock, page_size=100)
        store = Store(store_url)
        engine = SyncEngine(store, run_id="test", sleep=lambda _s: None)
        mapping = default_mapping()
        spec = connector.stream("issues")
        assert engine.sync_stream(connector, spec, mapping).inserted == 700

        before, tied, after = issues[:30], issues[30:530], issues[530:550]
        minute = START + 120  # 18:02:00 UTC: 10:02 in Los Angeles, 23:32 in Kolkata
        for n, issue in enumerate(before):
            sim.update_issue(issue["id"], {"summary": f"v2 {issue['key']}"}, at=minute - 30 + n)
        for n, issue in enumerate(tied):
            sim.update_issue(issue["id"], {"summary": f"v2 {issue['key']}"}, at=minute + n * 0.1)
        for n, issue in enumerate(after):
            sim.update_issue(issue["id"], {"summary": f"v2 {issue['key']}"}, at=minute + 70 + n)

        # A failure in the middle of the big pass: the engine resumes from the committed page.
        faults: list[object] = []

        def fail_once(result: StreamResult) -> None:
            if result.pages == 2 and not faults:
                faults.append(sim.inject(503, path_prefix="/rest/api/2/search", times=1))

        engine.on_page = fail_once
        results = []
        for moment in (minute + 90, minute + 180, minute + 400, minute + 900):
            clock.now = moment
            results.append(engine.sync_stream(connector, spec, mapping))
        assert all(r.status == "ok" for r in results), [r.error for r in results]
        assert faults, "the pass was not interrupted"
        assert _total(results, "retries") == 1
        assert _total(results, "updated") == 550  # every update stored once
        assert _total(results, "inserted") == 0
        stored = {r.key: r for r in store.iter_records(connector="jira", stream="issues")}
        changed = before + tied + after
        for issue in changed:
            assert stored[issue["id"]].raw["summary"] == f"v2 {issue['key']}"
        for issue in issues[550:]:
            assert not stored[issue["id"]].raw["summary"].startswith("v2")
        for request in search_requests(sim):
            assert '"' not in str(request.query.get("jql", "")).replace('"CORE"', "").replace(
                '"MOBILE"', ""
            ).replace('"DATA"', ""), "dates must be sent as epoch ms, never as literals"
        store.close()
    finally:
        sim.stop()


def test_first_cycle_and_no_change_cycles_cost_what_they_should(
    jira_deployment: Deployment, clock: FakeClock, tmp_path: Path
) -> None:
    sim = start_sim(jira_deployment, clock)
    try:
        generate(sim, issues=200, seed=2)
        connector = make_connector(sim, clock, page_size=100)
        engine, store = engine_and_store(tmp_path)
        mapping, spec = default_mapping(), connector.stream("issues")
        sim.reset_log()
        assert engine.sync_stream(connector, spec, mapping).inserted == 200
        paths = [r.path.rsplit("/", 1)[-1] for r in sim.requests]
        # field (the catalogue, to resolve the mapping's names) + serverInfo (Cloud or Data
        # Center decides the search endpoint) + pages
        expected_page = "jql" if jira_deployment == "cloud" else "search"
        assert paths == ["field", "serverInfo", expected_page, expected_page]

        for _cycle in range(3):
            clock.advance(300)
            sim.reset_log()
            result = engine.sync_stream(connector, spec, mapping)
            assert result.status == "ok"
            assert len(sim.requests) == 1, [r.path for r in sim.requests]
            assert result.written == 0
        state = store.stream_state("jira", "issues")
        assert state is not None
        assert state.cursor is not None
        store.close()
    finally:
        sim.stop()


def test_an_empty_pass_settles_its_minutes_so_polls_within_a_minute_ask_nothing(
    clock: FakeClock, tmp_path: Path
) -> None:
    """Idle polls: one search when a minute has settled, none until the next one settles; the
    window stays the overlap plus the new minutes, however long nothing changes."""
    sim = start_sim("cloud", clock)
    try:
        generate(sim, issues=50, seed=4)
        connector = make_connector(sim, clock)
        engine, store = engine_and_store(tmp_path)
        mapping, spec = default_mapping(), connector.stream("issues")
        engine.sync_stream(connector, spec, mapping)
        clock.advance(600 - clock() % 60 + 1)  # just past a minute boundary
        searches: list[str] = []
        for _poll in range(12):  # three minutes of 15 s polls, nothing changing
            sim.reset_log()
            assert engine.sync_stream(connector, spec, mapping).status == "ok"
            searches += [r.query["jql"] for r in sim.requests]
            clock.advance(15)
        assert len(searches) == 3, searches  # one per settled minute
        assert len(set(searches)) == 3
        state = store.stream_state("jira", "issues")
        assert state is not None
        assert state.cursor is not None
        settled = IssueCursor.model_validate_json(state.cursor).settled_ms
        assert settled is not None
        assert f"updated < {settled}" in searches[-1]
        overlap_ms = int(connector.settings.overlap.total_seconds() * 1000)
        assert f"updated >= {settled - 60_000 - overlap_ms}" in searches[-1]
        store.close()
    finally:
        sim.stop()


def test_late_indexed_change_is_caught_by_the_overlap(clock: FakeClock, tmp_path: Path) -> None:
    """Search lags 150 s: a pass settles past a change it cannot see yet; the overlap saves it."""
    outcomes = {}
    for overlap in ("2m", "0m"):
        clock.now = START
        sim = start_sim("cloud", clock, index_lag=150)
        try:
            generate(sim, issues=50, seed=4)
            connector = make_connector(sim, clock, overlap=overlap)
            engine, store = engine_and_store(tmp_path / overlap)
            mapping, spec = default_mapping(), connector.stream("issues")
            clock.advance(200)  # 18:03:20, everything generated is indexed
            assert engine.sync_stream(connector, spec, mapping).inserted == 50
            seen, victim = sorted(sim.visible_ids())[:2]
            sim.update_issue(seen, {"summary": "on time"})  # 18:03:20, searchable 18:05:50
            clock.advance(60)
            sim.update_issue(victim, {"summary": "late"})  # 18:04:20, searchable 18:06:50
            clock.advance(100)  # 18:06:00: the pass up to 18:05 sees only the first change
            assert engine.sync_stream(connector, spec, mapping).updated == 1
            clock.advance(300)
            assert engine.sync_stream(connector, spec, mapping).status == "ok"
            raw = {r.key: r.raw for r in store.iter_records(connector="jira", stream="issues")}
            assert raw[seen]["summary"] == "on time"
            outcomes[overlap] = raw[victim]["summary"] == "late"
            store.close()
        finally:
            sim.stop()
    assert outcomes == {"2m": True, "0m": False}


def test_data_center_offset_shift_skips_nothing(clock: FakeClock) -> None:
    """Issues leave the window mid-pass; later pages shift back; the pass rewinds."""
    sim = start_sim("datacenter", clock)
    try:
        generate(sim, issues=200, seed=8)
        connector = make_connector(sim, clock, page_size=50)
        pages = connector.read(connector.stream("issues"), None)
        first = next(pages)
        for record in first.records[:10]:
            sim.update_issue(record["id"], {"summary": "moved"})  # now beyond the window
        seen = {r["id"] for r in first.records}
        for page in pages:
            seen |= {r["id"] for r in page.records}
        assert seen == sim.visible_ids()
    finally:
        sim.stop()


def test_expired_page_token_restarts_the_pass(clock: FakeClock) -> None:
    sim = start_sim("cloud", clock)
    try:
        generate(sim, issues=120, seed=9)
        connector = make_connector(sim, clock)
        spec = connector.stream("issues")
        first = next(iter(connector.read(spec, None)))
        assert isinstance(first.cursor, IssueCursor)
        assert first.cursor.page_token
        clock.advance(8 * 86_400)  # tokens live 7 days
        with capture_logs() as logs:
            resumed = list(connector.read(spec, first.cursor))
        seen = {r["id"] for p in resumed for r in p.records}
        assert seen == sim.visible_ids()
        assert any(e["event"] == "jira_page_token_refused" for e in logs)
        assert resumed[-1].cursor == IssueCursor(settled_ms=first.cursor.pass_upper_ms)
    finally:
        sim.stop()


def test_rate_limit_answer_is_retried_after_the_wait_jira_asks_for(
    jira_deployment: Deployment, clock: FakeClock, tmp_path: Path
) -> None:
    sim = start_sim(jira_deployment, clock)
    try:
        generate(sim, issues=90, seed=3)
        connector = make_connector(sim, clock)
        waits: list[float] = []
        engine, store = engine_and_store(tmp_path)
        engine.sleep = waits.append
        sim.inject(
            429,
            path_prefix="/rest/api/2/search",
            headers={"Retry-After": "7", "RateLimit-Reason": "jira-burst-based"},
        )
        result = engine.sync_stream(connector, connector.stream("issues"), default_mapping())
        assert result.status == "ok"
        assert result.inserted == 90
        assert waits == [7.0]
        store.close()
    finally:
        sim.stop()


def test_x_ratelimit_reset_is_used_without_retry_after(clock: FakeClock) -> None:
    sim = start_sim("cloud", clock)
    try:
        generate(sim, issues=10, seed=3)
        connector = make_connector(sim, clock)
        sim.inject(
            429,
            path_prefix="/rest/api/2/search",
            headers={"X-RateLimit-Reset": "2099-01-01T00:00Z"},
        )
        with pytest.raises(RetriableError) as info:
            list(connector.read(connector.stream("issues"), None))
        assert info.value.retry_after is not None
        assert info.value.retry_after > 86_400
    finally:
        sim.stop()


def test_rate_limit_reset_parsing() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 5, 10, 30, 15, tzinfo=UTC)
    assert rate_limit_reset_seconds({"X-RateLimit-Reset": "2026-01-05T10:31Z"}, now) == 45
    assert rate_limit_reset_seconds({"X-RateLimit-Reset": "soon"}, now) is None
    assert rate_limit_reset_seconds({}, now) is None


def test_burst_limit_answers_429_with_jira_headers() -> None:
    import requests

    sim = JiraSimulator(burst_per_second=2)
    sim.start()
    try:
        auth = (sim.email, sim.api_token)
        answers = [
            requests.get(f"{sim.base_url}/rest/api/2/field", auth=auth, timeout=5) for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        limited = answers[-1]
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["RateLimit-Reason"] == "jira-burst-based"
        assert limited.headers["X-RateLimit-Reset"].endswith("Z")
    finally:
        sim.stop()


@pytest.fixture
def cloud_sim(clock: FakeClock) -> Iterator[JiraSimulator]:
    sim = start_sim("cloud", clock)
    yield sim
    sim.stop()


def test_start_setting_bounds_the_first_read(cloud_sim: JiraSimulator, clock: FakeClock) -> None:
    generate(cloud_sim, issues=100, seed=6, start=START - 10 * 86_400, end=START - 3600)
    since = START - 2 * 86_400
    connector = make_connector(
        cloud_sim, clock, start=__import__("datetime").datetime.fromtimestamp(since)
    )
    pages = list(connector.read(connector.stream("issues"), None))
    read = {r["id"] for p in pages for r in p.records}
    expected = {
        str(i)
        for i, s in cloud_sim.issues.items()
        if s.current["_updated_ms"] >= int(since // 60 * 60 * 1000)
    }
    assert read == expected
    assert 0 < len(read) < 100


def test_census_tombstones_deleted_and_hidden_issues_only(
    jira_deployment: Deployment, clock: FakeClock, tmp_path: Path
) -> None:
    """Deletes during the census shift Data Center's offsets; nothing live is tombstoned."""
    sim = start_sim(jira_deployment, clock)
    try:
        generate(sim, issues=200, seed=12)
        connector = make_connector(sim, clock, census_page_size=50)
        engine, store = engine_and_store(tmp_path)
        mapping, spec = default_mapping(), connector.stream("issues")
        engine.sync_stream(connector, spec, mapping)
        ids = sorted(sim.visible_ids(), key=int)
        sim.hide_issue(ids[-1])  # the API user lost Browse permission on it
        census = connector.sweep(spec)
        present = {r["id"] for r in next(census).present}
        for victim in sorted(present, key=int)[:5]:
            sim.delete_issue(victim)  # deleted while the census pages
        for page in census:
            present |= {r["id"] for r in page.present}
        assert sim.visible_ids() <= present
        assert ids[-1] not in present
        assert engine.sweep_stream(connector, spec, mapping) == 6
        live = {r.key for r in store.iter_records(connector="jira", stream="issues")}
        assert live == sim.visible_ids()
        store.close()
    finally:
        sim.stop()


def test_refused_credentials_are_named_without_the_secret(
    jira_deployment: Deployment, clock: FakeClock
) -> None:
    sim = start_sim(jira_deployment, clock)
    try:
        connector = make_connector(sim, clock, secret="hunter2-very-secret")
        with capture_logs() as logs, pytest.raises(AuthError) as info:
            list(connector.read(connector.stream("issues"), None))
        message = str(info.value)
        assert message.startswith("jira: ")
        assert "401" in message
        assert "credentials" in message
        assert "hunter2" not in message
        assert "hunter2" not in repr(logs)
    finally:
        sim.stop()
