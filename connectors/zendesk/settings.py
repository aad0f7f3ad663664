"""Settings of a Zendesk connector instance."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from pmsync.connectors.base import ConnectorSettings
from pmsync.durations import Duration


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
    max_rate_limit_wait: Duration = Field(
        default=timedelta(seconds=120),
        description="Longest zenpy may wait on one Retry-After before the engine takes over.",
    )
