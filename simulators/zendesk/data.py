"""Generate a plausible Zendesk account: organizations, users, tickets, custom fields, links.

Deterministic for a seed. Records have the shape and size of real exports (a ticket is about
2.5 KB of JSON) so that benchmarks measure what production would see.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pmsync.simulators.zendesk.app import ZendeskSimulator, iso_timestamp

JIRA_KEY_FIELD = 360001
PRODUCT_AREA_FIELD = 360002
SEATS_FIELD = 360003
SEGMENT_ORG_FIELD = "account_segment"
SALESFORCE_ID_ORG_FIELD = "salesforce_id"

PRODUCT_TAGS = {
    "billing": ["billing", "invoice", "refund", "pricing"],
    "reporting": ["reports", "dashboard", "export", "csv"],
    "integrations": ["api", "webhook", "salesforce_sync", "slack"],
    "mobile": ["ios", "android", "mobile_app"],
    "security": ["sso", "saml", "2fa", "permissions"],
}
FREE_MAIL = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com"]
WORDS = [
    "export",
    "dashboard",
    "invoice",
    "login",
    "error",
    "slow",
    "sync",
    "report",
    "chart",
    "filter",
    "permission",
    "mobile",
    "app",
    "crash",
    "webhook",
    "api",
    "timeout",
    "billing",
    "seat",
    "license",
    "admin",
    "user",
    "role",
    "integration",
    "salesforce",
    "calendar",
    "reminder",
    "notification",
    "email",
    "template",
    "import",
    "csv",
    "upload",
    "limit",
    "retry",
]


def ticket_fields() -> list[dict[str, Any]]:
    system = [
        {
            "id": 1000 + i,
            "type": kind,
            "title": title,
            "raw_title": title,
            "active": True,
            "removable": False,
            "key": None,
        }
        for i, (kind, title) in enumerate(
            [
                ("subject", "Subject"),
                ("description", "Description"),
                ("status", "Status"),
                ("priority", "Priority"),
                ("tickettype", "Type"),
                ("group", "Group"),
                ("assignee", "Assignee"),
            ]
        )
    ]
    custom = [
        {
            "id": JIRA_KEY_FIELD,
            "type": "text",
            "title": "Jira issue key",
            "raw_title": "Jira issue key",
            "active": True,
            "removable": True,
            "key": None,
        },
        {
            "id": PRODUCT_AREA_FIELD,
            "type": "tagger",
            "title": "Product area",
            "raw_title": "Product area",
            "active": True,
            "removable": True,
            "key": None,
            "custom_field_options": [
                {"id": 9000 + i, "name": area.title(), "value": f"area_{area}"}
                for i, area in enumerate(PRODUCT_TAGS)
            ],
        },
        {
            "id": SEATS_FIELD,
            "type": "integer",
            "title": "Seats affected",
            "raw_title": "Seats affected",
            "active": True,
            "removable": True,
            "key": None,
        },
    ]
    return system + custom


def organization_fields() -> list[dict[str, Any]]:
    return [
        {
            "id": 7001,
            "key": SEGMENT_ORG_FIELD,
            "type": "dropdown",
            "title": "Segment",
            "active": True,
            "custom_field_options": [
                {"name": s, "value": s.lower()} for s in ("Enterprise", "Mid-Market", "SMB")
            ],
        },
        {
            "id": 7002,
            "key": SALESFORCE_ID_ORG_FIELD,
            "type": "text",
            "title": "Salesforce account id",
            "active": True,
        },
    ]


def user_fields() -> list[dict[str, Any]]:
    return [{"id": 8001, "key": "plan", "type": "text", "title": "Plan", "active": True}]


@dataclass
class Generated:
    """Ids of what was generated, for tests to compute expectations from."""

    organizations: list[int] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    tickets: list[int] = field(default_factory=list)
    deleted_tickets: list[int] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


def generate(
    sim: ZendeskSimulator,
    *,
    organizations: int = 100,
    users: int = 500,
    tickets: int = 5000,
    deleted_ticket_share: float = 0.02,
    seed: int = 7,
    span_days: int = 365,
    jira_keys: list[tuple[str, str]] | None = None,
    link_share: float = 0.3,
) -> Generated:
    """Fill `sim` with data; timestamps spread over `span_days` ending two hours ago."""
    rng = random.Random(seed)
    out = Generated()
    sim.ticket_fields = ticket_fields()
    sim.organization_fields = organization_fields()
    sim.user_fields = user_fields()
    end = sim.now() - 7200
    start = end - span_days * 86400

    def when() -> int:
        return rng.randint(start, end)

    domains: dict[int, str] = {}
    for n in range(1, organizations + 1):
        org_id = 500_000 + n
        domain = f"customer{n}.example"
        domains[org_id] = domain
        sim.put_organization(
            {
                "id": org_id,
                "url": f"{sim.base_url}/api/v2/organizations/{org_id}.json",
                "name": f"Customer {n} Inc.",
                "shared_tickets": False,
                "shared_comments": False,
                "external_id": f"001SIM{n:012d}" if rng.random() < 0.8 else None,
                "domain_names": [domain],
                "details": "",
                "notes": "",
                "group_id": None,
                "tags": [rng.choice(["enterprise", "smb", "midmarket"])],
                "organization_fields": {
                    SEGMENT_ORG_FIELD: rng.choice(["enterprise", "mid-market", "smb"]),
                    SALESFORCE_ID_ORG_FIELD: f"001SIM{n:012d}",
                },
            },
            at=when(),
        )
        out.organizations.append(org_id)
    org_ids = out.organizations
    for n in range(1, users + 1):
        user_id = 1_000_000 + n
        member_of = rng.choice(org_ids) if org_ids and rng.random() < 0.85 else None
        domain = domains[member_of] if member_of and rng.random() < 0.9 else rng.choice(FREE_MAIL)
        sim.put_user(
            {
                "id": user_id,
                "url": f"{sim.base_url}/api/v2/users/{user_id}.json",
                "name": f"User {n}",
                "email": f"user{n}@{domain}",
                "role": "end-user",
                "organization_id": member_of,
                "active": True,
                "verified": True,
                "suspended": False,
                "time_zone": "UTC",
                "locale": "en-US",
                "phone": None,
                "external_id": None,
                "tags": [],
                "user_fields": {"plan": rng.choice(["pro", "team", "enterprise"])},
            },
            at=when(),
        )
        out.users.append(user_id)
    for n in range(1, tickets + 1):
        ticket_id = n
        requester = rng.choice(out.users) if out.users else None
        area = rng.choice(list(PRODUCT_TAGS))
        tags = rng.sample(PRODUCT_TAGS[area], k=rng.randint(1, 2))
        jira = rng.choice(jira_keys) if jira_keys and rng.random() < link_share else None
        created = when()
        ticket = _ticket(
            rng, ticket_id, requester, sim, area, tags, jira[1] if jira else None, created
        )
        deleted = rng.random() < deleted_ticket_share
        if deleted:
            ticket["status"] = "deleted"
            out.deleted_tickets.append(ticket_id)
        sim.put_ticket(ticket, at=rng.randint(created, end))
        out.tickets.append(ticket_id)
        if jira and not deleted:
            out.links.append(sim.add_jira_link(ticket_id, jira[0], jira[1])["id"])
    return out


def _ticket(
    rng: random.Random,
    ticket_id: int,
    requester: int | None,
    sim: ZendeskSimulator,
    area: str,
    tags: list[str],
    jira_key: str | None,
    created: int,
) -> dict[str, Any]:
    org_id = None
    if requester is not None:
        user = sim.users.items.get(requester)
        org_id = user.get("organization_id") if user else None
    subject = " ".join(rng.choices(WORDS, k=6)).capitalize()
    description = " ".join(rng.choices(WORDS, k=rng.randint(120, 220))).capitalize() + "."
    status = rng.choice(["new", "open", "pending", "hold", "solved", "closed"])
    return {
        "id": ticket_id,
        "url": f"{sim.base_url}/api/v2/tickets/{ticket_id}.json",
        "external_id": None,
        "type": rng.choice(["question", "incident", "problem", "task"]),
        "subject": subject,
        "raw_subject": subject,
        "description": description,
        "priority": rng.choice(["low", "normal", "high", "urgent", None]),
        "status": status,
        "recipient": "support@example.com",
        "requester_id": requester,
        "submitter_id": requester,
        "assignee_id": rng.choice([None, 42, 43, 44]),
        "organization_id": org_id,
        "group_id": 360000000001,
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "forum_topic_id": None,
        "problem_id": None,
        "has_incidents": False,
        "is_public": True,
        "due_at": None,
        "tags": tags,
        "custom_fields": [
            {"id": JIRA_KEY_FIELD, "value": jira_key},
            {"id": PRODUCT_AREA_FIELD, "value": f"area_{area}"},
            {"id": SEATS_FIELD, "value": str(rng.randint(1, 500)) if rng.random() < 0.5 else None},
        ],
        "satisfaction_rating": {"score": rng.choice(["unoffered", "good", "bad"])},
        "sharing_agreement_ids": [],
        "followup_ids": [],
        "brand_id": 360000000002,
        "allow_channelback": False,
        "allow_attachments": True,
        "from_messaging_channel": False,
        "via": {
            "channel": rng.choice(["email", "web", "api"]),
            "source": {"from": {}, "to": {}, "rel": None},
        },
        "created_at": iso_timestamp(created),
    }
