"""SQL views over the unified entities, links and rollups, on SQLite and PostgreSQL: one per
entity with a typed column per field, and the README's "top issues by ARR" query answering
what `pmsync report` answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pmsync.app.runtime import Runtime
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import launch
from pmsync.sync.entities import ENTITIES
from pmsync.sync.links.derive import Derived
from pmsync.sync.links.report import top_issues
from tests.conftest import REPO

RECORD_COLUMNS = ["ref", "connector", "stream", "record_key", "first_seen_at", "last_seen_at"]
SIZE = CompanySize(accounts=40, contacts=80, users=120, tickets=300, issues=30, usage_days=5)
PG_TYPES = {
    "string": "text",
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "datetime": "timestamp with time zone",
    "date": "date",
    "string_list": "ARRAY",
    "json": "jsonb",
}


def readme_query(title: str) -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(rf"{re.escape(title)}:\n\n```sql\n(.*?)```", readme, re.S)
    assert match, f"no ```sql block after '{title}:' in the README"
    return match.group(1)


class Synced:
    """A small demo company synced into the store under test."""

    def __init__(self, runtime: Runtime, derived: Derived) -> None:
        self.runtime = runtime
        self.derived = derived
        self.engine = runtime.store.engine

    def rows(self, query: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(sa.text(query)).mappings()]

    def columns(self, view: str) -> list[str]:
        with self.engine.connect() as connection:
            result = connection.execute(sa.text(f"SELECT * FROM {view} LIMIT 0"))
            return list(result.keys())


@pytest.fixture
def synced(tmp_path: Path, store_url: str) -> Iterator[Synced]:
    with launch(tmp_path / "demo", size=SIZE, pendo=True) as demo:
        demo.export_env()
        text = demo.config_path.read_text()
        demo.config_path.write_text(
            re.sub(r'(?m)^url = "sqlite:///[^"]*"', f'url = "{store_url}"', text, count=1)
        )
        runtime = Runtime.load(str(demo.config_path))
        try:
            results = runtime.run_once()
            assert all(r.status == "ok" for r in results), [(r.stream, r.error) for r in results]
            yield Synced(runtime, runtime.derive())
        finally:
            runtime.close()


def test_each_entity_view_has_a_column_per_entity_field(synced: Synced) -> None:
    for entity, fields in ENTITIES.items():
        assert synced.columns(f"v_{entity}") == [*RECORD_COLUMNS, *fields], entity
    assert synced.columns("v_links") == ["kind", "ticket_ref", "target_ref", "rule", "linked_at"]
    assert synced.columns("v_rollups")[:3] == ["name", "issue_ref", "issue_key"]


def test_views_hold_the_live_records_with_typed_values(synced: Synced) -> None:
    world = synced.derived.world
    tickets = synced.rows("SELECT ref, subject, tags, created_at FROM v_feedback")
    assert {t["ref"] for t in tickets} == set(world.tickets)  # tombstones left out
    accounts = {a["ref"]: a for a in synced.rows("SELECT ref, arr, employees FROM v_account")}
    for ref, account in world.accounts.items():
        arr = account.get("arr")
        assert accounts[ref]["arr"] == (None if arr is None else pytest.approx(float(arr)))
        assert accounts[ref]["employees"] == account.get("employees")
    usage = synced.rows("SELECT day, events, active_visitors, features FROM v_usage")
    assert usage
    issues = synced.rows("SELECT key, fix_versions_released, story_points FROM v_issue")
    assert {i["key"] for i in issues} == {str(i.get("key")) for i in world.issues.values()}
    links = synced.rows("SELECT kind, count(*) AS n FROM v_links GROUP BY kind")
    assert {row["kind"] for row in links} == {"ticket_account", "ticket_issue"}
    if synced.engine.dialect.name == "postgresql":
        assert _pg_types(synced, "v_account") == {
            name: PG_TYPES[kind] for name, kind in ENTITIES["account"].items()
        }
        assert _pg_types(synced, "v_usage")["day"] == "date"
        assert isinstance(tickets[0]["tags"], list)
    else:
        kinds = synced.rows(
            "SELECT typeof(arr) AS arr, typeof(employees) AS employees FROM v_account "
            "WHERE arr IS NOT NULL AND employees IS NOT NULL LIMIT 1"
        )
        assert kinds == [{"arr": "real", "employees": "integer"}]
        assert isinstance(tickets[0]["tags"], str)  # JSON text


def _pg_types(synced: Synced, view: str) -> dict[str, str]:
    rows = synced.rows(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_name = '{view}' AND table_schema = current_schema()"
    )
    return {
        r["column_name"]: r["data_type"] for r in rows if r["column_name"] not in RECORD_COLUMNS
    }


def test_the_readme_query_lists_the_top_issues_by_arr_as_report_does(synced: Synced) -> None:
    rows = synced.rows(readme_query("Top issues by ARR"))
    report = top_issues(synced.derived, "customer_demand", 10).as_dicts()
    assert len(rows) == len(report) == 10
    assert [(round(r["arr"], 2), r["tickets"]) for r in rows] == [
        (round(r["arr"], 2), r["tickets"]) for r in report
    ]
    assert {r["issue_key"] for r in rows} == {r["issue"] for r in report}
    assert all(r["summary"] and r["currency"] == "USD" for r in rows)
