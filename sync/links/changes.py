"""What changed since the last derivation: the records journal, the rules, the day.

Triggers on `records` (migration 0007) add a row to `derive_changes` for every record stored,
changed, revived or tombstoned. A derivation reads the rows, works on what they affect and
deletes exactly the rows it read, in the transaction that stores its links and rollups: a row
committed meanwhile (PostgreSQL assigns sequence numbers before commit) waits for the next one.
`derive_state` says what the stored links and rollups were derived under (the rules'
fingerprint, the day); when either differs, everything is derived again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from pmsync.sync.store.schema import derive_changes, derive_inputs, derive_state, writeback_dirty
from pmsync.sync.store.store import Store, dumps

# The entities derivation reads; a change to any other (a time entry, say) affects no rollup.
DERIVED_FROM = frozenset(
    {
        "feedback",
        "person",
        "organization",
        "account",
        "issue",
        "issue_link",
        "usage",
        "opportunity",
        "opportunity_issue",
        "survey_response",
        "currency_rate",
    }
)
ALL_TARGETS = "*"
# Journal rows kept before the journal is dropped for one full derivation: a daemon that never
# derives (no write-back configured) must not grow it without bound.
JOURNAL_LIMIT = 200_000


@dataclass(frozen=True)
class Change:
    """One journal row: a record that was stored, changed, revived or tombstoned."""

    seq: int
    connector: str
    stream: str
    key: str
    entity: str

    @property
    def ref(self) -> str:
        return f"{self.connector}:{self.key}"


@dataclass
class Scope:
    """Targets whose figures (or remote values) may have changed: issues, tickets, accounts."""

    issues: set[str] = field(default_factory=set)
    tickets: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)

    def refs(self) -> set[str]:
        return self.issues | self.tickets | self.accounts

    def __bool__(self) -> bool:
        return bool(self.issues or self.tickets or self.accounts)


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (pydantic models are dumped first)."""
    plain = [p.model_dump(mode="json") if hasattr(p, "model_dump") else p for p in parts]
    return hashlib.blake2b(dumps(plain).encode(), digest_size=16).hexdigest()


def link_fingerprint(entity: str, fields: Mapping[str, Any]) -> str:
    """A hash of the fields linking reads of an account or an issue: a change elsewhere in the
    record (ARR, status) moves no link."""
    if entity == "account":
        domains = sorted(str(d).lower() for d in fields.get("domains") or [])
        return fingerprint(domains, fields.get("name"))
    return fingerprint(fields.get("id"), fields.get("key"))


def pending_changes(connection: sa.Connection) -> list[Change]:
    rows = connection.execute(sa.select(derive_changes).order_by(derive_changes.c.seq))
    return [Change(r.seq, r.connector, r.stream, r.key, r.entity) for r in rows]


def has_changes(connection: sa.Connection) -> bool:
    return connection.execute(sa.select(derive_changes.c.seq).limit(1)).first() is not None


def consume(connection: sa.Connection, changes: Sequence[Change]) -> None:
    """Delete the journal rows a derivation read (and only those)."""
    seqs = [c.seq for c in changes]
    for start in range(0, len(seqs), 900):
        connection.execute(
            sa.delete(derive_changes).where(derive_changes.c.seq.in_(seqs[start : start + 900]))
        )


def read_state(connection: sa.Connection) -> dict[str, str]:
    return {r.name: r.value for r in connection.execute(sa.select(derive_state))}


def save_state(connection: sa.Connection, values: Mapping[str, str]) -> None:
    connection.execute(sa.delete(derive_state).where(derive_state.c.name.in_(list(values))))
    connection.execute(
        sa.insert(derive_state), [{"name": k, "value": v} for k, v in values.items()]
    )


def stored_inputs(connection: sa.Connection, refs: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(refs))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 900):
        rows = connection.execute(
            sa.select(derive_inputs.c.ref, derive_inputs.c.fingerprint).where(
                derive_inputs.c.ref.in_(wanted[start : start + 900])
            )
        )
        found.update({r.ref: r.fingerprint for r in rows})
    return found


def replace_inputs(connection: sa.Connection, inputs: Mapping[str, tuple[str, str]]) -> None:
    """Store every account's and issue's link fingerprint (ref -> (entity, fingerprint))."""
    connection.execute(sa.delete(derive_inputs))
    rows = [{"ref": r, "entity": e, "fingerprint": f} for r, (e, f) in inputs.items()]
    for start in range(0, len(rows), 5000):
        connection.execute(sa.insert(derive_inputs), rows[start : start + 5000])


def mark_dirty(connection: sa.Connection, connectors: Iterable[str], scope: Scope | None) -> None:
    """Tell each connector's write-back which targets to plan (None: all of them)."""
    rows: list[dict[str, str]] = []
    names = set(connectors)
    if scope is None:
        # "every target" holds whatever else was marked: one row per connector, never a pile.
        connection.execute(sa.delete(writeback_dirty).where(writeback_dirty.c.connector.in_(names)))
        rows = [{"connector": n, "kind": ALL_TARGETS, "ref": ALL_TARGETS} for n in sorted(names)]
    else:
        for kind, refs in (
            ("issue", scope.issues),
            ("ticket", scope.tickets),
            ("account", scope.accounts),
        ):
            for ref in sorted(refs):
                connector = ref.partition(":")[0]
                if connector in names:
                    rows.append({"connector": connector, "kind": kind, "ref": ref})
    for start in range(0, len(rows), 5000):
        connection.execute(sa.insert(writeback_dirty), rows[start : start + 5000])


def dirty_targets(connection: sa.Connection, connector: str) -> tuple[list[int], Scope | None]:
    """(row seqs, scope) of the targets `connector`'s write-back has still to plan; the scope
    is None when every target is to be planned."""
    rows = connection.execute(
        sa.select(writeback_dirty.c.seq, writeback_dirty.c.kind, writeback_dirty.c.ref).where(
            writeback_dirty.c.connector == connector
        )
    ).all()
    scope: Scope | None = Scope()
    for row in rows:
        if row.kind == ALL_TARGETS:
            scope = None
        elif scope is not None:
            {"issue": scope.issues, "ticket": scope.tickets, "account": scope.accounts}[
                row.kind
            ].add(row.ref)
    return [r.seq for r in rows], scope


def clear_dirty(connection: sa.Connection, seqs: Sequence[int]) -> None:
    for start in range(0, len(seqs), 900):
        connection.execute(
            sa.delete(writeback_dirty).where(writeback_dirty.c.seq.in_(seqs[start : start + 900]))
        )


def has_full_dirty(connection: sa.Connection) -> bool:
    """Whether some connector has still to plan every target."""
    query = sa.select(writeback_dirty.c.seq).where(writeback_dirty.c.kind == ALL_TARGETS)
    return connection.execute(query.limit(1)).first() is not None


def has_dirty(connection: sa.Connection) -> bool:
    """Whether some connector has still to plan some target."""
    return connection.execute(sa.select(writeback_dirty.c.seq).limit(1)).first() is not None


def start_journal(store: Store) -> None:
    """Have the triggers journal changes from now on (committed before a derivation reads)."""
    with store.engine.connect() as connection:
        if "journal" in read_state(connection):
            return
    with store.transaction() as connection:
        if "journal" not in read_state(connection):
            save_state(connection, {"journal": "on"})


def trim_journal(store: Store, limit: int = JOURNAL_LIMIT) -> bool:
    """Drop the journal when it holds more than `limit` rows (by its sequence numbers, read
    from the primary key's ends), and forget the rules it was derived under: the next
    derivation then derives everything, which needs no journal. True when it was dropped."""
    span = sa.select(sa.func.min(derive_changes.c.seq), sa.func.max(derive_changes.c.seq))
    with store.engine.connect() as connection:
        low, high = connection.execute(span).one()
    if low is None or high - low + 1 <= limit:
        return False
    with store.transaction() as connection:
        connection.execute(sa.delete(derive_changes).where(derive_changes.c.seq <= high))
        connection.execute(sa.delete(derive_state).where(derive_state.c.name == "rules"))
    return True
