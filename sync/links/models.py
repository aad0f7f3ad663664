"""Declared linking, rollups and write-back: the sections of mapping files product ops edits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AccountRule = Literal[
    "override",
    "organization_external_id",
    "organization_account_field",
    "contact_email",
    "email_domain",
]
IssueRule = Literal["override", "jira_integration", "ticket_field", "text"]

DEFAULT_ACCOUNT_RULES: tuple[AccountRule, ...] = (
    "override",
    "organization_external_id",
    "organization_account_field",
    "contact_email",
    "email_domain",
)
DEFAULT_ISSUE_RULES: tuple[IssueRule, ...] = ("override", "jira_integration", "ticket_field")

FREE_MAIL = [
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "web.de",
    "mail.com",
    "yandex.ru",
    "qq.com",
    "163.com",
]


class TicketAccountLinks(BaseModel):
    """How a ticket finds its account: rules tried in order; the first with one answer wins."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AccountRule] = Field(
        default_factory=lambda: list(DEFAULT_ACCOUNT_RULES),
        description="Rules in order. A rule that finds several accounts stops the search: "
        "the ticket is ambiguous and waits for product ops (`pmsync links review`).",
    )
    free_mail_domains: list[str] = Field(
        default_factory=lambda: list(FREE_MAIL),
        description="E-mail domains that never identify an account.",
    )


class TicketIssueLinks(BaseModel):
    """How a ticket finds its issues; every enabled rule adds links (many to many)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[IssueRule] = Field(
        default_factory=lambda: list(DEFAULT_ISSUE_RULES),
        description="Enabled rules; 'text' finds issue keys in the subject and description.",
    )
    text_pattern: str = Field(
        default=r"\b[A-Z][A-Z0-9]{1,9}-[1-9][0-9]*\b",
        description="Regular expression for issue keys in ticket text (only existing issues link).",
    )


class LinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_account: TicketAccountLinks = Field(default_factory=TicketAccountLinks)
    ticket_issue: TicketIssueLinks = Field(default_factory=TicketIssueLinks)
    overrides: str | None = Field(
        default=None,
        description="TOML file of manual links, relative to this mapping file.",
    )
    description: str = ""


class RollupSpec(BaseModel):
    """Per issue: the accounts and tickets asking for it, and their revenue in one currency."""

    model_config = ConfigDict(extra="forbid")

    top_accounts: int = Field(default=3, ge=0, description="How many account names to list.")
    ticket_statuses: list[str] = Field(
        default_factory=list, description="Count only tickets in these statuses (default: all)."
    )
    segments: list[str] = Field(
        default_factory=list, description="Count only accounts in these segments (default: all)."
    )
    usage_days: int = Field(
        default=30, ge=1, description="Window for the asking accounts' product usage."
    )
    pipeline_stages: list[str] = Field(
        default_factory=list,
        description="Count only open opportunities in these stages as pipeline (default: all).",
    )
    detractor_max: float = Field(
        default=6,
        description="An account whose latest NPS is at most this is a detractor (NPS: 0-6).",
    )
    survey_days: int | None = Field(
        default=None,
        ge=1,
        description="Only survey answers from the last N days count (default: any age).",
    )
    description: str = ""


DEFAULT_ROLLUPS = ("customer_demand",)  # used when no file declares a rollup

WritebackTarget = Literal["issue", "ticket", "account"]

# The figures write-back can put on each kind of target (computed in sync/writeback/figures.py).
# The sales voice: open opportunities citing the issue (sync/links/pipeline.py).
PIPELINE_FIGURES = (
    "pipeline",
    "pipeline_opportunities",
    "pipeline_accounts",
    "pipeline_stages",
    "lost_opportunities",
    "lost_reasons",
)
# The survey voice: the asking accounts' latest NPS (sync/links/surveys.py).
SURVEY_FIGURES = ("detractor_arr", "detractor_accounts", "nps_average")
# Issue figures that are numbers: what a score may name (sync/links/scores.py).
NUMERIC_ISSUE_FIGURES = (
    "arr",
    "accounts",
    "tickets",
    "active_users",
    "unlinked_tickets",
    "pipeline",
    "pipeline_opportunities",
    "pipeline_accounts",
    "lost_opportunities",
    "detractor_arr",
    "detractor_accounts",
    "nps_average",
)
ISSUE_FIGURES = (
    "arr",
    "currency",
    "accounts",
    "tickets",
    "segments",
    "top_accounts",
    "first_request",
    "last_request",
    "active_users",
    "unlinked_tickets",
    "summary",
    *PIPELINE_FIGURES,
    *SURVEY_FIGURES,
)
TICKET_FIGURES = ("issue_status", "issue_keys", "issue_count")
ACCOUNT_FIGURES = ("tickets", "open_tickets", "issues", "issue_keys")
FIGURES: dict[str, tuple[str, ...]] = {
    "issue": ISSUE_FIGURES,
    "ticket": TICKET_FIGURES,
    "account": ACCOUNT_FIGURES,
}


class WritebackSpec(BaseModel):
    """What is written where: target fields = figures pmsync computes. Only these are written."""

    model_config = ConfigDict(extra="forbid")

    connector: str = Field(description="Connector instance name or type holding the targets.")
    target: WritebackTarget = Field(
        description="issue: rollup figures onto issues; ticket: issue facts onto tickets; "
        "account: request counts onto CRM accounts."
    )
    fields: dict[str, str] = Field(
        description="Target field (name, label or id) = figure, e.g. 'Customer ARR' = 'arr'."
    )
    rollup: str = Field(default="customer_demand", description="Rollup used by issue targets.")
    on_human_edit: Literal["overwrite", "keep"] = Field(
        default="keep",
        description="A person changed a field since pmsync wrote it: overwrite it, or keep "
        "their value and report it in the plan.",
    )
    property: str | None = Field(
        default=None, description="Issue property that receives the rollup's provenance (JSON)."
    )
    when_no_demand: Literal["clear", "keep"] = Field(
        default="clear",
        description="A target nobody asks for (no ticket, no account): clear its declared "
        "fields, whoever wrote them (a figure from an old tool or an earlier install would "
        "otherwise stay forever); keep: leave values pmsync never wrote as they are (pmsync's "
        "own figures are still cleared).",
    )
    description: str = ""
