"""Settings of a Jira connector instance (Cloud or Data Center)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from pmsync.connectors.base import ConnectorSettings
from pmsync.durations import Duration

_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")


class JiraCredentials(BaseModel):
    """Cloud: the API user's e-mail and an API token. Data Center: a personal access token."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, description="E-mail of the API user (Cloud).")
    api_token: SecretStr | None = Field(default=None, description="API token (Cloud), a reference.")
    personal_access_token: SecretStr | None = Field(
        default=None, description="Personal access token (Data Center 8.14+), a reference."
    )

    @model_validator(mode="after")
    def _one_method(self) -> JiraCredentials:
        cloud = self.email is not None or self.api_token is not None
        if cloud and self.personal_access_token is not None:
            raise ValueError("set email and api_token (Cloud) or personal_access_token, not both")
        if cloud and (self.email is None or self.api_token is None):
            raise ValueError("Cloud needs both email and api_token")
        if not cloud and self.personal_access_token is None:
            raise ValueError("set email and api_token (Cloud), or personal_access_token (DC)")
        return self


class JiraSettings(ConnectorSettings):
    """`[connectors.NAME]` with `type = "jira"`."""

    type: Literal["jira"] = "jira"
    base_url: str = Field(
        description="https://SITE.atlassian.net, or the Data Center base URL with its context path."
    )
    credentials: JiraCredentials
    projects: list[str] = Field(
        default_factory=list, description="Project keys to read; combined with `jql` by AND."
    )
    jql: str | None = Field(
        default=None,
        description="A JQL filter (no ORDER BY) selecting the issues to read, e.g. a team's board.",
    )
    page_size: int = Field(
        default=100,
        ge=1,
        le=5000,
        description="Issues per search page. Jira Cloud returns at most 100 when fields are asked "
        "for; Data Center at most 1,000 (jira.search.views.default.max).",
    )
    census_page_size: int = Field(
        default=5000, ge=1, le=5000, description="Ids per page of the id-only delete census."
    )
    overlap: Duration = Field(
        default=timedelta(minutes=2),
        description="How far each incremental read reaches back before the last settled minute; "
        "absorbs clock skew and late indexing. Whole minutes.",
    )
    settle_lag: Duration = Field(
        default=timedelta(minutes=1),
        description="Changes younger than this are left for the next cycle (search results are "
        "eventually consistent).",
    )
    start: datetime | None = Field(
        default=None, description="Read only issues updated since; default: every issue."
    )
    requests_per_second: int | None = Field(
        default=10,
        ge=1,
        description="Proactive pacing of all requests (Jira Cloud applies burst limits per "
        "endpoint); unset to rely on 429 + Retry-After alone.",
    )
    issue_writes_per_2s: int = Field(
        default=20, ge=1, description="Writes to one issue within any 2 s (per-issue write limit)."
    )
    issue_writes_per_30s: int = Field(
        default=100, ge=1, description="Writes to one issue within any 30 s."
    )
    rest_api_version: Literal["2", "3"] = Field(
        default="2",
        description="REST API version; v2 keeps text fields as plain strings (v3 uses ADF).",
    )

    @field_validator("projects")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        bad = [key for key in value if not _PROJECT_KEY.match(key)]
        if bad:
            raise ValueError(f"not project keys (upper-case letters, digits, _): {bad}")
        return value

    @field_validator("jql")
    @classmethod
    def _no_order(cls, value: str | None) -> str | None:
        if value is not None and _ORDER_BY.search(value):
            raise ValueError("must not contain ORDER BY: the connector orders by updated itself")
        if value is not None and not value.strip():
            return None
        return value

    @field_validator("overlap", "settle_lag")
    @classmethod
    def _whole_minutes(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value.total_seconds() % 60:
            raise ValueError("must be a whole number of minutes (JQL reads dates to the minute)")
        return value

    @model_validator(mode="after")
    def _scope(self) -> JiraSettings:
        if not self.projects and self.jql is None:
            raise ValueError(
                "set `projects` or `jql`: Jira Cloud refuses unbounded searches, and a scope "
                "keeps the census to the issues pmsync is meant to hold"
            )
        return self
