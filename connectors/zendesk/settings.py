"""Settings of a Zendesk connector instance."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from pmsync.connectors.base import ConnectorSettings
from pmsync.durations import Duration

SUBDOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class ZendeskCredentials(BaseModel):
    """An API token with the agent's e-mail, or an OAuth access token."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, description="E-mail of the API user (token auth).")
    api_token: SecretStr | None = Field(default=None, description="API token (a reference).")
    oauth_token: SecretStr | None = Field(default=None, description="OAuth token (a reference).")

    @model_validator(mode="after")
    def _one_method(self) -> ZendeskCredentials:
        if self.oauth_token is None and (self.email is None or self.api_token is None):
            raise ValueError("set email and api_token, or oauth_token")
        return self


class ZendeskSettings(ConnectorSettings):
    """`[connectors.NAME]` with `type = "zendesk"`."""

    type: Literal["zendesk"] = "zendesk"
    base_url: str = Field(description="https://SUBDOMAIN.zendesk.com, or a proxy or simulator.")
    credentials: ZendeskCredentials
    page_size: int = Field(default=1000, ge=1, le=1000)
    incremental_requests_per_minute: int = Field(
        default=10, ge=1, description="Zendesk allows 10 (30 with High Volume); paced before 429."
    )
    requests_per_minute: int = Field(default=400, ge=1, description="The plan's API limit.")
    start_time: datetime | None = Field(
        default=None, description="Where the first export starts; default: the beginning."
    )
    links_census_interval: Duration = Field(
        default=timedelta(0),
        description="How often the Jira links are listed in full, which finds removed and "
        "changed links; in between, each cycle asks only for links newer than the newest seen "
        "(one request). 0s (the default) lists them in full every cycle, so a removed link "
        "stops counting at the next one.",
    )
    max_rate_limit_wait: Duration = Field(
        default=timedelta(seconds=120),
        description="Longest zenpy may wait on one Retry-After before the engine takes over.",
    )

    @model_validator(mode="before")
    @classmethod
    def _subdomain_is_base_url(cls, data: Any) -> Any:
        """Other tools configure Zendesk by subdomain: say what pmsync reads instead."""
        if isinstance(data, dict) and "subdomain" in data and "base_url" not in data:
            given = data["subdomain"]
            name = given if isinstance(given, str) and SUBDOMAIN.fullmatch(given) else "SUBDOMAIN"
            raise PydanticCustomError(
                "zendesk_subdomain",
                'there is no subdomain option; write base_url = "{url}" instead',
                {"url": f"https://{name}.zendesk.com"},
            )
        return data
