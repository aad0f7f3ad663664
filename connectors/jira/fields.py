"""Jira's field catalogue (GET /field) and the resolution of mapping names to field ids.

Mapping files may name a field by id (`customfield_10016`, `summary`), by JQL clause name
(`cf[10016]`) or by display name (`Story Points`). Display names are not unique in Jira, so a
name that matches several fields, or none, is a configuration error listing the candidates;
the id always works.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pmsync.connectors.base import FieldInfo

# Keys an issue has beside its fields; the connector puts them at the top of each record.
ISSUE_KEYS = frozenset({"id", "key", "self"})
_CLAUSE = re.compile(r"^cf\[(\d+)\]$", re.IGNORECASE)


class FieldNameError(ValueError):
    """A name matches no field, or several; the message lists the candidates."""


@dataclass(frozen=True)
class JiraField:
    """One entry of GET /field."""

    id: str
    name: str
    custom: bool
    schema: Mapping[str, Any]
    clause_names: tuple[str, ...]

    @property
    def kind(self) -> str:
        kind = str(self.schema.get("type") or "any")
        items = self.schema.get("items")
        return f"{kind}<{items}>" if items else kind

    def describe(self) -> str:
        return f"'{self.name}' ({self.id}, {self.kind})"


class FieldCatalog:
    """The fields of one Jira site, searchable by id, clause name and display name."""

    def __init__(self, raw: Iterable[Mapping[str, Any]]) -> None:
        self.fields: dict[str, JiraField] = {}
        for entry in raw:
            if not isinstance(entry, Mapping) or "id" not in entry:
                continue
            field = JiraField(
                id=str(entry["id"]),
                name=str(entry.get("name") or entry["id"]),
                custom=bool(entry.get("custom")),
                schema=entry.get("schema") or {},
                clause_names=tuple(str(c) for c in entry.get("clauseNames") or ()),
            )
            self.fields[field.id] = field

    def resolve(self, name: str) -> str:
        """The id of the field `name` denotes; FieldNameError when it denotes none or several."""
        if name in self.fields:
            return name
        clause = _CLAUSE.match(name)
        if clause and f"customfield_{clause.group(1)}" in self.fields:
            return f"customfield_{clause.group(1)}"
        for matches in (
            [f for f in self.fields.values() if f.name == name],
            [f for f in self.fields.values() if f.name.casefold() == name.casefold()],
        ):
            if len(matches) == 1:
                return matches[0].id
            if len(matches) > 1:
                listed = ", ".join(f.describe() for f in sorted(matches, key=lambda f: f.id))
                raise FieldNameError(
                    f"'{name}' names {len(matches)} Jira fields: {listed}; "
                    "name the one you mean by its id"
                )
        raise FieldNameError(f"no Jira field is named '{name}' or has that id{self._closest(name)}")

    def resolve_all(self, names: Iterable[str]) -> dict[str, str]:
        """name -> field id for every name; one FieldNameError listing every bad name."""
        resolved: dict[str, str] = {}
        problems: list[str] = []
        for name in sorted(set(names)):
            try:
                resolved[name] = self.resolve(name)
            except FieldNameError as exc:
                problems.append(str(exc))
        if problems:
            raise FieldNameError("; ".join(problems))
        return resolved

    def describe(self, field_id: str) -> str:
        field = self.fields.get(field_id)
        return field.describe() if field else f"'{field_id}'"

    def _closest(self, name: str) -> str:
        by_label = {f.name.casefold(): f for f in self.fields.values()}
        by_label.update({f.id.casefold(): f for f in self.fields.values()})
        close = difflib.get_close_matches(name.casefold(), list(by_label), n=5, cutoff=0.6)
        seen: list[JiraField] = []
        for label in close:
            if by_label[label] not in seen:
                seen.append(by_label[label])
        if not seen:
            return " (`pmsync discover <connector> issues` lists every field)"
        return "; candidates: " + ", ".join(f.describe() for f in seen)

    def infos(self) -> list[FieldInfo]:
        """Discovery output: the record keys, then every field by id."""
        keys = [FieldInfo(name, "string", label=name) for name in sorted(ISSUE_KEYS)]
        return keys + [
            FieldInfo(
                f.id,
                f.kind,
                label=f.name,
                custom=f.custom,
                extra={"clause_names": list(f.clause_names), "schema": dict(f.schema)},
            )
            for f in sorted(self.fields.values(), key=lambda f: (f.custom, f.id))
        ]

    def clause_map(self) -> dict[str, str]:
        """clause name -> id: the map the jira library builds from the same catalogue."""
        mapping: dict[str, str] = {}
        for field in self.fields.values():
            for clause in field.clause_names:
                mapping[clause] = field.id
        return mapping


def requested_fields(resolved: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """(field ids to ask Jira for, aliases name -> id for names that are not ids).

    `updated` is always asked for: it is what the stream is ordered and windowed by.
    """
    ids = sorted(set(resolved.values()) | {"updated"})
    aliases = {name: field_id for name, field_id in resolved.items() if name != field_id}
    return ids, aliases
