"""The unified entities mapping files feed, and the type of each field.

This is the vocabulary product ops maps source fields onto. A mapping naming a field that is not
here is an error with a did-you-mean; free-form fields go under `extra_fields`.
"""

from __future__ import annotations

from typing import Literal

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


def entity_fields(entity: str) -> dict[str, FieldType]:
    """The fields of an entity; KeyError when it does not exist."""
    return ENTITIES[entity]
