"""The unified entities mapping files feed, and the type of each field.

This is the vocabulary product ops maps source fields onto. A mapping naming a field that is not
here is an error with a did-you-mean; free-form fields go under `extra_fields`.
"""

from __future__ import annotations

from typing import Any, Literal

FieldType = Literal[
    "string", "integer", "number", "boolean", "datetime", "date", "string_list", "json"
]

_COMMON: dict[str, FieldType] = {
    "id": "string",
    "name": "string",
    "url": "string",
    "created_at": "datetime",
    "updated_at": "datetime",
}

ENTITIES: dict[str, dict[str, FieldType]] = {
    # A revenue account (Salesforce Account): what a rollup sums.
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
    # A person at a customer or an end user (Salesforce Contact, Zendesk user).
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
    # A customer organization in the support tool (Zendesk organization).
    "organization": {
        **_COMMON,
        "external_id": "string",
        "account_id": "string",
        "domains": "string_list",
        "tags": "string_list",
        "segment": "string",
    },
    # A piece of customer feedback (Zendesk ticket).
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
    # A unit of engineering work (Jira issue).
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
    # A link the support tool keeps between a ticket and an issue (Zendesk's Jira integration).
    "issue_link": {
        **_COMMON,
        "ticket_id": "string",
        "issue_id": "string",
        "issue_key": "string",
    },
    # An exchange rate from the CRM (Salesforce CurrencyType): units per one corporate unit.
    "currency_rate": {
        **_COMMON,
        "code": "string",
        "rate": "number",
        "corporate": "boolean",
    },
    # A sales opportunity (Salesforce Opportunity): pipeline at stake on the issues it cites.
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
    # A link between an opportunity and an issue kept as its own record (a junction object).
    "opportunity_issue": {
        **_COMMON,
        "opportunity_id": "string",
        "issue_key": "string",
        "issue_id": "string",
    },
    # One answer to a survey (NPS, CSAT) from a person at a customer (Pendo polls, any survey
    # tool through `rest`). kind says which scale the score is on.
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
    # Product usage of one account over one period (Pendo, PostHog, ...).
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


DESCRIPTIONS: dict[str, str] = {
    "account": "A revenue account (Salesforce Account): what a rollup sums.",
    "person": "A person at a customer or an end user (Salesforce Contact, Zendesk user).",
    "organization": "A customer organization in the support tool (Zendesk organization).",
    "feedback": "A piece of customer feedback (Zendesk ticket).",
    "issue": "A unit of engineering work (Jira issue).",
    "issue_link": "A link the support tool keeps between a ticket and an issue.",
    "currency_rate": "An exchange rate from the CRM: units per one corporate unit.",
    "opportunity": "A sales opportunity (Salesforce Opportunity): pipeline at stake on the "
    "issues it cites.",
    "opportunity_issue": "A link between an opportunity and an issue kept as its own record "
    "(a junction object).",
    "survey_response": "One answer to a survey (NPS, CSAT) from a person at a customer.",
    "usage": "Product usage of one account over one period (Pendo, PostHog, ...).",
}

_JSON_TYPES: dict[FieldType, dict[str, Any]] = {
    "string": {"type": ["string", "null"]},
    "integer": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "datetime": {"type": ["string", "null"], "format": "date-time"},
    "date": {"type": ["string", "null"], "format": "date"},
    "string_list": {"type": ["array", "null"], "items": {"type": "string"}},
    "json": {},
}
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def entity_fields(entity: str) -> dict[str, FieldType]:
    """The fields of an entity; KeyError when it does not exist."""
    return ENTITIES[entity]


def json_schema(entity: str) -> dict[str, Any]:
    """One entity's unified record as JSON Schema. Every field may be null (a mapping that
    leaves it out stores nothing); a mapping's `extra_fields` sit beside these, so other
    properties are allowed."""
    return {
        "title": entity,
        "description": DESCRIPTIONS.get(entity, ""),
        "type": "object",
        "properties": {
            name: {**_JSON_TYPES[kind], "x-pmsync-type": kind}
            for name, kind in ENTITIES[entity].items()
        },
    }


def json_schemas() -> dict[str, Any]:
    """Every entity, as one JSON Schema document with a definition per entity."""
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "pmsync unified entities",
        "description": "The records mapping files produce, one definition per entity.",
        "$defs": {entity: json_schema(entity) for entity in ENTITIES},
    }
