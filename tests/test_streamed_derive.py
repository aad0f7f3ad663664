"""A streamed full derivation (`derive(hold=False)`) stores exactly what a held one stores.

The streamed one links a batch of tickets at a time and computes the rollups a chunk of issues
at a time from the links it stored; tiny sizes make every batch, chunk and page boundary count.
After it, a held derivation of the same records finds nothing to change (links, rollups with
their values and provenance, the state kept for incremental derivations), on a first
derivation and after tickets are deleted, moved, read from two streams, issues deleted and
accounts' ARR changed; and the incremental derivations that follow it store what a full one
computes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from pmsync.sync.links.changes import read_state
from pmsync.sync.links.derive import Derived, derive
from pmsync.sync.links.linker import Overrides
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.links.streamed import Streaming
from pmsync.sync.store.schema import links, rollups
from pmsync.sync.store.store import Store
from tests.conftest import pg_schema
from tests.test_incremental_derive import (
    CURRENCY,
    SCORES,
    SETTINGS,
    SPECS,
    Company,
    delete,
    put,
    stored,
    truth,
)

TINY = Streaming(tickets=7, issues=3, linked=8, refs=5)
OVERRIDES = Overrides(issues={"3": ["APP-5"]}, account={"4": "00103", "5": "no-such-account"})

Tables = tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]


def tables(store: Store) -> Tables:
    """The stored links, and the rollups with everything but when they were computed."""
    with store.engine.connect() as connection:
        link_columns = (links.c.kind, links.c.ticket_ref, links.c.target_ref, links.c.rule)
        found_links = {tuple(r) for r in connection.execute(sa.select(*link_columns))}
        found_rollups = {
            (r.name, r.issue_ref, r.issue_key, r.value, r.provenance, r.content_hash)
            for r in connection.execute(sa.select(rollups))
        }
    return found_links, found_rollups


def state(store: Store) -> dict[str, str]:
    with store.engine.connect() as connection:
        kept = read_state(connection)
    kept.pop("generation")
    return kept


def full(
    store: Store, *, hold: bool, scores: dict[str, ScoreSpec] | None = None, **kwargs: Any
) -> Derived:
    return derive(
        store,
        SETTINGS,
        OVERRIDES,
        SPECS,
        CURRENCY,
        scores=SCORES if scores is None else scores,
        hold=hold,
        streaming=TINY,
        writers=["jira"],
        **kwargs,
    )


def streamed_then_held(store: Store, scores: dict[str, ScoreSpec] | None = None) -> Tables:
    """Derive streamed, then held: the held one must find nothing to change. Returns what the
    streamed one stored."""
    full(store, hold=False, scores=scores)
    after_streamed = tables(store)
    held = full(store, hold=True, scores=scores)
    assert tables(store) == after_streamed
    assert not any(held.changed_rollups.values())
    assert (held.links_added, held.links_removed) == (0, 0)
    return after_streamed


def assert_held_changes_nothing(store: Store, streamed: Derived) -> None:
    """A held derivation after the streamed one stores the same (so changes nothing), and the
    streamed one's result holds no figure but the same problems."""
    after_streamed, kept = tables(store), state(store)
    held = full(store, hold=True)
    assert tables(store) == after_streamed
    assert state(store) == kept
    assert (held.links_added, held.links_removed) == (0, 0)
    assert not any(held.changed_rollups.values())
    assert sorted(map(repr, streamed.links.unresolved)) == sorted(map(repr, held.links.unresolved))
    assert streamed.problems == held.problems
    assert streamed.problems  # the override naming no account
    assert not streamed.held
    assert held.held
    assert (streamed.rollups, streamed.world.tickets, streamed.links.links()) == ({}, {}, [])


def test_a_first_streamed_derivation_stores_what_a_held_one_does(store_url: str) -> None:
    store = Store(store_url)
    Company(store, random.Random(31))
    streamed = full(store, hold=False)
    assert streamed.mode == "full"
    assert streamed.generation == 1
    assert streamed.links_added == len(tables(store)[0]) > 0
    assert streamed.links_removed == 0
    assert sum(map(len, streamed.changed_rollups.values())) == len(tables(store)[1]) > 0
    assert stored(store) == truth(store, OVERRIDES)
    assert_held_changes_nothing(store, streamed)


def test_a_streamed_derivation_after_changes_stores_what_a_held_one_does(store_url: str) -> None:
    """A ticket deleted, one moved to another issue, one read from two streams (the later
    stream's record wins and links elsewhere, in another batch), an issue deleted and an
    account's ARR changed, after a held derivation of the records before."""
    store = Store(store_url)
    company = Company(store, random.Random(32))
    full(store, hold=True)
    before = tables(store)
    keys = sorted(company.tickets, key=int)
    delete(store, "zendesk", "tickets", keys[0])
    company.edit_ticket(keys[1], issue_keys=["APP-2"], subject="moved")
    # Unresolved in its first stream (free mail, an unknown key); linked in the later one.
    company.edit_ticket(keys[2], requester_email="x@gmail.com", issue_keys=["APP-99"])
    twice = {**company.tickets[keys[2]], "issue_keys": ["APP-7"], "subject": "archived"}
    put(store, "zendesk", "tickets_archive", "feedback", [{**twice, "requester_email": "a@d1.com"}])
    issue = sorted(company.issues)[0]
    delete(store, "jira", "issues", issue)
    company.account(sorted(company.accounts)[0], arr=123_000)

    streamed = full(store, hold=False)

    found_links, found_rollups = tables(store)
    assert (found_links, found_rollups) != before
    assert not any(t == f"zendesk:{keys[0]}" for _k, t, _g, _r in found_links)
    assert ("ticket_issue", f"zendesk:{keys[2]}", "jira:9006", "ticket_field") in found_links
    assert ("ticket_account", f"zendesk:{keys[2]}", "salesforce:00101", "email_domain") in (
        found_links
    )
    assert f"zendesk:{keys[2]}" not in {u.ticket for u in streamed.links.unresolved}
    assert not any(i == f"jira:{issue}" for _n, i, *_rest in found_rollups)
    assert f"jira:{issue}" in streamed.changed_rollups["customer_demand"]
    assert streamed.links_removed > 0
    assert stored(store) == truth(store, OVERRIDES)
    assert_held_changes_nothing(store, streamed)
    assert ["zendesk", "tickets_archive"] in _kept_streams(store)


def _kept_streams(store: Store) -> list[list[str]]:
    streams: dict[str, list[list[str]]] = orjson.loads(state(store)["streams"])
    return streams["feedback"]


def test_a_held_derivation_after_changes_undoes_nothing_a_streamed_one_stored(
    store_url: str,
) -> None:
    """The other way round: a streamed derivation first, changes, then a held one and a
    streamed one again agree."""
    store = Store(store_url)
    company = Company(store, random.Random(33))
    full(store, hold=False)
    for _ in range(6):
        company.change()
    streamed = full(store, hold=False)
    assert stored(store) == truth(store, OVERRIDES)
    assert_held_changes_nothing(store, streamed)


def test_incremental_derivations_after_a_streamed_one_store_what_a_full_one_computes(
    store_url: str,
) -> None:
    store = Store(store_url)
    company = Company(store, random.Random(34))
    assert full(store, hold=False, incremental=True).mode == "full"  # the first
    modes = []
    for _ in range(8):
        kind = company.change()
        derived = full(store, hold=False, incremental=True)
        modes.append(derived.mode)
        assert stored(store) == truth(store, OVERRIDES), kind
        if derived.mode == "incremental":
            assert derived.held  # an incremental derivation holds its scope's figures
    assert "incremental" in modes


@pytest.mark.parametrize("method", ["weighted", "formula"])
def test_scores_of_a_streamed_derivation_are_a_held_ones(store_url: str, method: str) -> None:
    """A weighted score normalises across every issue: it is one chunk, and still equal."""
    store = Store(store_url)
    Company(store, random.Random(35))
    declared: dict[str, Any] = {"method": method, "rollup": "customer_demand"}
    if method == "weighted":
        declared["inputs"] = {
            "arr": {"figure": "arr", "weight": 2},
            "tickets": {"figure": "tickets", "weight": 1},
        }
    else:
        declared["formula"] = "arr / 1000 + tickets"
    scores = {"priority": ScoreSpec.model_validate(declared)}
    after_streamed = streamed_then_held(store, scores=scores)
    assert any('"priority"' in value for _n, _i, _k, value, *_rest in after_streamed[1])


@pytest.mark.parametrize("field", ["story_points", "story points"])
def test_a_score_reading_an_issue_field_is_a_held_ones_though_issues_are_kept_slim(
    store_url: str, field: str
) -> None:
    """A streamed derivation keeps of an issue only what a derivation reads, the fields the
    scores name among them: a score on an issue field, in some projects and status
    categories, comes out as a held derivation computes it (a field name that cannot be kept
    slim keeps the issues whole)."""
    store = Store(store_url)
    company = Company(store, random.Random(36))
    for n, key in enumerate(sorted(company.issues)):
        extra: dict[str, Any] = {
            "project": "APP" if n % 3 else "OPS",
            "status_category": "done" if n % 4 == 0 else "indeterminate",
            "description": "long text no derivation reads " * 20,
            field: n + 1 if n % 5 else None,
        }
        company.issue(key, **extra)
    declared = {
        "method": "formula",
        "rollup": "customer_demand",
        "formula": "arr / 1000 + points",
        "inputs": {"points": {"field": field}},
        "projects": ["APP"],
        "status_categories": ["indeterminate"],
        "scope": "all",
    }
    scores = {"priority": ScoreSpec.model_validate(declared)}
    after_streamed = streamed_then_held(store, scores=scores)
    priorities = [
        orjson.loads(value).get("priority") for _n, _i, _k, value, *_r in after_streamed[1]
    ]
    assert any(isinstance(p, int | float) for p in priorities)  # scored from the field
    assert None in priorities  # out of scope, or the field is empty


ICU_DATABASE = "pmsync_test_icu"


@pytest.fixture
def icu_store_url(pg_base_url: str) -> Iterator[str]:
    """A fresh schema in a database whose collation is ICU's en-US, created once."""
    engine = sa.create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": ICU_DATABASE}
        ).first()
        if exists is None:
            connection.execute(
                sa.text(
                    f"CREATE DATABASE {ICU_DATABASE} LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                    "LOCALE 'C.UTF-8' TEMPLATE template0"
                )
            )
    engine.dispose()
    base = pg_base_url.rsplit("/", 1)[0] + f"/{ICU_DATABASE}"
    with pg_schema(base) as url:
        yield url


def test_a_key_in_two_streams_is_the_same_record_whatever_the_database_collation(
    icu_store_url: str,
) -> None:
    """Under a collation that sorts 'tickets' before 'Tickets_old' (ICU en-US; Python and
    the C collation sort them the other way), the record a derivation links is still the one
    the rollups count: streamed and held derivations store the same."""
    store = Store(icu_store_url)
    company = Company(store, random.Random(31))
    ticket = dict(company.tickets["5"])
    older = {
        **ticket,
        "status": "solved" if ticket["status"] == "open" else "open",
        "created_at": "2020-01-01T00:00:00Z",
        "issue_keys": ["APP-1"],
    }
    put(store, "zendesk", "Tickets_old", "feedback", [older])
    with store.engine.connect() as connection:
        by_collation = connection.execute(
            sa.text("SELECT stream FROM records WHERE key = '5' ORDER BY stream")
        ).scalars()
        assert list(by_collation) == ["tickets", "Tickets_old"]  # the database's own order
    streamed_then_held(store)
