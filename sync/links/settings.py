"""How rollups convert money: the reporting currency and the exchange rates.

Domain settings live with the domain: the application's configuration file embeds this model as
its `[currency]` table, and the engine reads it without knowing where it came from.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CurrencySettings(BaseModel):
    """Rollups sum ARR in one reporting currency."""

    model_config = ConfigDict(extra="forbid")

    reporting: str = Field(default="USD", min_length=3, max_length=3)
    rates: dict[str, float] = Field(
        default_factory=dict,
        description="Value of one unit of each currency in reporting units, e.g. EUR = 1.08 "
        "with USD reporting (1 EUR is worth 1.08 USD); for currencies the CRM has no rate for.",
    )
    from_store: bool = Field(
        default=True,
        description="Use currency_rate records synced from the CRM (Salesforce CurrencyType, "
        "mapped by the shipped mappings/salesforce.toml); where both have a rate, the CRM's wins.",
    )
