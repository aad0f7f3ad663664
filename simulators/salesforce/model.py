"""The simulated org's data: sObject schemas (describe) and rows, with Salesforce's formats.

Rows keep datetimes as epoch seconds (Salesforce stores them at second precision) and render
them as the REST API does (`2024-01-01T00:00:00.000+0000`) or as Bulk API 2.0 CSV does
(`2024-01-01T00:00:00.000Z`). Formula fields are computed when a row is read and, as in
Salesforce, a change to what they depend on does not touch the row's SystemModstamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pmsync.simulators.salesforce.app import SalesforceSimulator

Formula = Callable[["SalesforceSimulator", dict[str, Any]], Any]

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
NUMERIC_TYPES = frozenset({"currency", "double", "percent", "int"})
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character record Id: key prefix, base62 number, case-checksum suffix."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    short = prefix + digits.rjust(12, "0")
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(short[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX[bits]
    return short + suffix


def rest_datetime(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(epoch))


def csv_datetime(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


@dataclass(frozen=True)
class FieldDef:
    """One field of an sObject as describe reports it."""

    name: str
    type: str
    label: str = ""
    custom: bool = False
    updateable: bool = True
    nillable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    formula: Formula | None = None
    formula_text: str | None = None
    length: int = 0

    @property
    def calculated(self) -> bool:
        return self.formula is not None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "custom": self.custom,
            "calculated": self.calculated,
            "calculatedFormula": self.formula_text,
            "updateable": self.updateable and not self.calculated,
            "createable": self.updateable and not self.calculated,
            "nillable": self.nillable,
            "filterable": True,
            "sortable": self.type not in {"textarea"},
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "length": self.length,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
        }


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "currency": "xsd:double",
    "double": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
}


def system_fields() -> list[FieldDef]:
    return [
        FieldDef("Id", "id", "Record ID", updateable=False, nillable=False, length=18),
        FieldDef("IsDeleted", "boolean", "Deleted", updateable=False, nillable=False),
        FieldDef("CreatedDate", "datetime", "Created Date", updateable=False, nillable=False),
        FieldDef(
            "LastModifiedDate", "datetime", "Last Modified Date", updateable=False, nillable=False
        ),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", updateable=False, nillable=False),
    ]


@dataclass
class SObjectTable:
    """One sObject: its schema and its rows (Recycle Bin rows keep IsDeleted = true)."""

    name: str
    key_prefix: str
    label: str = ""
    custom: bool = False
    fields: dict[str, FieldDef] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    delete_log: dict[str, int] = field(default_factory=dict)
    next_number: int = 1

    @classmethod
    def create(
        cls, name: str, key_prefix: str, fields: Iterable[FieldDef], *, custom: bool = False
    ) -> SObjectTable:
        table = cls(name=name, key_prefix=key_prefix, label=name, custom=custom)
        for definition in [*system_fields(), *fields]:
            table.fields[definition.name] = definition
        return table

    def new_id(self) -> str:
        ident = salesforce_id(self.key_prefix, self.next_number)
        self.next_number += 1
        return ident

    def relationship(self, name: str) -> FieldDef | None:
        for definition in self.fields.values():
            if definition.relationship_name == name:
                return definition
        return None

    def describe(self, base_path: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "custom": self.custom,
            "keyPrefix": self.key_prefix,
            "queryable": True,
            "updateable": True,
            "replicateable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "urls": {"describe": f"{base_path}/sobjects/{self.name}/describe"},
        }

    def summary(self, base_path: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "custom": self.custom,
            "keyPrefix": self.key_prefix,
            "queryable": True,
            "updateable": True,
            "replicateable": True,
            "urls": {"describe": f"{base_path}/sobjects/{self.name}/describe"},
        }
