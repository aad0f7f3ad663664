"""The compiled record mapper maps every record as the field-by-field reference does.

`CompiledStream.map_record` runs a stream's fields compiled into one function
(`compile_mapper`) and falls back to `map_fields` when a field fails. Whatever a record holds,
the two must give the same unified fields (compared as JSON text, so that 1, 1.0 and True
differ), or fail with the same field and reason. Records are generated from the
paths each mapping reads: the shipped mappings, and one with every field type, required
fields, constants, JMESPath expressions and extra fields.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from pmsync.errors import MappingFailure
from pmsync.sync.mapping.compiler import CompiledStream, compile_mapper
from pmsync.sync.mapping.loader import load_mappings
from tests.conftest import REPO

EVERY_KIND = """
connector = "salesforce"
[streams.Opportunity]
entity = "opportunity"
[streams.Opportunity.fields]
name = { path = "Name", required = true }
amount = { path = "Amount", transforms = [{ multiply = 0.01 }] }
close_date = "CloseDate"
stage = { path = "Stage.Name", transforms = ["lower", { map = { won = "Won" }, fallback = "?" }] }
account_id = { path = "Account.Id", required = true }
is_closed = "IsClosed"
created_at = { path = "CreatedDate", transforms = ["datetime"] }
updated_at = "LastModifiedDate"
issue_keys = { path = "Issues[].key", transforms = ["upper", "unique"] }
currency = { value = "EUR" }
probability = { path = "Probability", transforms = ["number"] }
[streams.Opportunity.extra_fields]
employees = { path = "Account.Employees", transforms = ["integer"] }
flags = "Flags"
"""

KEYS = ["id", "Name", "Stage", "Account", "Id", "key", "value", "tags", "via", "channel"]
LEAVES: list[Any] = [
    None, True, False, 0, 1, -7, 2**53, 1.5, 40.0, -0.0, 1e300, "", " ", "x", "won", "WON", "12",
    "1,200.5", "2024-02-03", "2024-02-03T10:00:00Z", "2024-02-03T10:00:00+02:00", "1700000000",
    "last tuesday", "yes", "no", "a@B.com", "https://www.x.io/y", "Łódź", "invoice", "ios",
]  # fmt: skip


def value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: mostly scalars, some lists and objects (keys the paths read)."""
    kind = rng.random()
    if depth >= 3 or kind < 0.6:
        return rng.choice(LEAVES)
    if kind < 0.8:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def streams(tmp_path: Path) -> list[CompiledStream]:
    shipped = load_mappings(sorted((REPO / "mappings").glob("*.toml")))
    (tmp_path / "every_kind.toml").write_text(EVERY_KIND)
    taxonomy = REPO / "mappings" / "taxonomy.toml"
    extra = load_mappings([taxonomy, tmp_path / "every_kind.toml"])
    found = [*shipped.streams.values(), *extra.streams.values()]
    for stream in found:
        stream.bind_key("id")
    return found


def dumps(unified: dict[str, Any]) -> str:
    """JSON text, which tells 1, 1.0 and True apart (and takes integers of any size)."""
    return json.dumps(unified, sort_keys=True)


def outcome(stream: CompiledStream, record: dict[str, Any], *, reference: bool) -> Any:
    """What mapping `record` gives: (key, stored unified text), or the failure's field and
    reason."""
    try:
        if reference:
            key = stream.key_of(record)
            return key, dumps(stream.map_fields(record, key))
        key, unified = stream.map_record(record)
        return key, dumps(unified)
    except MappingFailure as failure:
        return "failed", failure.field, failure.reason


def test_compiled_mapper_agrees_with_the_field_by_field_mapping(tmp_path: Path) -> None:
    rng = random.Random(14)
    for stream in streams(tmp_path):
        sources = sorted(stream.source_fields | {"id", "Name", "Account", "Stage"})
        for _ in range(400):
            record = {rng.choice(sources): value(rng) for _ in range(rng.randrange(9))}
            if rng.random() < 0.7:
                record["id"] = rng.choice([1, 42, "a1", ""])
            assert outcome(stream, record, reference=False) == outcome(
                stream, record, reference=True
            ), (stream.connector, stream.stream, record)
            if rng.random() < 0.3:  # the fields it reads, nested as the mapping's paths nest
                for spec in stream.fields:
                    if spec.chain and rng.random() < 0.5:
                        node = record
                        for key in spec.chain[:-1]:
                            node = node.setdefault(key, {}) if isinstance(node, dict) else {}
                        if isinstance(node, dict):
                            node[spec.chain[-1]] = value(rng, 2)
                assert outcome(stream, record, reference=False) == outcome(
                    stream, record, reference=True
                ), (stream.connector, stream.stream, record)


def test_a_failing_field_is_named_as_the_reference_names_it(tmp_path: Path) -> None:
    """The compiled mapper gives up on a record a field fails on; the failure reported is the
    first one in field order (a required field left empty before a bad date)."""
    [stream] = [s for s in streams(tmp_path) if s.file.endswith("every_kind.toml")]
    good = {"id": "1", "Name": "Deal", "Account": {"Id": "A1", "Employees": "12"}, "Amount": 250}
    key, unified = stream.map_record(good)
    assert (key, unified["amount"], unified["account_id"], unified["employees"]) == (
        "1",
        2.5,
        "A1",
        12,
    )
    assert unified["currency"] == "EUR"
    assert unified["stage"] is None
    with pytest.raises(MappingFailure) as info:
        stream.map_record({**good, "Name": "", "CreatedDate": "last tuesday"})
    assert info.value.field == "name"
    assert "required" in info.value.reason
    with pytest.raises(MappingFailure) as info:
        stream.map_record({**good, "CreatedDate": "last tuesday"})
    assert info.value.field == "created_at"
    assert "ISO 8601" in info.value.reason


def test_a_dict_subclass_is_mapped_field_by_field(tmp_path: Path) -> None:
    """A record of another mapping type (never what a connector reads, but allowed) takes the
    reference path, and maps as a plain dict with the same items does."""

    class Record(dict[str, Any]):
        pass

    [stream] = [s for s in streams(tmp_path) if s.file.endswith("every_kind.toml")]
    plain = {"id": "1", "Name": "Deal", "Account": {"Id": "A1"}, "Flags": [1]}
    assert stream.map_record(Record(plain)) == stream.map_record(plain)
    assert stream.map_record(plain)[1]["flags"] == [1]


def test_a_stream_without_fields_maps_to_nothing() -> None:
    assert compile_mapper(())({"id": 1}) == {}
