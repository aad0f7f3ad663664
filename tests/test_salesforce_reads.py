"""Reading sObjects: cursor ties and overlap, deletes, Bulk API 2.0, formula refresh, schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pmsync.connectors.salesforce.cursor import SObjectCursor, parse_stamp
from pmsync.errors import FatalError, RetriableError
from pmsync.simulators.salesforce import SalesforceSimulator, generate, install_schema
from pmsync.sync.engine import SyncEngine
from pmsync.sync.mapping.compiler import CompiledStream
from pmsync.sync.mapping.loader import load_mappings
from pmsync.sync.store.store import Store
from tests.salesforce_support import REPO, cursor_of, ids, make_connector, read_pages, running

ACCOUNT_FIELDS = ("Id", "Name", "ARR__c", "AnnualRevenue", "Owner", "Website", "CurrencyIsoCode")
DAY = 86400


@pytest.fixture
def sim() -> Iterator[SalesforceSimulator]:
    yield from running(SalesforceSimulator())


def mapping(stream: str) -> CompiledStream:
    compiled = load_mappings([REPO / "mappings" / "salesforce.toml"]).streams[
        ("salesforce", stream)
    ]
    compiled.bind_key("Id")
    return compiled


def insert_accounts(sim: SalesforceSimulator, count: int, *, at: int) -> list[str]:
    install_schema(sim)
    return [sim.insert("Account", {"Name": f"Tied {n}"}, at=at) for n in range(count)]


def requests_since(sim: SalesforceSimulator, mark: int) -> list[str]:
    return [r.path for r in sim.requests[mark:] if r.path.startswith("/services/data/")]


# ---- ties and overlap --------------------------------------------------------------------------


@pytest.mark.parametrize("age", [30 * DAY, 60], ids=["old-stamp", "inside-overlap"])
def test_thousands_of_rows_sharing_one_stamp_are_neither_lost_nor_looped(
    sim: SalesforceSimulator, age: int
) -> None:
    """2,500 rows share one SystemModstamp across 13 pages; resuming from every page works."""
    tied_at = sim.now() - age
    before = insert_accounts(sim, 30, at=tied_at - 10)
    tied = insert_accounts(sim, 2500, at=tied_at)
    connector = make_connector(sim)
    spec = connector.stream("Account")
    pages = read_pages(connector, spec)
    everything = set(before) | set(tied)
    assert ids(pages) == sorted(before) + sorted(tied)  # ordered by (stamp, Id), each once
    positions = [(cursor_of(p).systemmodstamp, cursor_of(p).id) for p in pages if p.records]
    assert positions == sorted(set(positions)), "page cursors must move strictly forward"
    seen: set[str] = set()
    for page in pages:
        seen |= {r["Id"] for r in page.records}
        mark = len(sim.requests)
        resumed = read_pages(connector, spec, page.cursor)
        assert everything - seen <= set(ids(resumed)), "resuming lost tied rows"
        assert len(requests_since(sim, mark)) <= 2500 // 200 + 2, "resume did not terminate"
    connector.close()


def test_a_mass_update_to_one_stamp_is_read_once_per_cycle(sim: SalesforceSimulator) -> None:
    created = insert_accounts(sim, 1200, at=sim.now() - 30 * DAY)
    connector = make_connector(sim)
    spec = connector.stream("Account")
    first = read_pages(connector, spec)
    sim.touch("Account", created, at=sim.now() - 3600)  # a data load stamps all rows alike
    second = read_pages(connector, spec, first[-1].cursor)
    assert sorted(ids(second)) == sorted(created)
    third = read_pages(connector, spec, second[-1].cursor)
    assert ids(third) == [], "the mass update was older than the overlap; nothing to re-read"
    connector.close()


def test_no_change_cycle_is_one_request_and_zero_writes(
    sim: SalesforceSimulator, tmp_path: Path
) -> None:
    generate(sim, accounts=900, contacts=10, seed=2)
    connector = make_connector(sim)
    spec = connector.stream("Account")
    store = Store(f"sqlite:///{tmp_path / 'nochange.db'}")
    engine = SyncEngine(store, run_id="t", sleep=lambda _s: None)
    first = engine.sync_stream(connector, spec, mapping("Account"))
    assert first.status == "ok"
    assert first.inserted == 900
    mark = len(sim.requests)
    again = engine.sync_stream(connector, spec, mapping("Account"))
    assert again.status == "ok"
    assert requests_since(sim, mark) == ["/services/data/v59.0/queryAll/"]
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    store.close()
    connector.close()


def test_a_row_committed_late_with_an_older_stamp_is_caught_by_the_overlap(
    sim: SalesforceSimulator,
) -> None:
    generate(sim, accounts=300, contacts=0)
    connector = make_connector(sim)
    spec = connector.stream("Account")
    pages = read_pages(connector, spec)
    last = cursor_of(pages[-1])
    assert last.since is not None
    # A long transaction commits now a row stamped two minutes before the read above.
    late = sim.insert("Account", {"Name": "Late"}, at=int(last.since.timestamp()) + 180)
    too_old = sim.insert("Account", {"Name": "Ancient"}, at=sim.now() - 30 * DAY)
    later = ids(read_pages(connector, spec, last))
    assert late in later
    assert too_old not in later  # beyond the overlap: documented limit (the refresh pass finds it)
    connector.close()


def test_cursor_condition_is_the_union_of_overlap_and_keyset() -> None:
    old = parse_stamp("2024-01-01T00:00:00.000+0000")
    new = parse_stamp("2024-02-01T00:00:00.000+0000")
    after_position = SObjectCursor(systemmodstamp=old, id="001A'x", since=new)
    assert after_position.incremental_condition() == (
        "(SystemModstamp >= 2024-02-01T00:00:00Z OR SystemModstamp > 2024-01-01T00:00:00Z "
        "OR (SystemModstamp = 2024-01-01T00:00:00Z AND Id > '001A\\'x'))"
    )
    covered = SObjectCursor(systemmodstamp=new, id="001B", since=old)
    assert covered.incremental_condition() == "SystemModstamp >= 2024-01-01T00:00:00Z"
    assert SObjectCursor().incremental_condition() is None


# ---- deletes ---------------------------------------------------------------------------------


def test_recycle_bin_rows_become_deleted_and_undelete_revives(
    sim: SalesforceSimulator, tmp_path: Path
) -> None:
    generate(sim, accounts=250, contacts=0)
    connector = make_connector(sim)
    spec = connector.stream("Account")
    store = Store(f"sqlite:///{tmp_path / 'd.db'}")
    engine = SyncEngine(store, run_id="t", sleep=lambda _s: None)
    engine.sync_stream(connector, spec, mapping("Account"))
    victim = sorted(sim.live_ids("Account"))[10]
    sim.soft_delete("Account", victim)
    assert engine.sync_stream(connector, spec, mapping("Account")).deleted == 1
    assert victim not in store.live_keys("salesforce", "Account")
    sim.undelete("Account", victim)
    engine.sync_stream(connector, spec, mapping("Account"))
    assert victim in store.live_keys("salesforce", "Account")
    store.close()
    connector.close()


def test_census_sweep_lists_live_ids_only(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=450, contacts=0)
    gone = sorted(sim.live_ids("Account"))[:2]
    sim.hard_delete("Account", gone[0])
    sim.soft_delete("Account", gone[1])
    connector = make_connector(sim)
    present = {
        r["Id"] for page in connector.sweep(connector.stream("Account")) for r in page.present
    }
    assert present == sim.live_ids("Account")
    assert not set(gone) & present
    query = next(r for r in sim.requests if r.path.endswith("/query/"))
    assert query.query["q"] == "SELECT Id FROM Account"
    connector.close()


# ---- Bulk API 2.0 --------------------------------------------------------------------------------


def test_large_first_sync_reads_through_bulk_and_matches_rest(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=700, contacts=0, seed=4)
    fields = (*ACCOUNT_FIELDS, "NumberOfEmployees", "CreatedDate", "ParentId")
    bulk = make_connector(sim, bulk_threshold=500, bulk_page_size=300)
    spec = bulk.stream("Account")
    mark = len(sim.requests)
    pages = read_pages(bulk, spec, fields=fields)
    paths = requests_since(sim, mark)
    assert paths.count("/services/data/v59.0/jobs/query") == 1
    results = [p for p in paths if p.endswith("/results")]
    assert len(results) == 3  # 700 rows, 300 a page
    assert len(paths) <= 3 + 5  # describe, the sizing query, create, poll(s), results
    rest = make_connector(sim)
    rest_records = {r["Id"]: r for p in read_pages(rest, spec, fields=fields) for r in p.records}
    bulk_records = {r["Id"]: r for p in pages for r in p.records}
    assert bulk_records == rest_records  # same dicts, so the content hash skips re-reads
    final = cursor_of(pages[-1])
    assert final.bulk_job is None
    assert final.since is not None
    bulk.close()
    rest.close()


def test_bulk_first_sync_resumes_from_every_checkpoint(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=650, contacts=0)
    connector = make_connector(sim, bulk_threshold=100, bulk_page_size=200)
    spec = connector.stream("Account")
    pages = read_pages(connector, spec)
    assert len(pages[0].records) == 200  # the sizing query's page is kept
    assert pages[0].cursor == SObjectCursor()  # ... but the first sync is not done
    assert pages[1].records == []
    assert cursor_of(pages[1]).bulk_job  # the job id is committed before its results
    everything = sim.live_ids("Account")
    seen: set[str] = set()
    jobs_before = len(sim.requests_to("/services/data/v59.0/jobs/query", "POST"))
    for page in pages:
        seen |= {r["Id"] for r in page.records}
        resumed = set(ids(read_pages(connector, spec, page.cursor)))
        assert everything - seen <= resumed
    # Only resuming from the sizing page starts a job; from a job checkpoint, that job goes on.
    jobs_after = len(sim.requests_to("/services/data/v59.0/jobs/query", "POST"))
    assert jobs_after == jobs_before + 1
    connector.close()


def test_a_failed_bulk_job_restarts_the_first_sync(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=300, contacts=0)
    connector = make_connector(sim, bulk_threshold=100)
    spec = connector.stream("Account")
    sim.bulk_failure = "InvalidBatch : query timed out"
    committed: list[SObjectCursor] = []
    with pytest.raises(FatalError, match="failed"):
        committed.extend(cursor_of(p) for p in connector.read(spec, None))
    assert committed[-1] == SObjectCursor()  # the next sync starts over
    sim.bulk_failure = None
    assert set(ids(read_pages(connector, spec, None))) == sim.live_ids("Account")
    connector.close()


# ---- formula fields -------------------------------------------------------------------------


def test_formula_fields_are_reread_on_their_own_schedule(sim: SalesforceSimulator) -> None:
    created = generate(sim, accounts=420, contacts=0, users=3)
    fields = ("Id", "Name", "Owner_Region__c")
    connector = make_connector(sim, formula_refresh_interval="1h")
    spec = connector.stream("Account")
    pages = read_pages(connector, spec, fields=fields)
    owner = created["User"][0]
    owned = {r["Id"] for p in pages for r in p.records if r["Owner_Region__c"] == "AMER"}
    sim.update("User", owner, {"Region__c": "LATAM"})  # moves the User, not its accounts
    quiet = read_pages(connector, spec, pages[-1].cursor, fields=fields)
    assert ids(quiet) == [], "formula changes never move SystemModstamp"
    due = make_connector(sim, formula_refresh_interval=0)
    mark = len(sim.requests)
    refreshed = read_pages(due, spec, quiet[-1].cursor, fields=fields)
    regions = {r["Id"]: r["Owner_Region__c"] for p in refreshed for r in p.records}
    assert set(regions) == sim.live_ids("Account")
    assert {i for i, region in regions.items() if region == "LATAM"} <= owned
    assert "LATAM" in regions.values()
    assert len(requests_since(sim, mark)) == 2 + 3  # describe, incremental, 3 refresh pages
    # Every refresh page can be resumed from; the last one ends the pass.
    middle = next(cursor_of(p) for p in refreshed if cursor_of(p).refresh_after)
    rest = read_pages(connector, spec, middle, fields=fields)
    assert cursor_of(rest[-1]).refresh_after is None
    resumed = {r["Id"] for p in rest for r in p.records}
    assert resumed == {i for i in sim.live_ids("Account") if i > str(middle.refresh_after)}
    connector.close()
    due.close()


# ---- schema --------------------------------------------------------------------------------


def test_fields_the_org_lacks_are_left_out_with_a_warning(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=10, contacts=0)
    connector = make_connector(sim)
    with capture_logs() as logs:
        pages = read_pages(connector, connector.stream("Account"), fields=("Name", "Nope__c"))
    assert len(ids(pages)) == 10
    warning = next(e for e in logs if e["event"] == "salesforce_fields_missing")
    assert warning["fields"] == ["Nope__c"]
    assert warning["object"] == "Account"
    query = next(r for r in sim.requests if r.path.endswith("/query/"))
    assert "Nope__c" not in query.query["q"]
    connector.close()


def test_a_field_removed_from_the_org_is_described_again(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=10, contacts=0)
    connector = make_connector(sim)
    spec = connector.stream("Account")
    read_pages(connector, spec, fields=("Name", "Segment__c"))
    del sim.tables["Account"].fields["Segment__c"]
    with pytest.raises(RetriableError, match="INVALID_FIELD"):
        read_pages(connector, spec, fields=("Name", "Segment__c"))
    assert len(ids(read_pages(connector, spec, fields=("Name", "Segment__c")))) == 10
    connector.close()


def test_an_unknown_object_is_named_in_the_error(sim: SalesforceSimulator) -> None:
    install_schema(sim)
    connector = make_connector(sim)
    with pytest.raises(FatalError, match="no sObject 'Invoice__c'"):
        read_pages(connector, connector.stream("Invoice__c"))
    with pytest.raises(FatalError, match="not an sObject API name"):
        connector.stream("Account; DROP")
    connector.close()


def test_discover_marks_custom_formula_and_relationship_fields(sim: SalesforceSimulator) -> None:
    install_schema(sim)
    connector = make_connector(sim)
    fields = {f.name: f for f in connector.discover("Account")}
    assert fields["ARR__c"].custom
    assert fields["ARR__c"].type == "currency"
    assert fields["Owner_Region__c"].extra["calculated"] is True
    assert fields["Owner_Region__c"].extra["formula"] == "Owner.Region__c"
    assert "Owner.Name" in fields
    assert not fields["Name"].custom
    assert {"Account", "Contact", "User"} <= set(connector.objects())
    connector.close()


def test_an_expired_query_locator_resumes_from_the_last_page(
    sim: SalesforceSimulator, tmp_path: Path
) -> None:
    generate(sim, accounts=800, contacts=0)
    sim.locator_ttl = -1  # every locator is stale by the time queryMore arrives
    connector = make_connector(sim)
    store = Store(f"sqlite:///{tmp_path / 'l.db'}")
    engine = SyncEngine(store, run_id="t", sleep=lambda _s: None)
    result = engine.sync_stream(connector, connector.stream("Account"), mapping("Account"))
    assert result.status == "ok"
    assert result.retries >= 3
    assert store.live_keys("salesforce", "Account") == sim.live_ids("Account")
    assert result.inserted == 800
    assert result.updated == 0
    store.close()
    connector.close()


def test_server_errors_mid_read_resume_from_the_last_committed_page(
    sim: SalesforceSimulator, tmp_path: Path
) -> None:
    generate(sim, accounts=900, contacts=0)
    sim.inject(503, path_prefix="/services/data/v59.0/query/01g", times=1)
    sim.inject(500, path_prefix="/services/data/v59.0/queryAll/", times=1)
    sim.inject(503, path_prefix="/services/data/v59.0/queryAll/01g", times=1)
    connector = make_connector(sim)
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    engine = SyncEngine(store, run_id="t", sleep=lambda _s: None)
    spec = connector.stream("Account")
    first = engine.sync_stream(connector, spec, mapping("Account"))
    assert first.status == "ok"
    assert first.retries >= 2
    assert first.inserted == 900
    assert first.updated == 0
    second = engine.sync_stream(connector, spec, mapping("Account"))
    assert second.status == "ok"
    assert all(fault.times == 0 for fault in sim.faults), "every injected fault was met"
    assert store.live_keys("salesforce", "Account") == sim.live_ids("Account")
    store.close()
    connector.close()


def test_a_page_that_always_fails_after_the_overlap_ends_the_retries(
    sim: SalesforceSimulator, tmp_path: Path
) -> None:
    """Re-reading the overlap window is not progress: a stuck later page must not loop forever."""
    insert_accounts(sim, 1000, at=sim.now() - 120)  # all inside the overlap window
    connector = make_connector(sim)
    spec = connector.stream("Account")
    store = Store(f"sqlite:///{tmp_path / 'stuck.db'}")
    engine = SyncEngine(store, run_id="t", sleep=lambda _s: None)
    assert engine.sync_stream(connector, spec, mapping("Account")).status == "ok"
    sim.inject(503, path_prefix="/services/data/v59.0/queryAll/01", times=None)  # queryMore pages
    result = engine.sync_stream(connector, spec, mapping("Account"))
    assert result.status == "failed"
    assert result.retries == 4  # five attempts without progress, then the stream stops
    assert result.pages >= 5  # each attempt re-read (and committed) the overlap's first page
    store.close()
    connector.close()
