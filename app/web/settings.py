"""The `[web]` table of the configuration: where the web view listens and who may read it."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from pmsync.durations import Duration

AuthKind = Literal["none", "token", "basic"]


class WebSettings(BaseModel):
    """`pmsync serve`, and `pmsync run` when `enabled`; local-only and open by default."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False, description="`pmsync run` serves the web view too (`pmsync serve` always)."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Listen address; keep it local, or set `auth` before listening wider.",
    )
    port: int = Field(default=9474, ge=0, le=65535, description="0 picks a free port (logged).")
    auth: AuthKind = Field(
        default="none",
        description="none | token (a bearer token, or a sign-in form that sets a cookie) | "
        "basic (HTTP basic authentication).",
    )
    token: SecretStr | None = Field(
        default=None, description="auth = token: the token, a secret reference."
    )
    username: str | None = Field(default=None, description="auth = basic: the user name.")
    password: SecretStr | None = Field(
        default=None, description="auth = basic: the password, a secret reference."
    )
    session_lifetime: Duration = Field(
        default=timedelta(hours=12),
        description="auth = token: how long a sign-in cookie stays valid.",
    )
    refresh_interval: Duration = Field(
        default=timedelta(seconds=30),
        description="How often the view checks the store for new data (then recomputes "
        "links and rollups in the background; pages keep showing the previous figures "
        "until that is done).",
    )
    page_size: int = Field(default=50, ge=10, le=1000, description="Rows per table page.")
    threads: int = Field(default=4, ge=1, le=64, description="Requests served at once.")

    @model_validator(mode="after")
    def _credentials_for_auth(self) -> WebSettings:
        if self.auth == "token" and self.token is None:
            raise ValueError('auth = "token" needs token = { env = ... } (or file, credential)')
        if self.auth == "basic" and (self.username is None or self.password is None):
            raise ValueError('auth = "basic" needs username and password = { env = ... }')
        if self.refresh_interval <= timedelta(0) or self.session_lifetime <= timedelta(0):
            raise ValueError("refresh_interval and session_lifetime must be positive")
        return self
