"""Settings of a Pendo connector instance."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator

from pmsync.connectors.base import ConnectorSettings
from pmsync.durations import Duration

REGION_HOSTS = {
    "us": "https://app.pendo.io",
    "eu": "https://app.eu.pendo.io",
    "us1": "https://us1.app.pendo.io",
    "jpn": "https://app.jpn.pendo.io",
    "au": "https://app.au.pendo.io",
}

Region = Literal["us", "eu", "us1", "jpn", "au"]


class PendoSettings(ConnectorSettings):
    """`[connectors.NAME]` with `type = "pendo"`."""

    type: Literal["pendo"] = "pendo"
    region: Region = Field(
        default="us",
        description="Where the subscription lives: us (app.pendo.io), eu, us1, jpn or au. "
        "base_url, when set, wins (a proxy or the simulator).",
    )
    integration_key: SecretStr = Field(
        description="A read-only integration key (a reference), sent as x-pendo-integration-key."
    )
    app_id: int | str | None = Field(
        default=None,
        description="The app whose events count; default: the subscription's app. For every "
        "app of a multi-app subscription write app_id = 'expandAppIds(\"*\")'.",
    )
    timezone: str = Field(
        default="UTC",
        description="The subscription's time zone (Pendo buckets days in it), e.g. "
        "America/New_York.",
    )
    start_date: date | None = Field(
        default=None,
        description="First day of usage to read. When set, the daily census also tombstones "
        "usage that Pendo no longer has (deleted accounts); default: backfill_days ago.",
    )
    backfill_days: int = Field(
        default=90, ge=1, le=3650, description="Days of usage the first sync reads (no start_date)."
    )
    reread_days: int = Field(
        default=3,
        ge=0,
        le=60,
        description="Finished days read again, for late-arriving events: every cycle that "
        "reads a newly finished day, else every reread_interval.",
    )
    reread_interval: Duration = Field(
        default=timedelta(minutes=15),
        description="How often a caught-up usage or NPS stream reads its re-read window again "
        "(0s: every cycle). In between, a caught-up cycle asks Pendo nothing.",
    )
    slice_days: int = Field(
        default=1,
        ge=1,
        le=31,
        description="Days per aggregation request; each slice is committed (and resumed) alone.",
    )
    census_slice_days: int = Field(
        default=31, ge=1, le=93, description="Days per request of the key-only census."
    )
    page_size: int = Field(
        default=1000, ge=1, le=50_000, description="Accounts per aggregation request."
    )
    requests_per_minute: int = Field(
        default=30,
        ge=1,
        description="Polite pacing; Pendo publishes no limit (tap-pendo sends one every 2 s).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (an IANA name such as UTC)") from None
        return value

    def api_root(self) -> str:
        """The region's host, unless base_url points elsewhere."""
        return self.base_url or REGION_HOSTS[self.region]
