"""The issue property a write-back plans: trimmed to `PROPERTY_LIMIT` as dropping the last
account one at a time would trim it (the plan finds the count with one dump per account)."""

from __future__ import annotations

from typing import Any

import pytest

from pmsync.sync.links.rollups import Rollup
from pmsync.sync.store.store import dumps
from pmsync.sync.writeback.plan import PROPERTY_LIMIT, property_document


def _rollup(accounts: int, tickets_each: int, name: str = "Account") -> Rollup:
    provenance = {
        "issue": "jira:10001",
        "accounts": [
            {
                "ref": f"sf:{n:05d}",
                "name": f"{name} {n}",
                "arr": 1000.0 * (accounts - n) + 0.25,
                "currency": "EUR",
                "arr_reporting": 1080.0 * (accounts - n),
                "segment": "Enterprise",
                "tickets": [f"zd:{n * 100 + t}" for t in range(tickets_each + n % 3)],
                "rules": ["email_domain"],
            }
            for n in range(accounts)
        ],
        "tickets": [],
        "unconverted_currency": ["sf:99999"],
    }
    return Rollup(
        name="customer_demand",
        issue="jira:10001",
        issue_key="PM-1",
        arr=12.5,
        currency="USD",
        accounts=accounts,
        tickets=accounts * tickets_each,
        segments=("Enterprise",),
        top_accounts=(),
        first_request=None,
        last_request=None,
        active_users=None,
        unlinked_tickets=0,
        provenance=provenance,
    )


def _dropping_one_at_a_time(rollup: str, roll: Rollup) -> dict[str, Any]:
    """The trimming the plan did before: dump the whole document after each account dropped."""
    document: dict[str, Any] = {
        "rollup": rollup,
        "figures": roll.value(),
        "accounts": [
            {k: a.get(k) for k in ("ref", "name", "arr", "currency", "arr_reporting", "tickets")}
            for a in roll.provenance["accounts"]
        ],
        "unconverted_currency": roll.provenance["unconverted_currency"],
    }
    while len(dumps(document)) > PROPERTY_LIMIT and document["accounts"]:
        document["accounts"] = document["accounts"][:-1]
        document["truncated"] = True
    return document


@pytest.mark.parametrize(
    ("accounts", "tickets_each", "name"),
    [
        (0, 0, "Account"),  # nothing to trim
        (5, 3, "Account"),  # fits whole
        (400, 2, "Account"),  # some dropped
        (300, 6, "Åkerlund Bäckerei 東京"),  # characters, not bytes, are counted
        (2, 3000, "Account"),  # one account alone is too long: none kept
        (1, 3000, "Account"),
    ],
)
def test_trimmed_as_dropping_one_at_a_time(accounts: int, tickets_each: int, name: str) -> None:
    roll = _rollup(accounts, tickets_each, name)
    expected = _dropping_one_at_a_time("customer_demand", roll)
    document = property_document("customer_demand", roll)
    assert document == expected
    assert dumps(document) == dumps(expected)


def test_at_the_limit_exactly() -> None:
    """A document exactly `PROPERTY_LIMIT` characters long is kept whole; one character more
    drops the last account."""
    short = len(dumps(property_document("customer_demand", _rollup(100, 2))))
    assert short < PROPERTY_LIMIT
    for extra, truncated in ((0, False), (1, True)):
        roll = _rollup(100, 2)
        roll.provenance["accounts"][0]["name"] += "x" * (PROPERTY_LIMIT - short + extra)
        document = property_document("customer_demand", roll)
        assert document == _dropping_one_at_a_time("customer_demand", roll)
        assert ("truncated" in document) is truncated
        assert len(document["accounts"]) == 100 - extra


def test_trimmed_to_the_limit_exactly() -> None:
    """Trimmed to exactly `PROPERTY_LIMIT` characters, the last account that fits is kept; one
    character more and it goes too."""
    roll = _rollup(100, 4)
    half = _dropping_one_at_a_time("customer_demand", roll)
    half["accounts"], half["truncated"] = half["accounts"][:50], True
    room = PROPERTY_LIMIT - len(dumps(half))
    assert room > 0
    for extra, kept in ((0, 50), (1, 49)):
        padded = _rollup(100, 4)
        padded.provenance["accounts"][0]["name"] += "x" * (room + extra)
        document = property_document("customer_demand", padded)
        assert document == _dropping_one_at_a_time("customer_demand", padded)
        assert len(document["accounts"]) == kept
        assert document["truncated"] is True
