"""SQL views over the unified entities, links and rollups, for BI tools that read the store.

One view per entity (`v_account`, `v_feedback`, `v_person`, `v_organization`, `v_issue`,
`v_issue_link`, `v_opportunity`, `v_opportunity_issue`, `v_survey_response`, `v_usage`,
`v_currency_rate`) with a column per entity field, typed, over the
live records (tombstones left out); `v_links` (ticket -> account and ticket -> issue, with the
rule that made each) and `v_rollups` (each rollup's figures as columns). Every entity view
starts with `ref` (connector:key, what `v_links` and `v_rollups` point at), `connector`,
`stream`, `record_key`, `first_seen_at`, `last_seen_at`.

PostgreSQL columns have declared types (text, bigint, double precision, boolean, timestamptz,
date, text[], jsonb); a value of the wrong JSON type reads as NULL rather than failing the
query. SQLite has no column types in views: values are cast (INTEGER, REAL, 0/1 booleans, ISO
8601 text times, JSON text lists).

The field lists are frozen here as they were at this revision: a later change to the entities
adds a migration that replaces the views. A migration that rebuilds `records`, `links` or
`rollups` (SQLite batch mode, or a column change on PostgreSQL) drops these views first and
creates them again after.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COMMON = {
    "id": "string",
    "name": "string",
    "url": "string",
    "created_at": "datetime",
    "updated_at": "datetime",
}

ENTITIES: dict[str, dict[str, str]] = {
    "account": {
        **_COMMON,
        "arr": "number",
        "currency": "string",
        "segment": "string",
        "owner": "string",
        "owner_id": "string",
        "domains": "string_list",
        "website": "string",
        "industry": "string",
        "employees": "integer",
        "type": "string",
        "parent_id": "string",
        "region": "string",
    },
    "person": {
        **_COMMON,
        "email": "string",
        "email_domain": "string",
        "account_id": "string",
        "organization_id": "string",
        "external_id": "string",
        "role": "string",
        "title": "string",
        "active": "boolean",
        "tags": "string_list",
    },
    "organization": {
        **_COMMON,
        "external_id": "string",
        "account_id": "string",
        "domains": "string_list",
        "tags": "string_list",
        "segment": "string",
    },
    "feedback": {
        **_COMMON,
        "subject": "string",
        "description": "string",
        "status": "string",
        "priority": "string",
        "type": "string",
        "channel": "string",
        "tags": "string_list",
        "product_area": "string",
        "product_areas": "string_list",
        "requester_id": "string",
        "requester_email": "string",
        "organization_id": "string",
        "assignee_id": "string",
        "solved_at": "datetime",
        "issue_keys": "string_list",
        "satisfaction": "string",
    },
    "issue": {
        **_COMMON,
        "key": "string",
        "summary": "string",
        "status": "string",
        "status_category": "string",
        "resolution": "string",
        "resolution_date": "datetime",
        "fix_versions": "string_list",
        "fix_versions_released": "boolean",
        "release_date": "date",
        "components": "string_list",
        "labels": "string_list",
        "story_points": "number",
        "project": "string",
        "issue_type": "string",
        "priority": "string",
        "assignee": "string",
    },
    "issue_link": {
        **_COMMON,
        "ticket_id": "string",
        "issue_id": "string",
        "issue_key": "string",
    },
    "currency_rate": {
        **_COMMON,
        "code": "string",
        "rate": "number",
        "corporate": "boolean",
    },
    "opportunity": {
        **_COMMON,
        "account_id": "string",
        "amount": "number",
        "currency": "string",
        "stage": "string",
        "is_closed": "boolean",
        "is_won": "boolean",
        "close_date": "date",
        "probability": "number",
        "loss_reason": "string",
        "type": "string",
        "owner": "string",
        "issue_keys": "string_list",
    },
    "opportunity_issue": {
        **_COMMON,
        "opportunity_id": "string",
        "issue_key": "string",
        "issue_id": "string",
    },
    "survey_response": {
        **_COMMON,
        "kind": "string",
        "score": "number",
        "comment": "string",
        "survey": "string",
        "account_id": "string",
        "person_id": "string",
        "email": "string",
        "responded_at": "datetime",
    },
    "usage": {
        **_COMMON,
        "account_id": "string",
        "day": "date",
        "events": "integer",
        "minutes": "number",
        "active_visitors": "integer",
        "features": "json",
    },
}

ROLLUP_FIGURES = {
    "arr": "number",
    "currency": "string",
    "accounts": "integer",
    "tickets": "integer",
    "unlinked_tickets": "integer",
    "active_users": "integer",
    "segments": "string_list",
    "top_accounts": "string_list",
    "first_request": "datetime",
    "last_request": "datetime",
    "summary": "string",
}

RECORD_COLUMNS = (
    "connector",
    "stream",
    "key AS record_key",
    "first_seen_at",
    "last_seen_at",
)


def _pg(column: str, field: str, kind: str) -> str:
    """A typed PostgreSQL expression for `field` of the jsonb `column`."""
    value = f"{column} -> '{field}'"
    text = f"{column} ->> '{field}'"

    def when(json_type: str, expression: str) -> str:
        return f"CASE WHEN jsonb_typeof({value}) = '{json_type}' THEN {expression} END"

    return {
        "string": when("string", text),
        "integer": when("number", f"({text})::numeric::bigint"),
        "number": when("number", f"({text})::double precision"),
        "boolean": when("boolean", f"({text})::boolean"),
        "datetime": when("string", f"({text})::timestamptz"),
        "date": when("string", f"({text})::date"),
        "string_list": when(
            "array", f"ARRAY(SELECT jsonb_array_elements_text({value}))::text[]"
        ),
        "json": value,
    }[kind]


def _sqlite(column: str, field: str, kind: str) -> str:
    """A SQLite expression for `field` of the JSON text `column`, its value cast."""
    value = f"json_extract({column}, '$.{field}')"
    return {
        "string": f"CAST({value} AS TEXT)",
        "integer": f"CAST({value} AS INTEGER)",
        "number": f"CAST({value} AS REAL)",
    }.get(kind, value)


def _entity_view(dialect: str, entity: str, fields: dict[str, str]) -> str:
    typed = _pg if dialect == "postgresql" else _sqlite
    source = "unified::jsonb" if dialect == "postgresql" else "unified"
    ref = "connector || ':' || key AS ref"
    columns = [ref, *RECORD_COLUMNS, *(f"{typed('u', f, k)} AS \"{f}\"" for f, k in fields.items())]
    return (
        f"CREATE VIEW v_{entity} AS SELECT {', '.join(columns)} "
        f"FROM (SELECT *, {source} AS u FROM records "
        f"WHERE entity = '{entity}' AND deleted_at IS NULL) AS live"
    )


def _rollups_view(dialect: str) -> str:
    typed = _pg if dialect == "postgresql" else _sqlite
    source = "value::jsonb" if dialect == "postgresql" else "value"
    figures = [f"{typed('v', f, k)} AS \"{f}\"" for f, k in ROLLUP_FIGURES.items()]
    columns = ["name", "issue_ref", "issue_key", *figures, "computed_at"]
    return (
        f"CREATE VIEW v_rollups AS SELECT {', '.join(columns)} "
        f"FROM (SELECT *, {source} AS v FROM rollups) AS figures"
    )


LINKS_VIEW = (
    "CREATE VIEW v_links AS SELECT kind, ticket_ref, target_ref, rule, linked_at FROM links"
)


def view_names() -> list[str]:
    return [*(f"v_{entity}" for entity in ENTITIES), "v_links", "v_rollups"]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for entity, fields in ENTITIES.items():
        op.execute(_entity_view(dialect, entity, fields))
    op.execute(LINKS_VIEW)
    op.execute(_rollups_view(dialect))


def downgrade() -> None:
    for name in reversed(view_names()):
        op.execute(f"DROP VIEW IF EXISTS {name}")
