"""`pmsync schema`: the unified entities as JSON Schema that the stored records satisfy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import launch
from pmsync.sync.entities import ENTITIES

SIZE = CompanySize(accounts=30, contacts=60, users=90, tickets=200, issues=25, usage_days=4)


def schema(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["schema", *args])
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def validator(document: dict[str, Any], entity: str) -> Draft202012Validator:
    return Draft202012Validator(
        {**document, "$ref": f"#/$defs/{entity}"}, format_checker=FormatChecker()
    )


def test_the_schema_is_valid_json_schema_with_every_entity_field() -> None:
    document = schema()
    Draft202012Validator.check_schema(document)
    assert set(document["$defs"]) == set(ENTITIES)
    for entity, fields in ENTITIES.items():
        properties = document["$defs"][entity]["properties"]
        assert {name: p["x-pmsync-type"] for name, p in properties.items()} == fields
    one = schema("usage")
    Draft202012Validator.check_schema(one)
    assert one["properties"]["day"]["format"] == "date"


def test_an_unknown_entity_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["schema", "isue"])
    assert result.exit_code == 2
    assert "did you mean 'issue'?" in result.output


def test_every_stored_unified_record_matches_the_schema(tmp_path: Path) -> None:
    document = schema()
    with launch(tmp_path / "demo", size=SIZE) as demo:
        demo.export_env()
        runtime = Runtime.load(str(demo.config_path))
        try:
            assert all(r.status == "ok" for r in runtime.run_once())
            checked: dict[str, int] = {}
            for _connector, _stream, _key, (entity, record) in runtime.store.iter_unified(
                list(ENTITIES)
            ):
                validator(document, entity).validate(record)
                checked[entity] = checked.get(entity, 0) + 1
        finally:
            runtime.close()
    assert {"account", "person", "organization", "feedback", "issue", "usage"} <= set(checked)
    with pytest.raises(ValidationError):
        validator(document, "usage").validate({"day": "yesterday", "events": "many"})
