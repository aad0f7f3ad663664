"""Integration links kept on disk (`SpilledLinks`) read as a World that holds them reads them.

A full derivation no longer holds the integration links: each batch of tickets asks the
temporary file for its own, and the World learns the projects and aliases they give
(`learn_from_links`). Each is compared with a World loaded with every link: the links of each
ticket in the same order (a link read again from a later stream of its connector replacing
the earlier one in its place), a link with no key or no ticket, the aliases (an old key of a
moved issue) and the projects the links name.
"""

from __future__ import annotations

from typing import Any

from pmsync.sync.links.aliases import add_aliases, known_projects, learn_from_links
from pmsync.sync.links.spilled_links import ISSUE_LINK, SpilledLinks
from pmsync.sync.links.world import World
from pmsync.sync.store.store import Store
from tests.test_incremental_derive import put


def links_of(world_links: dict[str, list[Any]]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """Each ticket's links as comparable values: ref, stream and fields."""
    return {
        ticket: [(link.ref, link.stream, dict(link.fields)) for link in found]
        for ticket, found in world_links.items()
        if found
    }


def fill(store: Store) -> None:
    put(store, "jira", "issues", "issue", [
        {"id": "9001", "key": "PLAT-11", "project": "PLAT"},  # moved: linked as MOB-91
        {"id": "9002", "key": "APP-2", "project": "APP"},
    ])  # fmt: skip
    put(store, "zendesk", "jira_links", ISSUE_LINK, [
        {"id": "1", "ticket_id": 10, "issue_id": "9001", "issue_key": "MOB-91"},
        {"id": "2", "ticket_id": 10, "issue_id": "9002", "issue_key": "APP-2"},
        {"id": "3", "ticket_id": 11, "issue_id": "9002", "issue_key": "APP-2"},
        {"id": "4", "ticket_id": 12, "issue_id": "777"},  # no key: a deleted issue's
        {"id": "5", "ticket_id": 13, "issue_id": "9003", "issue_key": "OPS-4"},
        {"id": "6", "issue_id": "9002", "issue_key": "APP-2"},  # names no ticket
    ])  # fmt: skip
    # A later stream of the same connector reads link 3 again, now on ticket 12, and link 7
    # for the first time; the first stream's link 3 is replaced in its place.
    put(store, "zendesk", "jira_links_2", ISSUE_LINK, [
        {"id": "7", "ticket_id": 12, "issue_id": "9001", "issue_key": "PLAT-11"},
        {"id": "3", "ticket_id": 12, "issue_id": "9002", "issue_key": "APP-2"},
    ])  # fmt: skip


def test_each_tickets_links_come_as_a_world_holding_them_lists_them(store_url: str) -> None:
    store = Store(store_url)
    fill(store)
    held = World.load(store)
    with SpilledLinks.of_store(store) as spilled:
        tickets = sorted({*held.links_by_ticket, "zendesk:99"})
        assert links_of(spilled.by_ticket(tickets)) == links_of(held.links_by_ticket)
        assert links_of(spilled.by_ticket(["zendesk:12"]))["zendesk:12"] == [
            ("zendesk:3", "jira_links_2", {"ticket_id": 12, "issue_id": "9002", "issue_key": "APP-2"}),
            ("zendesk:4", "jira_links", {"ticket_id": 12, "issue_id": "777"}),
            ("zendesk:7", "jira_links_2", {"ticket_id": 12, "issue_id": "9001", "issue_key": "PLAT-11"}),
        ]  # fmt: skip
        every = [(link.ref, link.stream, dict(link.fields)) for link in spilled.every()]
    assert every == [(k.ref, k.stream, dict(k.fields)) for k in held.issue_links.values()]
    store.close()


def test_a_world_learns_the_aliases_and_projects_of_links_it_does_not_hold(
    store_url: str,
) -> None:
    store = Store(store_url)
    fill(store)
    held = World.load(store)
    add_aliases(store, held, ["MOB-91"], {})
    bare = World.load(store, skip=(ISSUE_LINK,))
    assert not bare.issue_links
    with SpilledLinks.of_store(store) as spilled:
        learn_from_links(bare, spilled.every())
    add_aliases(store, bare, ["MOB-91"], {})
    assert bare.aliases == held.aliases == {"MOB-91": "PLAT-11"}
    assert bare.by_issue_key["MOB-91"].ref == "jira:9001"
    assert known_projects(bare) == known_projects(held)
    assert "OPS" in known_projects(bare)  # OPS-4's issue is not synced
    store.close()
