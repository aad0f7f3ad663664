"""Jira custom fields: discovery, and mapping names resolved by id, clause name or display name."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmsync.connectors.jira import JiraConnector
from pmsync.connectors.jira.connector import KNOWN_FIELDS
from pmsync.connectors.jira.fields import FieldCatalog, FieldNameError
from pmsync.errors import FatalError
from pmsync.simulators.jira import JiraSimulator
from pmsync.simulators.jira.fields import STORY_POINTS, custom_field, default_fields
from pmsync.sync.mapping.loader import check_against_connectors, load_mappings
from tests.jira_support import (
    default_mapping,
    engine_and_store,
    mapping_from,
)


def test_discover_lists_custom_fields_with_ids_types_and_names(
    jira_connector: JiraConnector,
) -> None:
    fields = {f.name: f for f in jira_connector.discover("issues")}
    story = fields[STORY_POINTS]
    assert story.custom
    assert story.label == "Story Points"
    assert story.type == "number"
    assert "cf[10016]" in story.extra["clause_names"]
    assert {"id", "key", "self", "summary"} <= set(fields)
    assert not fields["summary"].custom


def test_default_mapping_reads_story_points_by_display_name(
    jira_connector: JiraConnector, jira_sim: JiraSimulator, tmp_path: Path
) -> None:
    engine, store = engine_and_store(tmp_path)
    result = engine.sync_stream(jira_connector, jira_connector.stream("issues"), default_mapping())
    assert result.status == "ok"
    expected = {str(i): s.current["fields"].get(STORY_POINTS) for i, s in jira_sim.issues.items()}
    stored = {
        r.key: r.unified["story_points"]
        for r in store.iter_records(connector="jira", stream="issues")
    }
    assert stored == expected
    assert any(v is not None for v in stored.values())
    raw = next(iter(store.iter_records(connector="jira", stream="issues"))).raw
    assert STORY_POINTS in raw  # asked for by id, kept under the name the mapping uses too
    assert "Story Points" in raw
    assert "description" not in raw  # only the fields the mapping uses are requested
    store.close()


@pytest.mark.parametrize("name", ["customfield_10016", "cf[10016]", "story points"])
def test_a_field_may_be_named_by_id_clause_or_name_in_any_case(
    jira_connector: JiraConnector, tmp_path: Path, name: str
) -> None:
    mapping = mapping_from(tmp_path, f'id = "id"\nstory_points = \'"{name}"\'\n')
    pages = list(
        jira_connector.read(jira_connector.stream("issues"), None, fields=mapping.source_fields)
    )
    values = [mapping.map_record(r)[1]["story_points"] for p in pages for r in p.records]
    assert any(v is not None for v in values)


def test_ambiguous_display_name_stops_the_stream_listing_candidates(
    jira_connector: JiraConnector, jira_sim: JiraSimulator, tmp_path: Path
) -> None:
    jira_sim.add_field(custom_field("customfield_10300", "Team", "string", "textfield"))
    jira_sim.add_field(custom_field("customfield_10301", "Team", "option", "select"))
    mapping = mapping_from(tmp_path, 'id = "id"\nassignee = \'"Team"\'\n')
    engine, store = engine_and_store(tmp_path)
    result = engine.sync_stream(jira_connector, jira_connector.stream("issues"), mapping)
    assert result.status == "failed"
    assert result.error is not None
    assert "'Team' names 2 Jira fields" in result.error
    assert "customfield_10300" in result.error
    assert "customfield_10301" in result.error
    assert "by its id" in result.error
    assert not list(store.iter_records(connector="jira", stream="issues"))
    store.close()


def test_unknown_name_is_an_error_listing_close_candidates(
    jira_connector: JiraConnector, tmp_path: Path
) -> None:
    mapping = mapping_from(tmp_path, 'id = "id"\nstory_points = \'"Story Pointz"\'\n')
    with pytest.raises(FatalError) as info:
        list(
            jira_connector.read(jira_connector.stream("issues"), None, fields=mapping.source_fields)
        )
    message = str(info.value)
    assert message.startswith("jira: ")
    assert "'Story Pointz'" in message
    assert "'Story Points' (customfield_10016, number)" in message


def test_a_field_created_after_startup_is_found(
    jira_connector: JiraConnector, jira_sim: JiraSimulator, tmp_path: Path
) -> None:
    list(jira_connector.read(jira_connector.stream("issues"), None))  # catalogue read now
    jira_sim.add_field(custom_field("customfield_10400", "Impact", "number", "float"))
    first = sorted(jira_sim.visible_ids())[0]
    jira_sim.update_issue(first, {"customfield_10400": 3.0}, at=jira_sim.clock() - 3600)
    mapping = mapping_from(tmp_path, 'id = "id"\nstory_points = \'"Impact"\'\n')
    pages = list(
        jira_connector.read(jira_connector.stream("issues"), None, fields=mapping.source_fields)
    )
    values = {r["id"]: r["Impact"] for p in pages for r in p.records}
    assert values[first] == 3.0


def test_catalog_resolution_rules() -> None:
    catalog = FieldCatalog(
        [
            *default_fields("cloud"),
            custom_field("customfield_10500", "Story points", "number", "float"),
        ]
    )
    assert catalog.resolve("Story Points") == STORY_POINTS  # exact name wins over case-folded
    assert catalog.resolve("Story points") == "customfield_10500"
    assert catalog.resolve("Summary") == "summary"
    with pytest.raises(FieldNameError, match="names 2 Jira fields"):
        catalog.resolve("STORY POINTS")
    with pytest.raises(FieldNameError, match="discover"):
        catalog.resolve("zzzzzz")
    with pytest.raises(FieldNameError) as info:
        catalog.resolve_all(["Sumary", "Labelz", "summary"])
    assert "'Sumary'" in str(info.value)
    assert "'Labelz'" in str(info.value)


def test_mapping_check_accepts_display_names_and_flags_typos(tmp_path: Path) -> None:
    path = tmp_path / "jira.toml"
    path.write_text(
        'connector = "jira"\n[streams.issues]\nentity = "issue"\n[streams.issues.fields]\n'
        'id = "id"\nsummary = "Summary"\nlabels = "labels"\n'
        'story_points = \'"Story Points"\'\nstatus = "sttus.name"\n'
    )
    mappings = load_mappings([path])
    problems = check_against_connectors(
        mappings, {"jira": "jira"}, {"jira": ["issues"]}, {("jira", "issues"): KNOWN_FIELDS}
    )
    assert [p.message for p in problems] == [
        "source field 'sttus' is not a field of issues; did you mean 'status'?"
    ]


def test_many_fields_are_searched_by_post(
    jira_connector: JiraConnector, jira_sim: JiraSimulator, tmp_path: Path
) -> None:
    names = [f"Metric {n}" for n in range(45)]
    for n, name in enumerate(names):
        jira_sim.add_field(custom_field(f"customfield_{11000 + n}", name, "number", "float"))
    first = sorted(jira_sim.visible_ids())[0]
    jira_sim.update_issue(first, {"customfield_11044": 7.0}, at=jira_sim.clock() - 3600)
    pages = list(
        jira_connector.read(jira_connector.stream("issues"), None, fields=frozenset(names))
    )
    values = {r["id"]: r["Metric 44"] for p in pages for r in p.records}
    assert values[first] == 7.0
    searches = [r for r in jira_sim.requests if "/search" in r.path]
    assert searches
    assert all(r.method == "POST" for r in searches)
    assert len(searches[0].json()["fields"]) == 46  # the 45 metrics and `updated`
