"""Derive links and rollups from the synced records and store only what changed.

The whole World is re-linked in memory each cycle (cheap next to the API calls that fed it), then
diffed against the stored links and rollups: a changed record therefore changes only the links
and the rollups of the issues it affects, and only those reach the store and write-back.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import orjson
import sqlalchemy as sa

from pmsync.errors import Problem
from pmsync.gcpolicy import bulk_allocation
from pmsync.logs import get_logger
from pmsync.sync.links.aliases import KeyLookup, add_aliases, learn_from_links
from pmsync.sync.links.changes import (
    DERIVED_FROM,
    Change,
    Scope,
    consume,
    fingerprint,
    link_fingerprint,
    mark_dirty,
    pending_changes,
    read_state,
    replace_inputs,
    save_state,
    start_journal,
)
from pmsync.sync.links.chunks import CHUNK_WEIGHT, target_chunks
from pmsync.sync.links.fixed import FixedInputs, fixed_inputs
from pmsync.sync.links.incremental import (
    TICKETS,
    requesters,
    scoped_changes,
    scoped_rollups,
    scoped_world,
    streams_of,
    widen,
)
from pmsync.sync.links.linker import Kind, Link, Linker, LinkResult, Overrides
from pmsync.sync.links.models import LinkSettings, RollupSpec
from pmsync.sync.links.relink import Relinked, relink
from pmsync.sync.links.rollups import Currencies, Rollup, compute_rollups
from pmsync.sync.links.score_models import (
    ScoreSpec,
    issue_fields_read,
    normalises_across_issues,
)
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.links.spilled_links import ISSUE_LINK, SpilledLinks
from pmsync.sync.links.spilled_people import ORGANIZATION, PERSON, SpilledPeople
from pmsync.sync.links.streamed import (
    KINDS,
    LinkedSoFar,
    Streaming,
    chunk_world,
    issue_chunks,
    let_go,
    remove_gone_links,
    remove_gone_rollups,
)
from pmsync.sync.links.voices import Voices, hear_voices
from pmsync.sync.links.world import (
    ACCOUNT_FIELDS,
    ISSUE_FIELDS,
    TICKET_FIELDS,
    Entity,
    World,
    slimmable,
    ticket_batches,
)
from pmsync.sync.store.locks import store_lock
from pmsync.sync.store.schema import links as links_table
from pmsync.sync.store.schema import rollups as rollups_table
from pmsync.sync.store.store import Store, blake2b_content_hash, dumps, utcnow

log = get_logger("pmsync.links")
STREAMING = Streaming()


@dataclass
class Derived:
    """The result of one derivation: what is linked, the rollups, and what changed."""

    world: World
    links: LinkResult
    rollups: dict[str, dict[str, Rollup]]
    currencies: Currencies
    voices: Voices = field(default_factory=Voices)
    links_added: int = 0
    links_removed: int = 0
    changed_rollups: dict[str, list[str]] = field(default_factory=dict)
    # None: the World holds every record. Else an incremental derivation's: the World holds
    # the tickets of these targets only, and only their figures are computed.
    scope: Scope | None = None
    mode: str = "full"  # full, incremental or quiet (nothing changed)
    # Counts the store's persisted derivations: a result is current while it is unchanged.
    generation: int = 0
    # False: a streamed full derivation (`derive(hold=False)`), which stored everything but
    # holds no ticket, no ticket's links, no rollup and no World (`links` holds the unresolved
    # tickets and the overrides' problems only). Consumers that need figures read them from
    # the store, or derive the scope they need (`derive_scope`).
    held: bool = True

    @property
    def problems(self) -> list[Problem]:
        return self.links.problems


_P = ParamSpec("_P")
_R = TypeVar("_R")


def collector_aside(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `function` with the objects that exist before it frozen out of the garbage
    collector's sight (`bulk_allocation`): a daemon holds millions (its last derivations, the
    web view's snapshot), and the full collections that a derivation's allocations set off
    walked them all, half of a 1%-of-accounts derivation's time at 10x the demo."""

    @functools.wraps(function)
    def aside(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with bulk_allocation(one_arena=False):
            return function(*args, **kwargs)

    return aside


def currencies_for(settings: CurrencySettings, world: World) -> Currencies:
    """Rates into the reporting currency: the CRM's (CurrencyType, synced as currency_rate)
    when `from_store` allows, and the configured ones for currencies the CRM lacks.

    Directions differ: a configured rate is the value of one unit of a currency in the reporting
    currency (EUR = 1.08 with USD reporting: 1 EUR is 1.08 USD); a CRM rate is how many units of
    a currency one unit of the corporate currency is worth (EUR 0.925 with a USD corporate
    currency). One unit of X is therefore worth rate(reporting) / rate(X) reporting units, which
    also holds when the reporting currency is not the corporate one.
    """
    rates = {code.upper(): value for code, value in settings.rates.items()}
    if settings.from_store and world.rates:
        reporting_rate = world.rates.get(settings.reporting.upper())
        if reporting_rate:
            rates.update(
                {code: reporting_rate / rate for code, rate in world.rates.items() if rate}
            )
    return Currencies(settings.reporting.upper(), rates)


@collector_aside
def derive(
    store: Store,
    link_settings: LinkSettings,
    overrides: Overrides,
    rollup_specs: Mapping[str, RollupSpec],
    currency: CurrencySettings,
    *,
    persist: bool = True,
    scores: Mapping[str, ScoreSpec] | None = None,
    should_stop: Callable[[], bool] | None = None,
    lookups: Mapping[str, KeyLookup] | None = None,
    projects: Sequence[str] = (),
    incremental: bool = False,
    writers: Sequence[str] = (),
    before_full: Callable[[], None] | None = None,
    hold: bool = True,
    streaming: Streaming = STREAMING,
) -> Derived:
    """Link, roll up, hear the other voices, score, and (when `persist`) store the changes.

    `before_full` is called just before the whole World is read: a caller that keeps an
    earlier derivation lets it go there, so a process holds one World at a time.

    `should_stop` cuts a wait for another process's derivation short (Interrupted). `lookups`
    (by issue connector) resolve issue keys tickets name that are no issue's current key, such
    as old keys of moved issues; `projects` are the configured issue projects.

    `incremental` (with `persist`): derive only what the records changed since the last
    derivation reach (`changes.py`, `incremental.py`); nothing changed, nothing is read (mode
    "quiet"). A persisting derivation tells each connector in `writers` which targets its
    write-back has to plan again (`writeback_dirty`).

    `hold=False` (with `persist`): a derivation of everything is streamed (`_derive_streamed`,
    sizes from `streaming`): its memory does not grow with the tickets, and its result holds
    no figure (`Derived.held`). Incremental and quiet derivations are the same either way.
    """
    linker = Linker(link_settings, overrides, projects=projects)
    declared = dict(scores or {})
    job = _Job(store, linker, rollup_specs, currency, declared, lookups or {}, tuple(writers))
    if not persist:
        if before_full is not None:
            before_full()
        return _derive(job, persist=False)
    with store_lock(store, "derive", should_stop=should_stop):
        start_journal(store)
        rules = fingerprint(
            link_settings,
            overrides.account,
            overrides.issues,
            {k: v.model_dump(mode="json") for k, v in sorted(rollup_specs.items())},
            currency,
            {k: v.model_dump(mode="json") for k, v in sorted(declared.items())},
            sorted(projects),
        )
        with store.engine.connect() as connection:
            state = read_state(connection)
            changes = pending_changes(connection)
        job.state = {"rules": rules, "day": datetime.now(UTC).date().isoformat()}
        job.generation = int(state.get("generation", "0")) + 1
        current = all(state.get(k) == v for k, v in job.state.items())
        if incremental and current:
            if not any(c.entity in DERIVED_FROM for c in changes):
                if changes:
                    with store.transaction() as connection:
                        consume(connection, changes)
                return _quiet(currency, job.generation - 1)
            kept = _kept(state, rollup_specs)
            if kept is not None:
                changed = scoped_changes(store, changes, declared, set(DERIVED_FROM), kept.streams)
                if changed is not None:
                    return _derive_incremental(job, changes, changed, kept)
        job.changes = changes
        job.all_dirty = True
        job.reason = _why_full(state, job.state, changes, incremental=incremental)
        if before_full is not None:
            before_full()
        if not hold:
            return _derive_streamed(job, streaming)
        return _derive(job, persist=True)


def _why_full(
    before: Mapping[str, str],
    now: Mapping[str, str],
    changes: Sequence[Change],
    *,
    incremental: bool,
) -> str:
    """Why a derivation derived everything, for its log line."""
    if not incremental:
        return "asked"
    if "rules" not in before:
        return "first"
    if before.get("rules") != now["rules"]:
        return "rules changed"
    if before.get("day") != now["day"]:
        return "new day"
    entities = sorted({c.entity for c in changes if c.entity in DERIVED_FROM})
    return "changed " + ", ".join(entities)


@dataclass
class _Job:
    """What one derivation works with."""

    store: Store
    linker: Linker
    rollup_specs: Mapping[str, RollupSpec]
    currency: CurrencySettings
    scores: Mapping[str, ScoreSpec]
    lookups: Mapping[str, KeyLookup]
    writers: Sequence[str]
    state: dict[str, str] = field(default_factory=dict)
    changes: Sequence[Change] = ()
    all_dirty: bool = False
    generation: int = 0
    reason: str = ""


def _quiet(currency: CurrencySettings, generation: int) -> Derived:
    derived = Derived(World(), LinkResult(), {}, Currencies(currency.reporting.upper()))
    derived.scope, derived.mode, derived.generation = Scope(), "quiet", generation
    return derived


def _derive(job: _Job, *, persist: bool) -> Derived:
    store, linker = job.store, job.linker
    world, result = _link_all(store, linker, job.lookups)
    world.rates = _crm_rates(store)
    currencies = currencies_for(job.currency, world)
    specs = dict(job.rollup_specs) or {"customer_demand": RollupSpec()}
    rollups = {
        name: compute_rollups(world, result, spec, currencies, name=name)
        for name, spec in specs.items()
    }
    voices = hear_voices(world, rollups, specs, job.scores, currencies)
    derived = Derived(world, result, rollups, currencies, voices)
    if persist:
        with store.transaction() as connection:
            derived.links_added, derived.links_removed = _store_all_links(connection, result)
            for name, per_issue in rollups.items():
                derived.changed_rollups[name] = _store_rollups(connection, name, per_issue)
            consume(connection, job.changes)
            kept = fixed_inputs(world, specs, currencies, datetime.now(UTC).date())
            save_state(connection, _full_state(job, streams_of(world), kept))
            derived.generation = job.generation
            replace_inputs(connection, _link_inputs(world))
            mark_dirty(connection, job.writers, None)
        _log_full(job, derived, mode="held")
    return derived


def _derive_streamed(job: _Job, sizes: Streaming) -> Derived:
    """Derive everything, storing as it goes, holding no ticket beyond a batch or a chunk
    (`streamed.py`): link and store a batch of tickets at a time, remove the links of tickets
    that are gone, then compute and store the rollups a chunk of issues at a time from the
    links just stored. One transaction: readers see the last derivation's links and rollups
    until this one's are all there. What is kept for incremental derivations is saved as
    `_derive` saves it."""
    store = job.store
    with SpilledLinks.of_store(store) as links, SpilledPeople.of_store(store) as people:
        batches = ticket_batches(store, sizes.tickets)
        world = _ticketless_world(
            store, job.linker, job.lookups, batches, links, _streamed_fields(job), people
        )
        world.rates = _crm_rates(store)
        currencies = currencies_for(job.currency, world)
        specs = dict(job.rollup_specs) or {"customer_demand": RollupSpec()}
        kept = _streamed_fixed_inputs(world, people, specs, currencies)
        problems = job.linker.start(world)
        derived = Derived(World(), LinkResult(), {}, currencies, held=False)
        with store.transaction() as connection:
            linking = _Linking(job.linker, store, world, links, people)
            linked = _link_streamed(connection, linking, sizes.tickets)
            linked.removed += remove_gone_links(connection, linked.streams, sizes.refs)
            let_go()
            streams = {**streams_of(world), TICKETS: linked.ticket_streams()}
            derived.changed_rollups = _store_chunked_rollups(
                connection, job, world, _RollupInputs(currencies, kept, streams), sizes
            )
            consume(connection, job.changes)
            save_state(connection, _full_state(job, streams, kept))
            replace_inputs(connection, _link_inputs(world))
            mark_dirty(connection, job.writers, None)
    derived.links = linked.result(problems)
    derived.links_added, derived.links_removed = linked.added, linked.removed
    derived.generation = job.generation
    _log_full(job, derived, mode="streamed")
    return derived


def _streamed_fixed_inputs(
    world: World, people: SpilledPeople, specs: Mapping[str, RollupSpec], currencies: Currencies
) -> dict[str, FixedInputs]:
    """Usage, pipeline and NPS, which read no ticket: computed from the ticket-less World (with
    the contacts and organizations usage records and survey answers are looked up by), as an
    incremental derivation reads them back. Then the World lets go of what they alone read
    (opportunities, usage, survey answers): no rollup of a chunk reads them again, and the
    batches of tickets linked next reuse their memory."""
    people.fill(world, [*world.usage.values(), *world.surveys.values()])
    kept = fixed_inputs(world, specs, currencies, datetime.now(UTC).date())
    world.opportunities, world.opportunity_issues = {}, {}
    world.usage, world.surveys = {}, {}
    return kept


def _streamed_fields(job: _Job) -> dict[str, tuple[str, ...]]:
    """The fields a streamed derivation keeps of accounts and issues: what linking, rollups,
    voices and scores read (no plan, report or view reads its World). At 50,000 issues their
    whole records were the largest thing it held. Issues stay whole when a score names a field
    that cannot be a slot."""
    fields: dict[str, tuple[str, ...]] = {"account": ACCOUNT_FIELDS}
    issue_fields = tuple(dict.fromkeys((*ISSUE_FIELDS, *issue_fields_read(job.scores))))
    if slimmable(issue_fields):
        fields["issue"] = issue_fields
    return fields


def _full_state(
    job: _Job, streams: Mapping[str, list[list[str]]], kept: Mapping[str, FixedInputs]
) -> dict[str, str]:
    """What a full derivation saves: its rules and day, generation, the streams holding each
    entity and each rollup's fixed inputs (what `_kept` reads back)."""
    return {
        **job.state,
        "generation": str(job.generation),
        "streams": dumps(streams),
        **{f"fixed:{name}": inputs.dumps() for name, inputs in kept.items()},
    }


def _log_full(job: _Job, derived: Derived, *, mode: str) -> None:
    log.info(
        "derived",
        reason=job.reason,
        mode=mode,
        links_added=derived.links_added,
        links_removed=derived.links_removed,
        rollups_changed={k: len(v) for k, v in derived.changed_rollups.items()},
        unresolved=len(derived.links.unresolved),
    )


@dataclass(frozen=True)
class _Linking:
    """What linking a batch of tickets reads: the ticket-less World, and what is kept on disk
    (integration links, contacts and organizations), read for each batch's tickets."""

    linker: Linker
    store: Store
    world: World
    links: SpilledLinks
    people: SpilledPeople

    def link(self, tickets: Collection[Entity]) -> LinkResult:
        """The links of `tickets`, with their requesters, integration links, contacts and
        organizations in the World (and only theirs)."""
        world = self.world
        world.people = requesters(self.store, world, tickets)
        world.links_by_ticket = self.links.by_ticket([ticket.ref for ticket in tickets])
        self.people.fill(world, tickets)
        result = LinkResult()
        self.linker.link_tickets(world, tickets, result)
        return result


def _link_streamed(connection: sa.Connection, linking: _Linking, size: int) -> LinkedSoFar:
    """Link the tickets a batch at a time, each batch with its requesters and into a result of
    its own, and make each batch's stored links its links before the next is read.

    A key in two feedback streams of one connector is one ref: the last read wins, as in
    `World.load`; a later batch's diff reads the links an earlier one stored and replaces them."""
    linked = LinkedSoFar()
    for batch in ticket_batches(linking.store, size):
        latest = {ticket.ref: ticket for ticket in batch}
        result = linking.link(list(latest.values()))
        tickets = list(latest)
        counted = [_store_links_of(connection, result, kind, tickets) for kind in KINDS]
        linked.add(tickets, result, (sum(c[0] for c in counted), sum(c[1] for c in counted)))
        linked.streams.update((t.connector, t.stream) for t in latest.values())
        # What a batch leaves in reference cycles (SQLAlchemy's statements, which hold their
        # parameters: the batch's refs) would otherwise wait for a rare collection.
        del latest, result, tickets
        let_go()
    _forget_linking_inputs(linking.world)
    _forget_linking_indexes(linking.world)
    return linked


def _forget_linking_indexes(world: World) -> None:
    """Let go of what only linking (and the fixed inputs, computed before it) looks things up
    by, once a streamed derivation has linked every ticket: the contacts and organizations of
    the last batch, and the accounts and issues by id, key and domain. Its rollups read
    accounts and issues by ref only; the memory goes to the chunks of rollups."""
    world.organizations, world.contacts_by_email = {}, defaultdict(list)
    world.by_account_id, world.accounts_by_domain = {}, defaultdict(list)
    world.by_issue_id, world.by_issue_key = {}, {}


@dataclass(frozen=True)
class _RollupInputs:
    """What each chunk's rollups read besides its tickets: the rates, the inputs that read no
    ticket (by rollup) and the streams holding the tickets."""

    currencies: Currencies
    fixed: Mapping[str, FixedInputs]
    streams: Mapping[str, Sequence[Sequence[str]]]


def _store_chunked_rollups(
    connection: sa.Connection, job: _Job, world: World, inputs: _RollupInputs, sizes: Streaming
) -> dict[str, list[str]]:
    """Compute and store the rollups of a chunk of issues at a time, as `scoped_rollups` does
    for an incremental derivation, from the links stored in this transaction; then delete the
    rollups of issues that are gone. Returns, by rollup, the issues whose rollup changed."""
    specs = dict(job.rollup_specs) or {"customer_demand": RollupSpec()}
    changed: dict[str, list[str]] = {name: [] for name in specs}
    for chunk in _issue_chunks(connection, job.scores, world.issues, sizes):
        scoped, result = chunk_world(connection, world, chunk, inputs.streams)
        rollups, _voices = scoped_rollups(
            scoped, result, chunk, job.rollup_specs, inputs.currencies, job.scores, inputs.fixed
        )
        for name, per_issue in rollups.items():
            changed[name] += _store_rollups(connection, name, per_issue, only=chunk)
        del scoped, result, rollups
        let_go()
    for name in specs:
        changed[name] += remove_gone_rollups(connection, name, world.issues)
    return changed


def _issue_chunks(
    connection: sa.Connection,
    scores: Mapping[str, ScoreSpec],
    issues: Mapping[str, Entity],
    sizes: Streaming,
) -> Iterator[set[str]]:
    """The chunks of issues whose rollups are computed together. A weighted score normalises
    each input across every issue scored: with one declared, all issues are one chunk (and
    every linked ticket is read at once)."""
    if normalises_across_issues(scores):
        return iter([set(issues)] if issues else [])
    return issue_chunks(connection, issues, sizes)


def _link_all(
    store: Store, linker: Linker, lookups: Mapping[str, KeyLookup]
) -> tuple[World, LinkResult]:
    """Every record but the tickets, and every ticket's links: the tickets are read a batch
    at a time, twice (the keys they name, whose old keys are looked up first; then linking),
    and kept with the fields read after linking only (`TICKET_FIELDS`). Of the people, the
    World holds the contacts; a batch's requesters are read with the batch (`requesters`)."""
    with SpilledLinks.of_store(store) as links:
        world = _ticketless_world(store, linker, lookups, ticket_batches(store), links)
        result = linker.start(world)
        for batch in ticket_batches(store):
            # A key in two feedback streams of one connector is one ref: the last read wins,
            # as in `World.load` (an earlier batch's links of it are dropped first).
            latest = {ticket.ref: ticket for ticket in batch}
            _forget_links(result, {key for key in latest if key in world.tickets})
            world.people = requesters(store, world, latest.values())
            world.links_by_ticket = links.by_ticket(list(latest))
            linker.link_tickets(world, latest.values(), result)
            for ticket in latest.values():
                world.tickets[ticket.ref] = ticket.slim(TICKET_FIELDS)
    _forget_linking_inputs(world)
    return world, result


def _ticketless_world(
    store: Store,
    linker: Linker,
    lookups: Mapping[str, KeyLookup],
    batches: Iterable[list[Entity]],
    links: SpilledLinks,
    slim: Mapping[str, tuple[str, ...]] | None = None,
    people: SpilledPeople | None = None,
) -> World:
    """Every record linking reads but the tickets, the people who are no contact and the
    integration links (on disk: `links`, read by each batch of tickets), with the old keys the
    tickets (`batches`, read a batch at a time) name looked up. `slim`: see `World.load`.
    With `people` (on disk too), no contact and no organization either: each batch of tickets
    reads its own (`SpilledPeople.fill`)."""
    if people is None:
        world = World.load(store, skip=(TICKETS, ISSUE_LINK), contacts_only=True, slim=slim)
    else:
        skip = (TICKETS, ISSUE_LINK, PERSON, ORGANIZATION)
        world = World.load(store, skip=skip, slim=slim)
        world.person_streams = list(people.person_streams)
    learn_from_links(world, links.every())
    named: set[str] = set()
    for tickets in batches:
        named |= linker.named_keys(world, tickets)
    add_aliases(store, world, named, lookups)
    return world


def _forget_linking_inputs(world: World) -> None:
    """Let go of what only linking reads, before the rollups are computed: people (the contacts
    that surveys look up stay in `contacts_by_email`) and integration links. No figure, report,
    write-back or view reads them from a derivation; at a million tickets they are hundreds of
    thousands of records."""
    world.people = {}
    world.issue_links = {}
    world.links_by_ticket = defaultdict(list)


def _forget_links(result: LinkResult, tickets: set[str]) -> None:
    """Drop what linking found for `tickets` (read again from another stream)."""
    if not tickets:
        return
    for ticket in tickets:
        result.account_of.pop(ticket, None)
        result.issues_of.pop(ticket, None)
    result.unresolved[:] = [u for u in result.unresolved if u.ticket not in tickets]


def _link_inputs(world: World) -> dict[str, tuple[str, str]]:
    inputs = {
        a.ref: ("account", link_fingerprint("account", a.fields)) for a in world.accounts.values()
    }
    inputs.update(
        {i.ref: ("issue", link_fingerprint("issue", i.fields)) for i in world.issues.values()}
    )
    return inputs


@dataclass(frozen=True)
class _Kept:
    """What the last full derivation kept for incremental ones: inputs and streams."""

    fixed: dict[str, FixedInputs]
    streams: dict[str, list[list[str]]]


def _kept(state: Mapping[str, str], rollup_specs: Mapping[str, RollupSpec]) -> _Kept | None:
    """What the last full derivation kept (None: some of it is missing)."""
    names = list(rollup_specs) or ["customer_demand"]
    if "streams" not in state or any(f"fixed:{name}" not in state for name in names):
        return None
    return _Kept(
        {name: FixedInputs.loads(state[f"fixed:{name}"]) for name in names},
        orjson.loads(state["streams"]),
    )


def _derive_incremental(
    job: _Job, changes: Sequence[Change], changed: Scope, kept: _Kept
) -> Derived:
    """Link the changed tickets again, and re-compute the rollups of the issues they asked
    for before or ask for now and of those the changed accounts and issues reach."""
    store = job.store
    relinked = Relinked(set(), LinkResult(), LinkResult(), {})
    if changed.tickets:
        relinked = relink(store, job.linker, job.lookups, changed.tickets, kept.streams)
    scope = widen(store, Scope(set(changed.issues), set(), set(changed.accounts)))
    scope.issues |= relinked.issues()
    scope.tickets |= set(relinked.tickets)
    scope.accounts |= relinked.accounts()
    world, result = scoped_world(store, scope, kept.streams)
    relinked.patch(world, result)
    world.rates = _crm_rates(store)
    currencies = currencies_for(job.currency, world)
    rollups, voices = scoped_rollups(
        world, result, scope.issues, job.rollup_specs, currencies, job.scores, kept.fixed
    )
    derived = Derived(world, result, rollups, currencies, voices, scope=scope, mode="incremental")
    with store.transaction() as connection:
        if relinked.changed:
            derived.links_added, derived.links_removed = _store_links(
                connection, relinked.new.links(), current=_link_rows(relinked.old.links())
            )
        for name, per_issue in rollups.items():
            derived.changed_rollups[name] = _store_rollups(
                connection, name, per_issue, only=scope.issues
            )
        consume(connection, changes)
        save_state(connection, {"generation": str(job.generation)})
        derived.generation = job.generation
        dirty = Scope(
            {i for refs in derived.changed_rollups.values() for i in refs} | changed.issues,
            scope.tickets & set(world.tickets),  # a deleted ticket is no target
            changed.accounts | relinked.accounts(),
        )
        mark_dirty(connection, job.writers, dirty)
    log.info(
        "derived_incremental",
        changes=len(changes),
        tickets_relinked=len(relinked.changed),
        links_added=derived.links_added,
        links_removed=derived.links_removed,
        issues=len(scope.issues),
        tickets=len(world.tickets),
        rollups_changed={k: len(v) for k, v in derived.changed_rollups.items()},
    )
    return derived


@collector_aside
def derive_scope(
    store: Store,
    rollup_specs: Mapping[str, RollupSpec],
    currency: CurrencySettings,
    scope: Scope,
    *,
    scores: Mapping[str, ScoreSpec] | None = None,
) -> Derived | None:
    """The figures of the targets in `scope` from the stored links (nothing stored): what a
    connector's write-back plans when only these targets changed. None: no full derivation
    has kept the inputs this needs yet."""
    kept = _stored_kept(store, rollup_specs)
    if kept is None:  # no full derivation kept them (yet)
        return None
    inputs = _ScopedInputs(store, kept, _crm_rates(store), rollup_specs, currency, scores or {})
    return inputs.derive(scope)


def derive_chunks(
    store: Store,
    rollup_specs: Mapping[str, RollupSpec],
    currency: CurrencySettings,
    targets: Mapping[str, Collection[str]],
    *,
    scores: Mapping[str, ScoreSpec] | None = None,
    weight: int = CHUNK_WEIGHT,
) -> Iterator[Derived] | None:
    """The figures of every live target of `targets` (kind -> the connectors holding them), a
    chunk of targets at a time (`chunks.py`), each as `derive_scope` computes them: planning
    every target after a full derivation then never holds the whole World. None: no full
    derivation has kept the inputs yet, or a weighted score is declared (it normalises across
    every issue, which no chunk holds)."""
    declared = dict(scores or {})
    if normalises_across_issues(declared):
        return None
    kept = _stored_kept(store, rollup_specs)
    if kept is None:
        return None
    inputs = _ScopedInputs(store, kept, _crm_rates(store), rollup_specs, currency, declared)
    return map(inputs.derive, target_chunks(store, targets, kept.streams, weight))


def _stored_kept(store: Store, rollup_specs: Mapping[str, RollupSpec]) -> _Kept | None:
    with store.engine.connect() as connection:
        return _kept(read_state(connection), rollup_specs)


@dataclass(frozen=True)
class _ScopedInputs:
    """What every scoped derivation of one store state reads alike, read once for all chunks:
    the kept inputs and the CRM's rates."""

    store: Store
    kept: _Kept
    rates: Mapping[str, float]
    rollup_specs: Mapping[str, RollupSpec]
    currency: CurrencySettings
    scores: Mapping[str, ScoreSpec]

    def derive(self, scope: Scope) -> Derived:
        """The figures of the targets in `scope`, from the stored links (nothing stored)."""
        world, result = scoped_world(self.store, scope, self.kept.streams)
        world.rates = dict(self.rates)
        currencies = currencies_for(self.currency, world)
        rollups, voices = scoped_rollups(
            world,
            result,
            scope.issues,
            self.rollup_specs,
            currencies,
            dict(self.scores),
            self.kept.fixed,
        )
        return Derived(world, result, rollups, currencies, voices, scope=scope, mode="incremental")


def _crm_rates(store: Store) -> dict[str, float]:
    rates: dict[str, float] = {}
    for _connector, _stream, _key, (_entity, fields) in store.iter_unified(["currency_rate"]):
        if fields.get("code") and fields.get("rate"):
            rates[str(fields["code"]).upper()] = float(fields["rate"])
    return rates


def _stored_hashes(connection: sa.Connection, name: str, only: set[str] | None) -> dict[str, str]:
    query = sa.select(rollups_table.c.issue_ref, rollups_table.c.content_hash).where(
        rollups_table.c.name == name
    )
    if only is None:
        return {row.issue_ref: row.content_hash for row in connection.execute(query)}
    wanted = sorted(only)
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 900):
        chunk = query.where(rollups_table.c.issue_ref.in_(wanted[start : start + 900]))
        found.update({row.issue_ref: row.content_hash for row in connection.execute(chunk)})
    return found


def _link_rows(links: Iterable[Link]) -> dict[tuple[str, str, str], str]:
    return {(link.kind, link.ticket, link.target): link.rule for link in links}


# Tickets whose stored links one statement reads when every link is diffed (a bound parameter
# each, under SQLite's limit): the stored and wanted links of so many tickets are held at a time.
_LINK_CHUNK = 900


def _store_links(
    connection: sa.Connection,
    links: list[Link],
    *,
    current: dict[tuple[str, str, str], str],
) -> tuple[int, int]:
    """Make the stored links of some tickets `links` (`current`: their stored links, as
    `_link_rows` gives them). Returns (added, removed)."""
    return _write_link_diff(connection, _link_rows(links), current)


def _store_all_links(connection: sa.Connection, result: LinkResult) -> tuple[int, int]:
    """Make the stored links `result`'s, for every ticket. Returns (added, removed).

    The stored links of tickets `result` links no more (or that are gone) are found first, from
    the stored tickets alone; then each kind of link is diffed some tickets at a time, their
    stored links (read by the primary key, which leads with kind and ticket) against their
    wanted ones. So the derivation never holds every stored and every wanted link at once (at
    a million tickets, more than the rest of it)."""
    added = removed = 0
    linked: tuple[tuple[Kind, Mapping[str, object]], ...] = (
        ("ticket_account", result.account_of),
        ("ticket_issue", result.issues_of),
    )
    for kind, of_ticket in linked:
        orphans = _unlinked_tickets(connection, kind, of_ticket)
        counted = _store_links_of(connection, result, kind, [*of_ticket, *orphans])
        added, removed = added + counted[0], removed + counted[1]
    return added, removed


def _store_links_of(
    connection: sa.Connection, result: LinkResult, kind: Kind, tickets: Sequence[str]
) -> tuple[int, int]:
    """Make the stored links of `kind` of `tickets` `result`'s, some tickets at a time: their
    stored links (read by the primary key) against their wanted ones. Returns (added, removed)."""
    added = removed = 0
    for start in range(0, len(tickets), _LINK_CHUNK):
        chunk = tickets[start : start + _LINK_CHUNK]
        wanted = _link_rows(_links_of(result, kind, chunk))
        current = _stored_links_of(connection, kind, chunk)
        counted = _write_link_diff(connection, wanted, current)
        added, removed = added + counted[0], removed + counted[1]
    return added, removed


def _unlinked_tickets(
    connection: sa.Connection, kind: Kind, linked: Mapping[str, object]
) -> list[str]:
    """Tickets with stored links of `kind` that are not among `linked` (read as a stream,
    before anything is written)."""
    query = (
        sa.select(links_table.c.ticket_ref)
        .where(links_table.c.kind == kind)
        .distinct()
        .execution_options(yield_per=5000)
    )
    return [ticket for ticket in connection.execute(query).scalars() if ticket not in linked]


def _links_of(result: LinkResult, kind: Kind, tickets: Iterable[str]) -> Iterator[Link]:
    for ticket in tickets:
        if kind == "ticket_account":
            link = result.account_of.get(ticket)
            if link is not None:
                yield link
        else:
            yield from result.issues_of.get(ticket, {}).values()


def _stored_links_of(
    connection: sa.Connection, kind: Kind, tickets: Sequence[str]
) -> dict[tuple[str, str, str], str]:
    query = sa.select(
        links_table.c.kind, links_table.c.ticket_ref, links_table.c.target_ref, links_table.c.rule
    ).where(links_table.c.kind == kind, links_table.c.ticket_ref.in_(tickets))
    return {
        (row.kind, row.ticket_ref, row.target_ref): row.rule for row in connection.execute(query)
    }


def _write_link_diff(
    connection: sa.Connection,
    wanted: dict[tuple[str, str, str], str],
    current: dict[tuple[str, str, str], str],
) -> tuple[int, int]:
    """Insert, delete and re-rule what turns the stored links `current` into `wanted`."""
    now = utcnow()
    added = [k for k in wanted if k not in current]
    removed = [k for k in current if k not in wanted]
    changed_rule = [k for k in wanted if k in current and current[k] != wanted[k]]
    if added:
        connection.execute(
            sa.insert(links_table),
            [
                {
                    "kind": k[0],
                    "ticket_ref": k[1],
                    "target_ref": k[2],
                    "rule": wanted[k],
                    "linked_at": now,
                }
                for k in added
            ],
        )
    for kind, ticket, target in removed:
        connection.execute(
            sa.delete(links_table).where(
                links_table.c.kind == kind,
                links_table.c.ticket_ref == ticket,
                links_table.c.target_ref == target,
            )
        )
    for kind, ticket, target in changed_rule:
        connection.execute(
            sa.update(links_table)
            .where(
                links_table.c.kind == kind,
                links_table.c.ticket_ref == ticket,
                links_table.c.target_ref == target,
            )
            .values(rule=wanted[(kind, ticket, target)])
        )
    return len(added), len(removed)


def _store_rollups(
    connection: sa.Connection,
    name: str,
    per_issue: dict[str, Rollup],
    *,
    only: set[str] | None = None,
) -> list[str]:
    """Upsert rollups whose content changed; return the issues whose rollup changed.

    `only`: the issues an incremental derivation computed (the others are left as stored)."""
    current = _stored_hashes(connection, name, only)
    now = utcnow()
    changed: list[str] = []
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for issue_ref, rollup in per_issue.items():
        value, provenance = dumps(rollup.value()), dumps(rollup.provenance)
        digest = blake2b_content_hash(value, provenance)
        if current.get(issue_ref) == digest:
            continue
        changed.append(issue_ref)
        row = {
            "issue_key": rollup.issue_key,
            "value": value,
            "provenance": provenance,
            "content_hash": digest,
            "computed_at": now,
        }
        if issue_ref in current:
            updates.append({"b_issue_ref": issue_ref, **row})
        else:
            inserts.append({"name": name, "issue_ref": issue_ref, **row})
    if updates:  # one executemany: a statement per rollup costs more than the rollup
        connection.execute(
            sa.update(rollups_table)
            .where(
                rollups_table.c.name == name,
                rollups_table.c.issue_ref == sa.bindparam("b_issue_ref"),
            )
            .values(
                {
                    k: sa.bindparam(k)
                    for k in ("issue_key", "value", "provenance", "content_hash", "computed_at")
                }
            ),
            updates,
        )
    if inserts:
        connection.execute(sa.insert(rollups_table), inserts)
    gone = set(current) - set(per_issue)
    for issue_ref in gone:  # the issue itself was deleted
        connection.execute(
            sa.delete(rollups_table).where(
                rollups_table.c.name == name, rollups_table.c.issue_ref == issue_ref
            )
        )
        changed.append(issue_ref)
    return changed


def current_generation(store: Store) -> int:
    """The generation of the store's last persisted derivation."""
    with store.engine.connect() as connection:
        return int(read_state(connection).get("generation", "0"))
