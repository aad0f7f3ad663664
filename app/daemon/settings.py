"""The `[daemon]` table of the configuration: how `pmsync run` schedules, listens and shares."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pmsync.durations import Duration


class DaemonSettings(BaseModel):
    """Settings of the long-running daemon; the defaults suit most installations."""

    model_config = ConfigDict(extra="forbid")

    http_enabled: bool = Field(default=True, description="Serve /healthz, /readyz and /metrics.")
    http_host: str = Field(
        default="127.0.0.1", description="Address of the health and metrics endpoint."
    )
    http_port: int = Field(
        default=9473, ge=0, le=65535, description="Its port; 0 picks a free one (logged)."
    )
    jitter: float = Field(
        default=0.1,
        ge=0.0,
        le=0.5,
        description="Poll intervals and back-offs vary by up to this fraction, so streams and "
        "replicas do not call the APIs in lockstep.",
    )
    failure_backoff: Duration = Field(
        default=timedelta(seconds=30),
        description="Wait after a stream's first failed run; doubles with each failure in a row.",
    )
    max_failure_backoff: Duration = Field(
        default=timedelta(minutes=30), description="Longest wait between failed runs."
    )
    shutdown_timeout: Duration = Field(
        default=timedelta(seconds=8),
        description="On SIGTERM, how long to let pages in hand finish before exiting; an "
        "unfinished page is not committed and is read again at the next start.",
    )
    lease_interval: Duration = Field(
        default=timedelta(seconds=10),
        description="Replicas on PostgreSQL: a lease lives 1.5 times this past its last "
        "renewal (renewed four times per interval); a dead replica's connectors move within "
        "it, a hung one's within twice it.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> DaemonSettings:
        if self.failure_backoff > self.max_failure_backoff:
            raise ValueError("failure_backoff must not exceed max_failure_backoff")
        if self.lease_interval <= timedelta(0) or self.shutdown_timeout <= timedelta(0):
            raise ValueError("lease_interval and shutdown_timeout must be positive")
        return self
