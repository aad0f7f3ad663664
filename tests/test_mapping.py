"""Mapping files: validation with did-you-mean, transforms, JMESPath, record-level failures."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import jmespath
import pytest

from pmsync.errors import ConfigError, MappingFailure
from pmsync.sync.mapping.compiler import compile_path
from pmsync.sync.mapping.loader import load_mappings
from pmsync.sync.mapping.transforms import (
    TRANSFORMS,
    TransformContext,
    TransformError,
    build_transform,
)

REPO = Path(__file__).resolve().parent.parent

TAXONOMY = """
[taxonomy.product_area]
default = "other"
[taxonomy.product_area.areas]
billing = ["invoice", "refund"]
mobile = ["ios", "android"]
"""


def mapping(tmp_path: Path, text: str, taxonomy: bool = True) -> list[Path]:
    files = []
    if taxonomy:
        (tmp_path / "taxonomy.toml").write_text(TAXONOMY)
        files.append(tmp_path / "taxonomy.toml")
    (tmp_path / "m.toml").write_text(text)
    files.append(tmp_path / "m.toml")
    return files


def compiled(tmp_path: Path, text: str) -> Any:
    result = load_mappings(mapping(tmp_path, text))
    stream = next(iter(result.streams.values()))
    stream.bind_key("id")
    return stream


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_mappings(mapping(tmp_path, text))
    return [str(p) for p in info.value.problems]


def test_shipped_mappings_are_valid() -> None:
    result = load_mappings(sorted((REPO / "mappings").glob("*.toml")))
    assert ("zendesk", "tickets") in result.streams
    assert "product_area" in result.taxonomies


def test_maps_a_ticket_with_transforms(tmp_path: Path) -> None:
    stream = compiled(
        tmp_path,
        """
connector = "zendesk"
[streams.tickets]
entity = "feedback"
[streams.tickets.fields]
id = "id"
subject = { path = "subject", transforms = ["strip"] }
priority = { path = "priority", transforms = [{ map = { urgent = "P1", high = "P2" }, fallback = "P3" }] }
product_area = { path = "tags", transforms = [{ taxonomy = "product_area" }] }
product_areas = { path = "tags", transforms = [{ taxonomy = "product_area", all = true }] }
requester_email = { path = "via.source.from.address", transforms = ["lower"] }
issue_keys = { path = "custom_fields", transforms = [{ custom_field = 77 }, { split = "," }, "upper"] }
created_at = "created_at"
[streams.tickets.extra_fields]
seats = { path = "custom_fields[?id==`78`].value | [0]", transforms = ["integer"] }
""",
    )
    key, unified = stream.map_record(
        {
            "id": 12,
            "subject": "  Broken  ",
            "priority": "high",
            "tags": ["refund", "ios"],
            "via": {"source": {"from": {"address": "Jane@Acme.COM"}}},
            "custom_fields": [{"id": 77, "value": "proj-1, proj-2"}, {"id": 78, "value": "40"}],
            "created_at": "2024-03-01T10:00:00+02:00",
        }
    )
    assert key == "12"
    assert unified == {
        "id": "12",
        "subject": "Broken",
        "priority": "P2",
        "product_area": "billing",
        "product_areas": ["billing", "mobile"],
        "requester_email": "jane@acme.com",
        "issue_keys": ["PROJ-1", "PROJ-2"],
        "created_at": "2024-03-01T08:00:00Z",
        "seats": 40,
    }
    _key, other = stream.map_record({"id": 13, "priority": "low", "tags": ["misc"]})
    assert other["priority"] == "P3"
    assert other["product_area"] == "other"
    assert other["issue_keys"] == []


def test_unknown_names_get_did_you_mean_with_file_and_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
connector = "zendesk"
[streams.tickets]
entity = "feedbak"
[streams.users]
entity = "person"
[streams.users.fields]
emial = "email"
name = { path = "name", transforms = ["lowr"] }
role = { path = "role", transforms = [{ taxonomy = "product_aera" }] }
title = { path = "title", transforms = [{ map = { a = "b" }, fallbak = "x" }] }
external_id = { path = "a[", transforms = [] }
[streams.orgs]
entity = "organization"
fields = { name = "name" }
colour = "x"
""",
    )
    joined = "\n".join(found)
    assert (
        "m.toml: streams.tickets.entity: unknown entity 'feedbak'; did you mean 'feedback'?"
        in joined
    )
    assert (
        "streams.users.fields.emial: entity 'person' has no field 'emial'; did you mean "
        "'email'?" in joined
    )
    assert (
        "streams.users.fields.name.transforms[0]: unknown transform 'lowr'; did you mean "
        "'lower'?" in joined
    )
    assert "no taxonomy 'product_aera'; did you mean 'product_area'?" in joined
    assert "transform 'map' has no option 'fallbak'; did you mean 'fallback'?" in joined
    assert "streams.users.fields.external_id.path: 'a[' is not a valid JMESPath" in joined
    assert "streams.orgs.colour: unknown field 'colour'" in joined


def test_bad_toml_in_a_mapping_names_the_file(tmp_path: Path) -> None:
    found = problems(tmp_path, "connector = \n")
    assert len(found) == 1
    assert "m.toml" in found[0]
    assert "invalid TOML" in found[0]


def test_record_that_fails_names_field_and_reason(tmp_path: Path) -> None:
    stream = compiled(
        tmp_path,
        """
connector = "zendesk"
[streams.tickets]
entity = "feedback"
[streams.tickets.fields]
created_at = "created_at"
subject = { path = "subject", required = true }
""",
    )
    with pytest.raises(MappingFailure) as info:
        stream.map_record({"id": 1, "created_at": "last tuesday", "subject": "x"})
    assert info.value.field == "created_at"
    assert "'last tuesday' is not an ISO 8601 date-time" in info.value.reason
    with pytest.raises(MappingFailure) as info:
        stream.map_record({"id": 1, "subject": ""})
    assert info.value.field == "subject"
    assert "required" in info.value.reason
    with pytest.raises(MappingFailure) as info:
        stream.map_record({"subject": "no id"})
    assert info.value.field == "key"


def test_type_coercion_follows_the_entity_schema(tmp_path: Path) -> None:
    stream = compiled(
        tmp_path,
        """
connector = "salesforce"
[streams.Account]
entity = "account"
[streams.Account.fields]
arr = "ARR__c"
employees = "NumberOfEmployees"
domains = { path = "Website", transforms = ["url_domain"] }
name = "Name"
""",
    )
    _k, unified = stream.map_record(
        {
            "id": "001",
            "ARR__c": "1,200,000.50",
            "NumberOfEmployees": 40.0,
            "Website": "https://www.Acme.com/about",
            "Name": 7,
        }
    )
    assert unified == {"arr": 1200000.5, "employees": 40, "domains": ["acme.com"], "name": "7"}
    with pytest.raises(MappingFailure) as info:
        stream.map_record({"id": "002", "NumberOfEmployees": 4.5})
    assert info.value.field == "employees"


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("email_domain", "Jane.Doe@Sub.Example.COM", "sub.example.com"),
        ("email_domain", "no-at-sign", None),
        ("url_domain", "acme.io", "acme.io"),
        ("url_domain", "http://WWW.acme.io:8080/x", "acme.io"),
        ("boolean", "yes", True),
        ("number", "12", 12),
        ("date", "2024-02-03T23:30:00-05:00", "2024-02-04"),
        ("datetime", 1700000000000, "2023-11-14T22:13:20Z"),
        ("first", ["a", "b"], "a"),
        ("unique", ["a", "b", "a"], ["a", "b"]),
        ({"default": 0}, None, 0),
        ({"multiply": 0.01}, 12345, 123.45),
        ({"regex": "[A-Z]+-\\d+", "all": True}, "see PROJ-1 and ABC-22", ["PROJ-1", "ABC-22"]),
        ({"join": "|"}, ["a", "b"], "a|b"),
    ],
)
def test_transforms(spec: Any, value: Any, expected: Any) -> None:
    assert build_transform(spec, TransformContext())(value) == expected


def test_transform_argument_errors_are_caught_at_load() -> None:
    with pytest.raises(TransformError, match="does not compile"):
        build_transform({"regex": "("}, TransformContext())
    with pytest.raises(TransformError, match="needs an argument"):
        build_transform("map", TransformContext())
    with pytest.raises(TransformError, match="exactly one transform"):
        build_transform({"map": {}, "default": 1}, TransformContext())
    assert set(TRANSFORMS) >= {"lower", "map", "taxonomy", "email_domain", "url_domain"}


def test_fast_dotted_paths_agree_with_jmespath() -> None:
    rng = random.Random(5)
    leaves: list[Any] = [None, 1, "x", [1, 2], {"c": 3}, {"b": {"c": 4}}, True]
    paths = ["a", "a.b", "a.b.c", "b.c", "z"]
    for _ in range(500):
        record = {k: rng.choice(leaves) for k in ("a", "b") if rng.random() < 0.8}
        for path in paths:
            getter, _roots = compile_path(path)
            assert getter(record) == jmespath.search(path, record), (path, record)


def test_source_fields_are_collected_for_connectors(tmp_path: Path) -> None:
    stream = compiled(
        tmp_path,
        """
connector = "salesforce"
[streams.Account]
entity = "account"
[streams.Account.fields]
name = "Name"
owner = "Owner.Name"
domains = { path = "[Website, Domain__c]", transforms = ["url_domain"] }
""",
    )
    assert stream.source_fields == {"Name", "Owner", "Website", "Domain__c", "id"}


@pytest.mark.parametrize(
    ("wanted", "fields", "expected"),
    [
        (360001, [{"id": 360001, "value": "a"}], "a"),
        (360001, [{"id": "360001", "value": "b"}], "b"),
        ("360001", [{"id": 360001, "value": "c"}], "c"),
        ("0123", [{"id": 123, "value": "d"}, {"id": "0123", "value": "e"}], "e"),
        (1, [{"id": True, "value": "f"}, {"id": 1, "value": "g"}], "g"),
        (5, [{"id": 5.0, "value": "h"}], None),
        ("abc", [7, {"id": "abc", "value": "i"}], "i"),
    ],
)
def test_custom_field_compares_ids_as_their_text(wanted: Any, fields: Any, expected: Any) -> None:
    """Integer ids are compared as numbers for speed; the answer is that of comparing str(id)."""
    pick = build_transform({"custom_field": wanted}, TransformContext())
    assert pick(fields) == expected


def test_taxonomy_gives_the_same_areas_when_tags_repeat() -> None:
    """Tag lookups are remembered; repeated, mixed-case and non-text tags still classify."""
    from pmsync.sync.mapping.transforms import Taxonomy

    context = TransformContext(
        {"area": Taxonomy({"billing": ("Invoice", "7"), "mobile": ("ios",)}, "other")}
    )
    first = build_transform({"taxonomy": "area"}, context)
    every = build_transform({"taxonomy": "area", "all": True}, context)
    for _ in range(3):
        assert first(["IOS", "invoice"]) == "mobile"
        assert every(["IOS", "invoice", 7, "nothing"]) == ["mobile", "billing"]
        assert first(["nothing"]) == "other"
        assert every(None) == ["other"]
