"""Writing fields back through sObject Collections: 200 records a call, an outcome per record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pmsync.connectors.base import FieldWrite
from pmsync.errors import QuotaExhausted
from pmsync.simulators.salesforce import SalesforceSimulator, generate
from tests.salesforce_support import make_connector, running


@pytest.fixture
def sim() -> Iterator[SalesforceSimulator]:
    yield from running(SalesforceSimulator())


def collection_calls(sim: SalesforceSimulator) -> list[list[dict[str, object]]]:
    return [r.json()["records"] for r in sim.requests_to("/services/data/v59.0/composite/sobjects")]


def test_many_updates_go_out_200_a_call_and_land(sim: SalesforceSimulator) -> None:
    accounts = sorted(generate(sim, accounts=450, contacts=0)["Account"])
    connector = make_connector(sim)
    writes = [
        FieldWrite("Account", a, {"Open_Requests__c": float(n)}) for n, a in enumerate(accounts)
    ]
    outcomes = connector.write(writes)
    assert [o.key for o in outcomes] == accounts
    assert all(o.ok for o in outcomes)
    assert [len(call) for call in collection_calls(sim)] == [200, 200, 50]
    rows = sim.tables["Account"].rows
    assert [rows[a]["Open_Requests__c"] for a in accounts] == [float(n) for n in range(450)]
    connector.close()


def test_each_record_gets_its_own_outcome(sim: SalesforceSimulator) -> None:
    created = generate(sim, accounts=6, contacts=2)
    a = sorted(created["Account"])
    sim.soft_delete("Account", a[3])
    sim.locked_ids.add(a[4])
    connector = make_connector(sim)
    outcomes = connector.write(
        [
            FieldWrite("Account", a[0], {"Open_Requests__c": 7.0}),
            FieldWrite("Account", a[1], {"No_Such__c": 1}),
            FieldWrite("Account", a[2], {"Owner_Region__c": "EMEA"}),  # a formula field
            FieldWrite("Account", a[3], {"Open_Requests__c": 1.0}),
            FieldWrite("Account", a[4], {"Open_Requests__c": 1.0}),
            FieldWrite("Account", "001000000000zzzAAA", {"Open_Requests__c": 1.0}),
            FieldWrite("Contact", created["Contact"][0], {"Title": "Head of Ops"}),
            FieldWrite("Account", a[5], {}),
        ]
    )
    assert [o.ok for o in outcomes] == [True, False, False, False, False, False, True, False]
    assert "INVALID_FIELD" in str(outcomes[1].error)
    assert "No_Such__c" in str(outcomes[1].error)
    assert "INVALID_FIELD_FOR_INSERT_UPDATE" in str(outcomes[2].error)
    assert "ENTITY_IS_DELETED" in str(outcomes[3].error)
    assert outcomes[4].retriable
    assert "UNABLE_TO_LOCK_ROW" in str(outcomes[4].error)
    assert not outcomes[5].retriable
    assert "INVALID_CROSS_REFERENCE_KEY" in str(outcomes[5].error)
    assert outcomes[7].error == "nothing to write"
    assert str(outcomes[1].error).startswith(f"Account {a[1]}:")
    assert sim.tables["Contact"].rows[created["Contact"][0]]["Title"] == "Head of Ops"
    assert len(collection_calls(sim)) == 2  # one call per object
    connector.close()


def test_the_same_record_twice_goes_in_separate_calls(sim: SalesforceSimulator) -> None:
    account = generate(sim, accounts=1, contacts=0)["Account"][0]
    connector = make_connector(sim)
    outcomes = connector.write(
        [
            FieldWrite("Account", account, {"Open_Requests__c": 1.0}),
            FieldWrite("Account", account, {"Open_Requests__c": 2.0}),
        ]
    )
    assert all(o.ok for o in outcomes)
    assert [len(c) for c in collection_calls(sim)] == [1, 1]
    assert sim.tables["Account"].rows[account]["Open_Requests__c"] == 2.0
    connector.close()


def test_writes_respect_the_quota_reserve(sim: SalesforceSimulator) -> None:
    account = generate(sim, accounts=1, contacts=0)["Account"][0]
    connector = make_connector(sim, quota_recheck_interval="1h")
    connector.check()
    sim.api_allocation = sim.api_used + 1
    connector.check()  # learns the allocation is now at its limit
    with pytest.raises(QuotaExhausted):
        connector.write([FieldWrite("Account", account, {"Open_Requests__c": 1.0})])
    assert collection_calls(sim) == []
    connector.close()
