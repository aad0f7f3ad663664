"""How boldly write-back runs, and how loop-closing notes are written.

Domain settings live with the domain: the application's configuration file embeds these models
as its `[writeback]` and `[close_loop]` tables.
"""

from __future__ import annotations

import string
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pmsync.durations import Duration
from pmsync.validation import did_you_mean


class WritebackSettings(BaseModel):
    """When and how boldly write-back runs."""

    model_config = ConfigDict(extra="forbid")

    auto_apply: bool = Field(
        default=False, description="The daemon applies the plan after each read cycle."
    )
    max_change_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A plan changing more than this share of a write-back's targets waits for "
        "`pmsync apply --confirm` (a mapping mistake would change everything at once).",
    )
    guard_min_targets: int = Field(
        default=10, ge=0, description="Plans touching fewer targets than this never trip the guard."
    )
    retry_attempts: int = Field(
        default=4,
        ge=1,
        description="Attempts per write within one apply when the API answers 429, 5xx or drops "
        "the connection (Retry-After honoured); what still fails waits for the next plan.",
    )
    retry_max_wait: Duration = Field(
        default=timedelta(seconds=60),
        description="The longest wait between attempts; a Retry-After longer than this leaves "
        "the write for the next cycle instead of holding the apply.",
    )


NOTE_FIELDS = (
    "key",
    "summary",
    "status",
    "fix_versions",
    "fix_versions_text",
    "resolution_date",
    "status_line",
)
LoopTrigger = Literal["done", "released"]
LOOP_TRIGGERS: tuple[LoopTrigger, ...] = ("done", "released")


class CloseLoopSettings(BaseModel):
    """Tell the customers' tickets when the issue they wait on ships."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    connector: str = Field(default="zendesk", description="Connector (or type) of the tickets.")
    when: list[LoopTrigger] = Field(
        default_factory=lambda: list(LOOP_TRIGGERS),
        description="done: the issue's status category is Done; released: all its fix versions "
        "are released.",
    )
    open_statuses: list[str] = Field(
        default_factory=lambda: ["new", "open", "pending", "hold"],
        description="Only tickets in these statuses get the note.",
    )
    note: str = Field(
        default="The issue {key} ({summary}) that this ticket is waiting on is now {status}"
        "{fix_versions_text}. (Added by pmsync.)",
        description="Internal note template: {key} {summary} {status} {fix_versions_text} "
        "{fix_versions} {resolution_date}.",
    )
    ticket_field: str | None = Field(
        default=None, description="A ticket field (id or name) set when the loop closes."
    )

    @field_validator("note")
    @classmethod
    def _note_renders(cls, note: str) -> str:
        try:
            names = {name for _text, name, _spec, _conv in string.Formatter().parse(note) if name}
        except ValueError as exc:
            raise ValueError(f"the note template does not parse: {exc}") from None
        unknown = sorted(names - set(NOTE_FIELDS))
        if unknown:
            hint = did_you_mean(unknown[0], NOTE_FIELDS)
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}{hint} "
                f"(placeholders: {', '.join(NOTE_FIELDS)})"
            )
        try:
            note.format_map(dict.fromkeys(NOTE_FIELDS, ""))
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"the note template does not render: {exc}") from None
        return note

    ticket_field_value: str = Field(default="shipped")
