"""The simulator honours the documented contract, checked through simple-salesforce itself."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.bulk2 import SFBulk2Handler
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from pmsync.connectors.http import make_session
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.salesforce import SalesforceSimulator, generate
from pmsync.simulators.salesforce import soql as parser
from pmsync.simulators.salesforce.model import salesforce_id
from tests.salesforce_support import MY_DOMAIN, make_connector, running


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[SalesforceSimulator]:
    yield from running(SalesforceSimulator(clock=clock))


@pytest.fixture
def sf(sim: SalesforceSimulator) -> Iterator[Salesforce]:
    """simple-salesforce alone (no pmsync guard), on a session that reaches the simulator."""
    generate(sim, accounts=450, contacts=30)
    instance = sim.base_url.removeprefix("http://")
    session, _adapter = make_session(
        rewrite={f"https://{MY_DOMAIN}": sim.base_url, f"https://{instance}": sim.base_url}
    )
    yield Salesforce(
        consumer_key=sim.client_id,
        consumer_secret=sim.client_secret,
        domain=MY_DOMAIN.removesuffix(".salesforce.com"),
        session=session,
    )
    session.close()


def error_code(error: SalesforceError) -> object:
    """Salesforce's errorCode. simple-salesforce annotates `content` as bytes, but it holds the
    parsed JSON body (its exception_handler passes `response.json()`)."""
    body: object = error.content
    assert isinstance(body, list)
    return body[0]["errorCode"]


def sobject(sf: Salesforce, name: str) -> SFType:
    """`sf.<name>`, typed: simple-salesforce's __getattr__ is annotated with every handler it
    can return (bulk, bulk2 or an sObject)."""
    handler = getattr(sf, name)
    assert isinstance(handler, SFType)
    return handler


def test_soql_subset_parses_and_rejects() -> None:
    query = parser.parse(
        "select Id, Owner.Name from Account where (SystemModstamp >= 2024-01-01T00:00:00Z "
        "or Id > 'a\\'b') and IsDeleted = false and Type not in ('X', 'Y') "
        "order by SystemModstamp desc nulls first, Id limit 5"
    )
    assert query.fields == ["Id", "Owner.Name"]
    assert query.limit == 5
    assert query.order_by[0] == parser.OrderKey("SystemModstamp", True, False)
    assert {"SystemModstamp", "Id", "IsDeleted", "Type"} <= query.referenced_fields()
    for bad in ("SELECT FROM Account", "SELECT Id FROM Account WHERE Name = 'x", "SELECT Id"):
        with pytest.raises(parser.SoqlError):
            parser.parse(bad)


def test_ids_carry_the_case_checksum() -> None:
    assert salesforce_id("001", 1) == "001000000000001AAA"
    assert salesforce_id("001", 62**2 * 10)[-3:] != "AAA"  # an upper-case digit sets a bit


def test_query_pages_with_the_batch_size_and_next_records_url(
    sim: SalesforceSimulator, sf: Salesforce
) -> None:
    first = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=200"})
    assert first["totalSize"] == 450
    assert not first["done"]
    assert len(first["records"]) == 200
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["records"][0]["attributes"]["type"] == "Account"
    everything = sf.query_all("SELECT Id FROM Account")
    assert everything["totalSize"] == 450  # default batch 2,000: one page
    assert sf.api_usage["api-usage"].used == sim.api_used


def test_query_errors_read_like_salesforce(sim: SalesforceSimulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Nope__c FROM Account")
    assert error_code(info.value) == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Id FROM Account WHERE")
    assert error_code(info.value) == "MALFORMED_QUERY"
    sim.locator_ttl = -1
    first = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=200"})
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert error_code(info.value) == "INVALID_QUERY_LOCATOR"


def test_query_all_returns_recycle_bin_rows(sim: SalesforceSimulator, sf: Salesforce) -> None:
    victim = sorted(sim.live_ids("Account"))[0]
    sim.soft_delete("Account", victim)
    statement = f"SELECT Id, IsDeleted FROM Account WHERE Id = '{victim}'"
    assert sf.query(statement)["records"] == []
    assert sf.query_all(statement, include_deleted=True)["records"][0]["IsDeleted"] is True


def test_get_updated_and_get_deleted(
    sim: SalesforceSimulator, sf: Salesforce, clock: FakeClock
) -> None:
    start = datetime.fromtimestamp(clock.now, UTC) - timedelta(hours=1)
    changed = sorted(sim.live_ids("Account"))[:2]
    sim.update("Account", changed[0], {"Name": "x"}, at=int(clock.now) - 600)
    sim.soft_delete("Account", changed[1], at=int(clock.now) - 600)
    end = datetime.fromtimestamp(clock.now, UTC) + timedelta(minutes=1)
    account = sobject(sf, "Account")
    updated = account.updated(start, end)
    assert updated["ids"] == [changed[0]]
    deleted = account.deleted(start, end)
    assert [r["id"] for r in deleted["deletedRecords"]] == [changed[1]]
    assert deleted["latestDateCovered"].endswith(":00.000+0000")  # seconds dropped
    with pytest.raises(SalesforceMalformedRequest) as info:
        account.deleted(start - timedelta(days=20), end)  # beyond 15 days
    assert error_code(info.value) == "INVALID_REPLICATION_DATE"


def test_bulk_query_job_through_the_library(sf: Salesforce) -> None:
    bulk2 = sf.bulk2
    assert isinstance(bulk2, SFBulk2Handler)
    pages = list(
        bulk2.Account.query("SELECT Id, Name, ARR__c FROM Account", max_records=200, wait=0)
    )
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(str(page)))]
    assert len(pages) == 3
    assert len(rows) == 450
    assert set(rows[0]) == {"Id", "Name", "ARR__c"}


def test_request_limit_exceeded_is_a_403(sim: SalesforceSimulator, sf: Salesforce) -> None:
    sim.roll_quota(used=sim.api_allocation)
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.limits()
    assert error_code(info.value) == "REQUEST_LIMIT_EXCEEDED"
    sim.roll_quota(used=0)
    assert sf.limits()["DailyApiRequests"]["Remaining"] == sim.api_allocation - 1


def test_sessions_end_after_their_lifetime(sim: SalesforceSimulator, clock: FakeClock) -> None:
    sim.session_ttl = 60
    generate(sim, accounts=1, contacts=0)
    connector = make_connector(sim)
    sf = connector.client.sf()
    sf.limits()
    clock.advance(61)
    direct = Salesforce(session_id=sf.session_id, instance_url=sim.base_url, session=sf.session)
    with pytest.raises(SalesforceExpiredSession):
        direct.limits()  # a session-id client cannot log in again
    sf.limits()  # a credentials client logs in again
    assert len(sim.requests_to("/services/oauth2/token")) == 2
    connector.close()


def test_collections_refuse_more_than_200_records(sf: Salesforce) -> None:
    records = [{"attributes": {"type": "Account"}, "id": f"001{n:015d}"} for n in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="PATCH", json={"records": records})
    assert error_code(info.value) == "EXCEEDED_ID_LIMIT"
