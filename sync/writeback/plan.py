"""Plan write-back: every write that would happen (target, field, old -> new), nothing written.

A write is planned only for declared fields, and only when the value differs from what is there:
the remote value from the last synced copy of the target when that copy is newer than our last
write, else the value our ledger says we wrote. A field a person changed since we wrote it
follows the declared policy (overwrite, or keep and report).
"""

from __future__ import annotations

import difflib
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from pmsync.connectors.base import MISSING, Connector, FieldInfo
from pmsync.errors import ConfigError, PmsyncError, Problem
from pmsync.sync.links.derive import Derived
from pmsync.sync.links.models import WritebackSpec
from pmsync.sync.links.rollups import Rollup
from pmsync.sync.links.world import Entity
from pmsync.sync.mapping.transforms import format_datetime
from pmsync.sync.store.schema import (
    loop_closures,
    records,
    writeback_gone,
    writeback_intents,
    writeback_ledger,
)
from pmsync.sync.store.store import Store, dumps
from pmsync.sync.writeback.figures import figures_for, issue_status_text, targets_of
from pmsync.sync.writeback.settings import CloseLoopSettings, WritebackSettings

Action = Literal["field", "property", "note"]


@dataclass(frozen=True)
class PlannedWrite:
    """One write: where, which field, what is there now and what would be written."""

    writeback: str
    connector: str
    object_name: str
    target_key: str
    target_label: str
    action: Action
    field: str
    field_label: str
    old: Any
    new: Any
    human_edit: bool = False
    clears: bool = False  # nobody asks for the target any more: its figure is emptied

    def describe(self) -> str:
        reason = "  (nobody asks for it)" if self.clears else ""
        return (
            f"{self.connector} {self.target_label} {self.field_label}: "
            f"{_show(self.old)} -> {_show(self.new)}{reason}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "writeback": self.writeback,
            "connector": self.connector,
            "object": self.object_name,
            "target": self.target_key,
            "label": self.target_label,
            "action": self.action,
            "field": self.field,
            "field_label": self.field_label,
            "old": _jsonable(self.old),
            "new": _jsonable(self.new),
            "human_edit": self.human_edit,
            "clears": self.clears,
        }


@dataclass(frozen=True)
class GuardTrip:
    writeback: str
    changed: int
    eligible: int
    share: float


@dataclass
class Plan:
    plan_id: str
    writes: list[PlannedWrite] = field(default_factory=list)
    kept: list[PlannedWrite] = field(default_factory=list)
    guard: list[GuardTrip] = field(default_factory=list)
    loops: list[tuple[str, str, str]] = field(default_factory=list)  # (issue, ticket, marker)

    def blocked(self, confirm: bool) -> bool:
        return bool(self.guard) and not confirm

    @property
    def clearing(self) -> list[PlannedWrite]:
        """Writes that empty figures of targets nobody asks for any more."""
        return [w for w in self.writes if w.clears]


class GuardTripped(PmsyncError):
    """The plan changes too much at once; someone must confirm it."""

    def __init__(self, trips: Sequence[GuardTrip]) -> None:
        self.trips = list(trips)
        parts = [
            f"{t.writeback}: {t.changed} of {t.eligible} targets ({t.share:.0%})" for t in trips
        ]
        super().__init__(
            "the plan would change more targets than writeback.max_change_share allows ("
            + "; ".join(parts)
            + "); check `pmsync plan`, then run `pmsync apply --confirm`"
        )


SHOWN_JSON = 60  # a longer document (an issue property) is summarised in `describe()`


def _show(value: Any) -> str:
    if value is MISSING or value is None:
        return "(empty)"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if not isinstance(value, str) and len(text) > SHOWN_JSON:
        return f"{{...}} ({len(text):,} characters; --json shows it)"
    return repr(text) if isinstance(value, str) else text


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def normalize(value: Any) -> Any:
    """Compare values as a tool would show them: 1240000.0 == 1240000, None == '',
    "2026-01-05T00:00:00Z" == "2026-01-05T00:00:00.000+0000"."""
    if value is MISSING or value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _normal_number(value)
    if isinstance(value, str):
        return _normal_text(value)
    return value


def _normal_number(value: float) -> Any:
    if not math.isfinite(value):
        return str(value)
    rounded = round(float(value), 2)
    return int(rounded) if rounded.is_integer() else rounded


def _normal_text(value: str) -> Any:
    text = value.strip()
    if not text:
        return None
    converted: Any = value
    if _DATETIME.match(text):
        try:
            converted = format_datetime(text)
        except ValueError:
            converted = value
    else:
        try:
            number = float(text.replace(",", ""))
            converted = _normal_number(number) if math.isfinite(number) else value
        except ValueError:
            converted = value
    return converted


def matches(connector: str, connector_type: str, wanted: str) -> bool:
    return wanted in (connector, connector_type)


class FieldResolver:
    """Declared field names -> field ids, from the connector's discovery; errors list candidates."""

    def __init__(self) -> None:
        self._fields: dict[tuple[str, str], Sequence[FieldInfo]] = {}

    def resolve(
        self, connector: Connector, object_name: str, names: Sequence[str], file: str, where: str
    ) -> tuple[dict[str, str], list[Problem]]:
        slot = (connector.name, object_name)
        if slot not in self._fields:
            self._fields[slot] = connector.fields_of(object_name)
        resolved: dict[str, str] = {}
        problems: list[Problem] = []
        for name in names:
            match = _resolve_one(self._fields[slot], name)
            if not isinstance(match, str):  # a field created since the fields were cached?
                self._fields[slot] = connector.fields_of(object_name, fresh=True)
                match = _resolve_one(self._fields[slot], name)
            if isinstance(match, str):
                resolved[name] = match
            else:
                problems.append(Problem(file, f"{where}.fields.{name}", match[0]))
        return resolved, problems


def _resolve_one(infos: Sequence[FieldInfo], name: str) -> str | tuple[str]:
    ident = {str(i.extra.get("id", i.name)): i for i in infos}
    if name in ident:
        return name
    by_name = [i for i in infos if i.name == name]
    if by_name:
        return str(by_name[0].extra.get("id", by_name[0].name))
    labelled = [i for i in infos if i.label == name] or [
        i for i in infos if i.label.lower() == name.lower()
    ]
    if len(labelled) == 1:
        return str(labelled[0].extra.get("id", labelled[0].name))
    if len(labelled) > 1:
        ids = ", ".join(f"{i.label} ({i.extra.get('id', i.name)})" for i in labelled)
        return (f"'{name}' names several fields: {ids}; use the id",)
    pool = {**{i.label: i for i in infos if i.label}, **{i.name: i for i in infos}}
    close = difflib.get_close_matches(name, list(pool), n=5, cutoff=0.5)
    shown = ", ".join(f"'{c}' ({pool[c].extra.get('id', pool[c].name)})" for c in close)
    return (f"no field '{name}' on this object; candidates: {shown or 'none close'}",)


def build_plan(
    store: Store,
    derived: Derived,
    writebacks: Mapping[str, tuple[str, WritebackSpec]],
    connectors: Mapping[str, Connector],
    settings: WritebackSettings,
    close_loop: CloseLoopSettings,
    *,
    plan_id: str | None = None,
) -> Plan:
    """Every write the declared write-backs would make now; ConfigError on unknown fields.

    Write-backs whose connector is not among `connectors` (a disabled one) plan nothing; names
    that match no configured connector were refused when the mappings were loaded.
    """
    planner = Planner(store, writebacks, connectors, settings, close_loop, plan_id=plan_id)
    planner.add(derived)
    return planner.finish()


def build_plan_chunked(
    store: Store,
    chunks: Iterable[Derived],
    writebacks: Mapping[str, tuple[str, WritebackSpec]],
    connectors: Mapping[str, Connector],
    settings: WritebackSettings,
    close_loop: CloseLoopSettings,
    *,
    plan_id: str | None = None,
) -> Plan:
    """`build_plan` of every target, from scoped derivations that together hold each target
    once (`derive_chunks`): the same plan, without a World of every ticket."""
    planner = Planner(
        store, writebacks, connectors, settings, close_loop, plan_id=plan_id, chunked=True
    )
    for derived in chunks:
        planner.add(derived)
    return planner.finish()


class Planner:
    """Plans the declared write-backs over one derivation, or over chunks of targets that
    together are every target (`chunked`), and decides the mass-change guard once, over all.

    What every chunk shares is read once: the fields each write-back's targets resolve to (the
    tools' field catalogues), the writes sent but never recorded, the targets an API said are
    gone, and the loops closed. Each write-back's tally of eligible and changed targets is
    carried across chunks: a guard decided per chunk would let a mass change through a few
    targets at a time, or hold a small one whose changes all fall in one chunk.
    """

    def __init__(
        self,
        store: Store,
        writebacks: Mapping[str, tuple[str, WritebackSpec]],
        connectors: Mapping[str, Connector],
        settings: WritebackSettings,
        close_loop: CloseLoopSettings,
        *,
        plan_id: str | None = None,
        chunked: bool = False,
    ) -> None:
        self.store, self.writebacks, self.connectors = store, writebacks, connectors
        self.settings, self.close_loop, self.chunked = settings, close_loop, chunked
        self.shared = _Shared(_load_in_flight(store), _load_gone(store))
        self.parts = {name: Plan("") for name in writebacks}  # writes and kept, by write-back
        self.tallies = {name: _Tally() for name in writebacks}
        self.loops = Plan(plan_id or uuid.uuid4().hex[:16])
        self._done_loops: set[tuple[str, str]] | None = None

    def add(self, derived: Derived) -> None:
        """Plan the targets of `derived` (of its scope, when it has one)."""
        if self.chunked and derived.scope is None:
            raise ValueError("a chunk of targets needs a scope")
        planning = self._planning(derived)
        for name, (file, spec) in self.writebacks.items():
            _plan_writeback(self.parts[name], planning, name, file, spec, self.tallies[name])
        if self.close_loop.enabled and not self.shared.problems:
            only = derived.scope.tickets if self.chunked and derived.scope else None
            _plan_loops(self.loops, planning, self.close_loop, self.done_loops(), only)

    def finish(self) -> Plan:
        """The plan: each write-back's writes, then the loops'; the guard over every chunk."""
        ConfigError.collect(self.shared.problems)
        plan = Plan(self.loops.plan_id)
        for name, part in self.parts.items():
            plan.writes.extend(part.writes)
            plan.kept.extend(part.kept)
            _check_guard(plan, name, self.tallies[name], self.settings)
        plan.writes.extend(self.loops.writes)
        plan.loops.extend(self.loops.loops)
        return plan

    def done_loops(self) -> set[tuple[str, str]]:
        """(issue, ticket) of every loop closed, read once."""
        if self._done_loops is None:
            self._done_loops = _load_done_loops(self.store)
        return self._done_loops

    def _planning(self, derived: Derived) -> _Planning:
        scope = derived.scope.refs() if derived.scope is not None else None
        memory = _Memory.build(_load_ledger(self.store, scope), self.shared)
        # A scoped derivation planned alone weighs its changes against every live target;
        # chunks together hold every target, each counted where it is planned.
        weigh_all = derived.scope is not None and not self.chunked
        return _Planning(
            self.store, derived, self.connectors, self.settings, memory, self.shared, weigh_all
        )


@dataclass
class _Shared:
    """What the chunks of one plan share: in-flight values, gone targets, resolved fields and
    the problems found resolving them."""

    in_flight: dict[tuple[str, str, str, str], list[Any]]
    gone: dict[tuple[str, str, str], datetime]
    resolver: FieldResolver = field(default_factory=FieldResolver)
    # By (write-back, connector, stream): declared name -> field id; None: a name is unknown.
    resolved: dict[tuple[str, str, str], dict[str, str] | None] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Planning:
    """What every write-back's planning of one derivation reads."""

    store: Store
    derived: Derived
    connectors: Mapping[str, Connector]
    settings: WritebackSettings
    memory: _Memory
    shared: _Shared
    weigh_all: bool  # count the connector's live targets outside the scope as eligible


@dataclass
class _Tally:
    """Targets a write-back may change, and those it does: the mass-change guard's inputs."""

    eligible: int = 0
    changed: set[str] = field(default_factory=set)


def _plan_writeback(
    plan: Plan, planning: _Planning, name: str, file: str, spec: WritebackSpec, tally: _Tally
) -> None:
    """Plan one declared write-back's fields and property for the derivation's targets,
    counting them in `tally` (the guard is checked once every target is planned)."""
    figures = figures_for(planning.derived, spec.target, spec.rollup)
    for (connector_name, stream), group in _targets_by_stream(planning, spec).items():
        resolved = _resolve_fields(planning, name, file, spec, connector_name, stream)
        if resolved is None:
            continue
        raws = _raw_payloads(planning.store, connector_name, stream, [t.key for t in group])
        for target in group:
            raw, seen_at = raws.get(target.key, ({}, None))
            fields = _target_fields(planning, spec, target, figures, resolved, raw, seen_at)
            if fields is None:
                continue
            tally.eligible += 1
            _plan_fields(plan, planning, name, spec, target, fields, tally)
            _plan_property(plan, planning, name, spec, target, tally, empty=fields.clears)
        if planning.weigh_all:  # the guard weighs a change against every target
            tally.eligible += _live_count(planning.store, connector_name, stream) - len(group)


def _resolve_fields(
    planning: _Planning, name: str, file: str, spec: WritebackSpec, connector: str, stream: str
) -> dict[str, str] | None:
    """The write-back's declared fields as field ids on this stream, resolved once per plan
    (its problems reported once); None: some name is unknown."""
    slot = (name, connector, stream)
    shared = planning.shared
    if slot not in shared.resolved:
        resolved, found = shared.resolver.resolve(
            planning.connectors[connector], stream, list(spec.fields), file, f"writeback.{name}"
        )
        shared.problems.extend(found)
        shared.resolved[slot] = None if found else resolved
    return shared.resolved[slot]


def _target_fields(
    planning: _Planning,
    spec: WritebackSpec,
    target: Entity,
    figures: Mapping[str, tuple[dict[str, Any], bool]],
    resolved: Mapping[str, str],
    raw: Mapping[str, Any],
    seen_at: datetime | None,
) -> _Fields | None:
    """What to compare on one target; None: it is not planned (gone, or left alone)."""
    slot = (target.connector, target.stream, target.key)
    if planning.memory.is_gone(slot, seen_at):
        return None  # the API said 404; wait until a read sees it again
    values, empty = figures.get(target.ref, ({}, True))
    if empty:
        if spec.when_no_demand == "keep" and not planning.memory.wrote_to(slot):
            return None  # nobody asks for it, pmsync never wrote there: left alone
        values = {}  # nobody asks for it: every declared figure is emptied
    return _Fields(resolved, values, raw, seen_at, clears=empty)


def _live_count(store: Store, connector: str, stream: str) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).where(
                    records.c.connector == connector,
                    records.c.stream == stream,
                    records.c.deleted_at.is_(None),
                )
            ).scalar_one()
        )


@dataclass(frozen=True)
class _Fields:
    """One target's declared fields: resolved ids, the figures, and what the target shows."""

    resolved: Mapping[str, str]
    values: Mapping[str, Any]
    raw: Mapping[str, Any]
    seen_at: datetime | None
    clears: bool


def _targets_by_stream(
    planning: _Planning, spec: WritebackSpec
) -> dict[tuple[str, str], list[Entity]]:
    """The write-back's targets held by its (enabled) connector, by (connector, stream)."""
    connectors = planning.connectors
    by_stream: dict[tuple[str, str], list[Entity]] = {}
    for target in targets_of(planning.derived, spec.target).values():
        connector = connectors.get(target.connector)
        if connector is not None and matches(target.connector, connector.type_name, spec.connector):
            by_stream.setdefault((target.connector, target.stream), []).append(target)
    return by_stream


def _plan_fields(
    plan: Plan,
    planning: _Planning,
    name: str,
    spec: WritebackSpec,
    target: Entity,
    fields: _Fields,
    tally: _Tally,
) -> None:
    """A write for each declared field whose value differs from what the target shows."""
    connector = planning.connectors[target.connector]
    for declared, figure in spec.fields.items():
        field_id = fields.resolved[declared]
        slot = (target.connector, target.stream, target.key, field_id)
        new = fields.values.get(figure)
        decision = _decide(
            new,
            connector.field_value(dict(fields.raw), field_id),
            planning.memory.ledger.get(slot),
            fields.seen_at,
            planning.memory.in_flight.get(slot, ()),
        )
        if decision is None:
            continue
        old, human = decision
        planned = PlannedWrite(
            name,
            target.connector,
            target.stream,
            target.key,
            _label(target),
            "field",
            field_id,
            declared,
            old,
            new,
            human,
            clears=fields.clears,
        )
        if human and spec.on_human_edit == "keep":
            plan.kept.append(planned)
            continue
        plan.writes.append(planned)
        tally.changed.add(target.ref)


def _plan_property(
    plan: Plan,
    planning: _Planning,
    name: str,
    spec: WritebackSpec,
    target: Entity,
    tally: _Tally,
    *,
    empty: bool,
) -> None:
    """The rollup's provenance as an issue property, when it changed since pmsync wrote it.

    Properties are pmsync's own: one is written for an issue nobody asks for only to replace a
    provenance pmsync wrote earlier.
    """
    derived = planning.derived
    if not (
        spec.property
        and spec.target == "issue"
        and target.ref in derived.rollups.get(spec.rollup, {})
    ):
        return
    document = _provenance(derived, spec.rollup, target.ref)
    slot = (target.connector, target.stream, target.key, f"property:{spec.property}")
    entry = planning.memory.ledger.get(slot)
    if entry is None and empty:
        return
    if entry is not None and entry.value == dumps(document):
        return
    plan.writes.append(
        PlannedWrite(
            name,
            target.connector,
            target.stream,
            target.key,
            _label(target),
            "property",
            spec.property,
            f"property {spec.property}",
            "(previous provenance)" if entry else MISSING,
            document,
        )
    )
    tally.changed.add(target.ref)


def _check_guard(plan: Plan, name: str, tally: _Tally, settings: WritebackSettings) -> None:
    """Hold the write-back for confirmation when it changes too large a share of its targets."""
    changed = len(tally.changed)
    share = changed / tally.eligible if tally.eligible else 0.0
    if changed >= max(1, settings.guard_min_targets) and share > settings.max_change_share:
        plan.guard.append(GuardTrip(name, changed, tally.eligible, share))


@dataclass(frozen=True)
class _Ledger:
    value: str
    written_at: datetime


def _decide(
    new: Any,
    remote: Any,
    entry: _Ledger | None,
    seen_at: datetime | None,
    in_flight: Sequence[Any] = (),
) -> tuple[Any, bool] | None:
    """None: nothing to write. Else (old value to show, whether a person changed it).

    `in_flight` holds values of writes sent but never recorded (the process died between the
    API call and the ledger): finding one of them at the target is our write, not a person's.
    """
    target = normalize(new)
    if target is None and remote is MISSING and entry is None:
        return None  # nothing to clear that we can see, and nothing of ours there
    ours = normalize(orjson.loads(entry.value)) if entry else None
    fresh = remote is not MISSING and (
        entry is None or (seen_at is not None and seen_at > entry.written_at)
    )
    if fresh:
        current = normalize(remote)
        if current == target:
            return None
        human = entry is not None and current != ours and current not in in_flight
        return remote, human
    if entry is not None and ours == target:
        return None
    return (orjson.loads(entry.value) if entry else remote), False


def _label(target: Entity) -> str:
    if target.fields.get("key"):
        return str(target.fields["key"])
    if target.fields.get("name"):
        return f"{target.fields['name']} ({target.key})"
    return f"#{target.key}"


# The longest issue property pmsync writes, in characters of its JSON text (Jira allows 32 KB).
PROPERTY_LIMIT = 30_000


def _provenance(derived: Derived, rollup: str, issue_ref: str) -> dict[str, Any]:
    """The rollup and what it was computed from, trimmed to fit an issue property."""
    return property_document(rollup, derived.rollups[rollup][issue_ref])


def property_document(rollup: str, roll: Rollup) -> dict[str, Any]:
    """The issue property of `roll`: its figures and accounts, the last accounts (the smallest)
    dropped while its JSON text is longer than `PROPERTY_LIMIT` (then marked truncated)."""
    accounts = [
        {k: a.get(k) for k in ("ref", "name", "arr", "currency", "arr_reporting", "tickets")}
        for a in roll.provenance["accounts"]
    ]
    document = {
        "rollup": rollup,
        "figures": roll.value(),
        "accounts": accounts,
        "unconverted_currency": roll.provenance["unconverted_currency"],
    }
    if len(dumps(document)) > PROPERTY_LIMIT and accounts:
        document["truncated"] = True
        document["accounts"] = accounts[: _accounts_fitting(document, accounts)]
    return document


def _accounts_fitting(document: Mapping[str, Any], accounts: Sequence[Any]) -> int:
    """How many of `accounts` (the first ones) `document` can hold within `PROPERTY_LIMIT`.

    Its text is that of the document without accounts plus each account's text and a comma
    between two, so one dump per account finds the count. Dumping the whole document again
    for each account dropped was quadratic: after 1% of the accounts changed at 10x the demo,
    the issues they reach hold hundreds of accounts each, and those dumps took a third of the
    cycle's planning."""
    room = PROPERTY_LIMIT - len(dumps({**document, "accounts": []}))
    used = -1  # no comma before the first
    for count, account in enumerate(accounts):
        used += len(dumps(account)) + 1
        if used > room:
            return count
    return len(accounts)


@dataclass
class _Memory:
    """What pmsync wrote (the ledger), what it sent without recording (in flight), and the
    targets an API said are gone."""

    ledger: dict[tuple[str, str, str, str], _Ledger]
    in_flight: dict[tuple[str, str, str, str], list[Any]]
    targets: set[tuple[str, str, str]]
    gone: dict[tuple[str, str, str], datetime] = field(default_factory=dict)

    @classmethod
    def build(cls, ledger: dict[tuple[str, str, str, str], _Ledger], shared: _Shared) -> _Memory:
        """The ledger of some targets (or all), with what every chunk shares."""
        targets = {slot[:3] for slot in ledger} | {slot[:3] for slot in shared.in_flight}
        return cls(ledger, shared.in_flight, targets, shared.gone)

    def wrote_to(self, target: tuple[str, str, str]) -> bool:
        return target in self.targets

    def is_gone(self, target: tuple[str, str, str], seen_at: datetime | None) -> bool:
        """The API answered 404 for it, and no read has seen it since."""
        gone_at = self.gone.get(target)
        return gone_at is not None and (seen_at is None or seen_at <= gone_at)


def _load_gone(store: Store) -> dict[tuple[str, str, str], datetime]:
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(writeback_gone))
        return {(r.connector, r.object_name, r.target_key): r.gone_at for r in rows}


def _load_in_flight(store: Store) -> dict[tuple[str, str, str, str], list[Any]]:
    """Values of field writes sent by an apply that died before recording them."""
    found: dict[tuple[str, str, str, str], list[Any]] = {}
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(writeback_intents).where(
                writeback_intents.c.state == "pending", writeback_intents.c.action == "field"
            )
        )
        for r in rows:
            slot = (r.connector, r.object_name, r.target_key, r.field)
            found.setdefault(slot, []).append(normalize(orjson.loads(r.value)))
    return found


def _load_ledger(
    store: Store, targets: set[str] | None = None
) -> dict[tuple[str, str, str, str], _Ledger]:
    queries = [sa.select(writeback_ledger)]
    if targets is not None:
        keys: dict[str, list[str]] = {}
        for target in sorted(targets):
            connector, _, key = target.partition(":")
            keys.setdefault(connector, []).append(key)
        queries = [
            sa.select(writeback_ledger).where(
                writeback_ledger.c.connector == connector,
                writeback_ledger.c.target_key.in_(chunk[start : start + 900]),
            )
            for connector, chunk in keys.items()
            for start in range(0, len(chunk), 900)
        ]
    found: dict[tuple[str, str, str, str], _Ledger] = {}
    with store.engine.connect() as connection:
        for query in queries:
            for r in connection.execute(query):
                found[(r.connector, r.object_name, r.target_key, r.field)] = _Ledger(
                    r.value, r.written_at
                )
    return found


def _raw_payloads(
    store: Store, connector: str, stream: str, keys: list[str]
) -> dict[str, tuple[dict[str, Any], datetime]]:
    found: dict[str, tuple[dict[str, Any], datetime]] = {}
    with store.engine.connect() as connection:
        for start in range(0, len(keys), 900):
            rows = connection.execute(
                sa.select(records.c.key, records.c.raw, records.c.last_seen_at).where(
                    records.c.connector == connector,
                    records.c.stream == stream,
                    records.c.key.in_(keys[start : start + 900]),
                )
            )
            for key, raw, seen in rows:
                found[key] = (orjson.loads(raw), seen)
    return found


# ---- closing the loop -------------------------------------------------------------------


def loop_marker(issue_ref: str, ticket_ref: str) -> str:
    return f"[pmsync-loop {issue_ref} {ticket_ref}]"


def _loop_ready(issue: Entity, when: Sequence[str]) -> str | None:
    if "done" in when and str(issue.get("status_category", "")).lower() == "done":
        return "done"
    if "released" in when and issue.get("fix_versions") and issue.get("fix_versions_released"):
        return "released"
    return None


def _load_done_loops(store: Store) -> set[tuple[str, str]]:
    with store.engine.connect() as connection:
        query = sa.select(loop_closures.c.issue_ref, loop_closures.c.ticket_ref).where(
            loop_closures.c.state == "done"
        )
        return {(r.issue_ref, r.ticket_ref) for r in connection.execute(query)}


def _asking(derived: Derived, only: set[str] | None) -> dict[str, list[str]]:
    """issue ref -> the tickets (of `only`, when given) that ask for it."""
    asking: dict[str, list[str]] = {}
    for ticket_ref, per_issue in derived.links.issues_of.items():
        if only is not None and ticket_ref not in only:
            continue
        for issue_ref in per_issue:
            asking.setdefault(issue_ref, []).append(ticket_ref)
    return asking


def _plan_loops(
    plan: Plan,
    planning: _Planning,
    settings: CloseLoopSettings,
    done: set[tuple[str, str]],
    only: set[str] | None = None,
) -> None:
    """A note (and the ticket field) for each open ticket waiting on an issue that shipped;
    `only`: of these tickets alone (a chunk plans its own tickets' loops)."""
    derived = planning.derived
    for issue_ref, ticket_refs in sorted(_asking(derived, only).items()):
        issue = derived.world.issues.get(issue_ref)
        if issue is None or _loop_ready(issue, settings.when) is None:
            continue
        for ticket_ref in sorted(ticket_refs):
            ticket = derived.world.tickets.get(ticket_ref)
            connector = planning.connectors.get(ticket.connector) if ticket else None
            if (
                ticket is None
                or connector is None
                or not matches(ticket.connector, connector.type_name, settings.connector)
            ):
                continue
            closed = (issue_ref, ticket_ref) in done
            if not closed and str(ticket.get("status")) in settings.open_statuses:
                _plan_note(plan, issue, ticket, settings)
            elif not closed:
                continue
            if settings.ticket_field:  # also retried when an earlier field write failed
                _plan_loop_field(plan, ticket, connector, settings, planning)


def _plan_note(plan: Plan, issue: Entity, ticket: Entity, settings: CloseLoopSettings) -> None:
    marker = loop_marker(issue.ref, ticket.ref)
    plan.loops.append((issue.ref, ticket.ref, marker))
    plan.writes.append(
        PlannedWrite(
            "close_loop",
            ticket.connector,
            ticket.stream,
            ticket.key,
            f"#{ticket.key}",
            "note",
            marker,  # a note is identified by its loop marker
            "internal note",
            MISSING,
            render_note(settings.note, issue) + f"\n\n{marker}",
        )
    )


def _plan_loop_field(
    plan: Plan,
    ticket: Entity,
    connector: Connector,
    settings: CloseLoopSettings,
    planning: _Planning,
) -> None:
    assert settings.ticket_field is not None
    resolved, problems = planning.shared.resolver.resolve(
        connector, ticket.stream, [settings.ticket_field], "<config>", "close_loop"
    )
    ConfigError.collect(problems)
    field_id = resolved[settings.ticket_field]
    entry = planning.memory.ledger.get((ticket.connector, ticket.stream, ticket.key, field_id))
    if entry is not None and normalize(orjson.loads(entry.value)) == normalize(
        settings.ticket_field_value
    ):
        return
    plan.writes.append(
        PlannedWrite(
            "close_loop",
            ticket.connector,
            ticket.stream,
            ticket.key,
            f"#{ticket.key}",
            "field",
            field_id,
            settings.ticket_field,
            MISSING,
            settings.ticket_field_value,
        )
    )


class _SafeFormat(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_note(template: str, issue: Entity) -> str:
    versions = [str(v) for v in issue.get("fix_versions", [])]
    values = _SafeFormat(
        key=issue.get("key", issue.key),
        summary=issue.get("summary", ""),
        status=issue.get("status", ""),
        fix_versions=", ".join(versions),
        fix_versions_text=f", fix version {', '.join(versions)}" if versions else "",
        resolution_date=issue.get("resolution_date", ""),
        status_line=issue_status_text(issue),
    )
    return template.format_map(values)
