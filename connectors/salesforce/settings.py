"""Settings of a Salesforce connector instance."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from pmsync.connectors.base import ConnectorSettings
from pmsync.durations import Duration

AuthMethod = Literal["client_credentials", "jwt", "password"]
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_PORT = re.compile(r":\d{1,5}$")
_SUFFIX = ".salesforce.com"
# Behind base_url every login goes to that URL whatever host simple-salesforce names; the
# client-credentials flow still wants a My Domain there (it refuses login and test).
_PROXY_LOGIN = "pmsync-proxy.my"


class SalesforceCredentials(BaseModel):
    """How pmsync logs in: a connected app's client credentials (recommended for
    integrations), a JWT bearer assertion signed with the app's private key, or an integration
    user's username + password + security token (older orgs)."""

    model_config = ConfigDict(extra="forbid")

    method: AuthMethod = Field(
        default="client_credentials",
        description="client_credentials (needs my_domain), jwt, or password.",
    )
    client_id: str | None = Field(
        default=None, description="The connected app's consumer key (client_credentials, jwt)."
    )
    client_secret: SecretStr | None = Field(
        default=None, description="The connected app's consumer secret (client_credentials)."
    )
    username: str | None = Field(default=None, description="Integration user (jwt, password).")
    password: SecretStr | None = Field(default=None, description="Its password (password).")
    security_token: SecretStr | None = Field(
        default=None, description="Its security token (password)."
    )
    private_key: SecretStr | None = Field(
        default=None,
        description="PEM private key that signs the JWT assertion (jwt).",
        json_schema_extra={"multiline": True},  # PEM has lines; other secrets must not
    )

    @model_validator(mode="after")
    def _complete(self) -> SalesforceCredentials:
        needed = {
            "client_credentials": ("client_id", "client_secret"),
            "jwt": ("client_id", "username", "private_key"),
            "password": ("username", "password", "security_token"),
        }[self.method]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"method '{self.method}' needs {', '.join(missing)}")
        return self


class SalesforceSettings(ConnectorSettings):
    """`[connectors.NAME]` with `type = "salesforce"`."""

    type: Literal["salesforce"] = "salesforce"
    credentials: SalesforceCredentials
    my_domain: str | None = Field(
        default=None,
        description="The org's My Domain host, e.g. acme.my.salesforce.com or "
        "acme--uat.sandbox.my.salesforce.com; required for client_credentials unless base_url "
        "sends every request (logins included) through a proxy, where a host[:port] is fine.",
    )
    sandbox: bool = Field(
        default=False, description="Log in through test.salesforce.com (no My Domain)."
    )
    api_version: str = Field(default="59.0", pattern=r"^\d{2}\.0$")
    batch_size: int = Field(
        default=2000, ge=200, le=2000, description="Records per REST query page (200 to 2,000)."
    )
    overlap: Duration = Field(
        default=timedelta(minutes=5),
        description="Each incremental read re-reads this much before the previous read, to "
        "catch rows committed late with an older SystemModstamp.",
    )
    start_date: datetime | None = Field(
        default=None, description="Only read records changed since then (default: all)."
    )
    bulk_threshold: int | None = Field(
        default=50_000,
        ge=0,
        description="A first sync of more records than this reads through Bulk API 2.0; "
        "unset: never.",
    )
    bulk_page_size: int = Field(default=50_000, ge=1, description="Records per Bulk result page.")
    bulk_poll_interval: Duration = Field(default=timedelta(seconds=5))
    bulk_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="How long one attempt waits for a Bulk job before retrying later.",
    )
    quota_reserve_percent: float = Field(
        default=20.0,
        ge=0,
        lt=100,
        description="Share of the daily API allocation left for the org's other integrations.",
    )
    quota_recheck_interval: Duration = Field(
        default=timedelta(minutes=15),
        description="Once the reserve is reached, how often one call may check whether the "
        "rolling 24-hour window has freed requests.",
    )
    formula_refresh_interval: Duration = Field(
        default=timedelta(hours=24),
        description="Formula fields never move SystemModstamp; when a mapping reads one, the "
        "whole object is re-read this often.",
    )
    discovery_cache: Duration = Field(
        default=timedelta(hours=24),
        validation_alias=AliasChoices("discovery_cache", "describe_cache"),
        description="How long an object's describe is reused from the store before it is "
        "asked again (`describe_cache` is the older name).",
    )

    @field_validator("my_domain")
    @classmethod
    def _my_domain_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = re.sub(r"^https?://", "", value.strip().lower()).rstrip("/")
        bare = _PORT.sub("", host)
        if not _HOST.match(bare):
            raise ValueError("must be a host like acme.my.salesforce.com")
        return host

    @model_validator(mode="after")
    def _client_credentials_need_my_domain(self) -> SalesforceSettings:
        proxied = self.base_url is not None
        if self.my_domain is not None and not proxied and not self.my_domain.endswith(_SUFFIX):
            raise ValueError(
                "my_domain must be a host like acme.my.salesforce.com (a proxy's host:port "
                "goes into base_url)"
            )
        if (
            self.credentials.method == "client_credentials"
            and self.my_domain is None
            and not proxied
        ):
            raise ValueError(
                "credentials.method 'client_credentials' needs my_domain "
                "(Salesforce refuses that flow on login.salesforce.com)"
            )
        return self

    @property
    def login_domain(self) -> str:
        """simple-salesforce's `domain`: the login host without .salesforce.com.

        Behind base_url the host only has to be one the session rewrites to base_url.
        """
        if self.my_domain is not None and self.my_domain.endswith(_SUFFIX):
            return self.my_domain[: -len(_SUFFIX)]
        if self.base_url is not None and (
            self.my_domain is not None or self.credentials.method == "client_credentials"
        ):
            return _PROXY_LOGIN  # any name will do: the session sends it to base_url
        return "test" if self.sandbox else "login"

    @property
    def audience_domain(self) -> str:
        """The JWT audience host: login or test, whatever host the token is asked from."""
        sandbox = self.sandbox or (self.my_domain is not None and ".sandbox." in self.my_domain)
        return "test" if sandbox else "login"
