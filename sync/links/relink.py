"""Link the changed tickets again, alone, against every account, person and issue.

A ticket's links depend on the ticket, on the records it can name (accounts, its requester,
contacts, organizations, issues, integration links) and on the rules; never on another ticket.
When only tickets changed (besides account and issue values, which move no link:
`incremental.py`), linking the changed tickets in a World holding everything but the other
tickets (and of the people, the contacts and their requesters) gives them the links a full
derivation would. Old issue keys are looked up for the keys these tickets name, as a full
derivation does for every ticket's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pmsync.sync.links.aliases import KeyLookup, add_aliases
from pmsync.sync.links.incremental import TICKETS, load_records, requesters, stored_links
from pmsync.sync.links.linker import Linker, LinkResult
from pmsync.sync.links.world import Entity, World
from pmsync.sync.store.store import Store

# What linking does not read: every ticket but the changed ones is left in the store.
NOT_LINKED_FROM = (TICKETS, "usage", "opportunity", "opportunity_issue", "survey_response")


@dataclass
class Relinked:
    """The changed tickets' links before (stored) and now, and those still live."""

    changed: set[str]
    old: LinkResult
    new: LinkResult
    tickets: dict[str, Entity]

    def issues(self) -> set[str]:
        """Issues a changed ticket asked for before or asks for now: their rollups move."""
        found: set[str] = set()
        for result in (self.old, self.new):
            for per_ticket in result.issues_of.values():
                found.update(per_ticket)
        return found

    def accounts(self) -> set[str]:
        """Accounts a changed ticket belonged to before or now: their figures move."""
        return {
            link.target for result in (self.old, self.new) for link in result.account_of.values()
        }

    def patch(self, world: World, result: LinkResult) -> None:
        """Put the changed tickets as they are now, with their new links, into a World read with
        the stored links (`scoped_world`)."""
        for ticket in self.changed:
            world.tickets.pop(ticket, None)
            result.account_of.pop(ticket, None)
            result.issues_of.pop(ticket, None)
        world.tickets.update(self.tickets)
        result.account_of.update(self.new.account_of)
        result.issues_of.update(self.new.issues_of)
        result.unresolved = list(self.new.unresolved)
        result.problems = list(self.new.problems)


def relink(
    store: Store,
    linker: Linker,
    lookups: Mapping[str, KeyLookup],
    tickets: set[str],
    streams: Mapping[str, Sequence[Sequence[str]]],
) -> Relinked:
    """Link `tickets` (refs; deleted ones get no link) as a full derivation would: with the
    contacts and the changed tickets' own requesters as the only people (`requesters`), so a
    few changed tickets do not read every end user of the helpdesk."""
    world = World.load(store, skip=NOT_LINKED_FROM, contacts_only=True)
    with store.engine.connect() as connection:
        load_records(connection, world.tickets, TICKETS, tickets, streams)
        old = stored_links(connection, tickets)
    world.people = requesters(store, world, world.tickets.values())
    add_aliases(store, world, linker.named_keys(world), lookups)
    return Relinked(set(tickets), old, linker.link(world), dict(world.tickets))
