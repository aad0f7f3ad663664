"""The field catalogue a fresh Jira site answers GET /field with, system and common custom fields.

Shapes follow Jira's: `id`, `key`, `name`, `custom`, `orderable`, `navigable`, `searchable`,
`clauseNames` (the JQL names: for a custom field `cf[NNNNN]` and its display name) and `schema`.
Cloud and Data Center differ in a few display names ("Fix versions" / "Fix Version/s").
"""

from __future__ import annotations

from typing import Any, Literal

STORY_POINTS = "customfield_10016"
STORY_POINT_ESTIMATE = "customfield_10026"
SPRINT = "customfield_10020"
CUSTOMER_ARR = "customfield_10100"
CUSTOMER_REQUESTS = "customfield_10101"
REQUESTING_ACCOUNTS = "customfield_10102"
LEGACY_ESTIMATE = "customfield_10200"  # exists, but is on no edit screen

SYSTEM_DATE_FIELDS = frozenset({"created", "updated", "resolutiondate"})

_SYSTEM: list[tuple[str, str, str, list[str], dict[str, Any] | None]] = [
    # id, Cloud name, Data Center name, clause names, schema
    ("issuekey", "Key", "Key", ["id", "issue", "issuekey", "key"], None),
    ("summary", "Summary", "Summary", ["summary"], {"type": "string", "system": "summary"}),
    ("description", "Description", "Description", ["description"], {"type": "string"}),
    ("status", "Status", "Status", ["status"], {"type": "status", "system": "status"}),
    ("statusCategory", "Status Category", "Status Category", ["statusCategory"], None),
    ("resolution", "Resolution", "Resolution", ["resolution"], {"type": "resolution"}),
    (
        "resolutiondate",
        "Resolved",
        "Resolved",
        ["resolutiondate", "resolved"],
        {"type": "datetime"},
    ),
    (
        "fixVersions",
        "Fix versions",
        "Fix Version/s",
        ["fixVersion"],
        {"type": "array", "items": "version", "system": "fixVersions"},
    ),
    (
        "components",
        "Components",
        "Component/s",
        ["component"],
        {"type": "array", "items": "component", "system": "components"},
    ),
    (
        "labels",
        "Labels",
        "Labels",
        ["labels"],
        {"type": "array", "items": "string", "system": "labels"},
    ),
    ("project", "Project", "Project", ["project"], {"type": "project", "system": "project"}),
    ("issuetype", "Issue Type", "Issue Type", ["issuetype", "type"], {"type": "issuetype"}),
    ("priority", "Priority", "Priority", ["priority"], {"type": "priority", "system": "priority"}),
    ("assignee", "Assignee", "Assignee", ["assignee"], {"type": "user", "system": "assignee"}),
    ("reporter", "Reporter", "Reporter", ["reporter"], {"type": "user", "system": "reporter"}),
    ("created", "Created", "Created", ["created", "createdDate"], {"type": "datetime"}),
    ("updated", "Updated", "Updated", ["updated", "updatedDate"], {"type": "datetime"}),
]

_CUSTOM: list[tuple[str, str, str, str | None, str]] = [
    # id, name, schema type, items, custom type key
    (STORY_POINTS, "Story Points", "number", None, "float"),
    (STORY_POINT_ESTIMATE, "Story point estimate", "number", None, "jsw-story-points"),
    (SPRINT, "Sprint", "array", "json", "gh-sprint"),
    (CUSTOMER_ARR, "Customer ARR", "number", None, "float"),
    (CUSTOMER_REQUESTS, "Customer requests", "number", None, "float"),
    (REQUESTING_ACCOUNTS, "Requesting accounts", "string", None, "textfield"),
    (LEGACY_ESTIMATE, "Legacy estimate", "number", None, "float"),
]

_EDITABLE = {
    "summary",
    "description",
    "labels",
    "components",
    "fixVersions",
    "priority",
    "assignee",
    STORY_POINTS,
    STORY_POINT_ESTIMATE,
    SPRINT,
    CUSTOMER_ARR,
    CUSTOMER_REQUESTS,
    REQUESTING_ACCOUNTS,
}


def default_fields(deployment: Literal["cloud", "datacenter"]) -> list[dict[str, Any]]:
    """GET /field of a fresh site with the common custom fields."""
    fields: list[dict[str, Any]] = []
    for field_id, cloud_name, dc_name, clauses, schema in _SYSTEM:
        entry: dict[str, Any] = {
            "id": field_id,
            "key": field_id,
            "name": cloud_name if deployment == "cloud" else dc_name,
            "custom": False,
            "orderable": field_id not in ("issuekey", "statusCategory", "created", "updated"),
            "navigable": True,
            "searchable": True,
            "clauseNames": clauses,
        }
        if schema is not None:
            entry["schema"] = schema
        fields.append(entry)
    for field_id, name, kind, items, custom_type in _CUSTOM:
        fields.append(custom_field(field_id, name, kind, custom_type, items=items))
    return fields


def custom_field(
    field_id: str, name: str, kind: str, custom_type: str, *, items: str | None = None
) -> dict[str, Any]:
    """One custom field definition as GET /field lists it."""
    number = int(field_id.rsplit("_", 1)[1])
    schema: dict[str, Any] = {
        "type": kind,
        "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{custom_type}",
        "customId": number,
    }
    if items:
        schema["items"] = items
    return {
        "id": field_id,
        "key": field_id,
        "name": name,
        "untranslatedName": name,
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": [f"cf[{number}]", name],
        "schema": schema,
    }


def editable_field_ids() -> frozenset[str]:
    """Fields on the default edit screen."""
    return frozenset(_EDITABLE)
