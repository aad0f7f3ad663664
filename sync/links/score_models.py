"""Priority scores declared as data: `[score.NAME]` in a mapping file, owned by product ops.

A score turns the figures pmsync already computes (reach, revenue, pipeline, detractors) and
fields of the issue (story points, a confidence field) into one number per issue, written back
like any other figure. The method says how inputs combine:

* rice:     reach x impact x confidence / effort
* ice:      impact x confidence x ease
* weighted: each input normalised 0-100 across the issues in scope, times its weight, summed,
            and the sum normalised again (as Jira Product Discovery's weighted formulas do)
* formula:  an arithmetic expression over inputs and numeric issue figures, evaluated by a safe
            expression library (sync/links/formula.py), never by Python's eval
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pmsync.sync.links.models import DEFAULT_ACCOUNT_RULES

ScoreMethod = Literal["rice", "ice", "weighted", "formula"]
METHOD_INPUTS: dict[str, tuple[str, ...]] = {
    "rice": ("reach", "impact", "confidence", "effort"),
    "ice": ("impact", "confidence", "ease"),
}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INPUT_SOURCES = ("figure", "field", "value", "segment_weights", "link_rules")

# How much a link made by each rule is trusted when confidence comes from `link_rules`:
# decisions and ids are exact, a contact's e-mail nearly so, a shared web domain a guess.
DEFAULT_LINK_CONFIDENCE: dict[str, float] = {
    "override": 1.0,
    "organization_external_id": 1.0,
    "organization_account_field": 1.0,
    "contact_email": 0.8,
    "email_domain": 0.5,
}
assert set(DEFAULT_LINK_CONFIDENCE) == set(DEFAULT_ACCOUNT_RULES)


class ScoreInput(BaseModel):
    """Where one input of a score comes from: exactly one of figure, field, value,
    segment_weights or link_rules."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    figure: str | None = Field(
        default=None,
        description="A numeric issue figure: arr, accounts, tickets, active_users, pipeline, "
        "detractor_arr, ... (`pmsync mappings reference` lists them).",
    )
    field: str | None = Field(
        default=None,
        description="A field of the unified issue (entity or extra field), e.g. story_points.",
    )
    value: float | None = Field(default=None, description="A constant.")
    segment_weights: dict[str, float] | None = Field(
        default=None,
        description="Weight per account segment, averaged over the asking accounts; '*' weighs "
        "segments not listed (default 1).",
    )
    link_rules: dict[str, float] | None = Field(
        default=None,
        description="Confidence per ticket -> account rule, averaged over the asking accounts "
        "(each counts its strongest link); rules not listed keep the documented defaults.",
    )
    map: dict[str, float] | None = Field(
        default=None,
        alias="map",
        description="Text values -> numbers, e.g. t-shirt sizes { S = 1, M = 3, L = 8 }.",
    )
    scale: float = Field(default=1.0, description="Multiply the value (e.g. ARR in thousands).")
    default: float | None = Field(
        default=None,
        description="Used when the value is missing; without one a missing input leaves the "
        "score empty (listed by `pmsync plan`).",
    )
    weight: float = Field(default=1.0, description="weighted method: this input's weight.")
    description: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> ScoreInput:
        chosen = [name for name in INPUT_SOURCES if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"set exactly one of {', '.join(INPUT_SOURCES)}"
                + (f" (found {', '.join(chosen)})" if chosen else "")
            )
        if self.map is not None and self.figure is None and self.field is None:
            raise ValueError("map translates the text of a figure or field; set one of them")
        return self

    @property
    def source(self) -> str:
        """'figure arr', 'field story_points', ... for provenance and messages."""
        for name in INPUT_SOURCES:
            value = getattr(self, name)
            if value is not None:
                return f"{name} {value}" if name in ("figure", "field") else name
        return "?"


class ScoreSpec(BaseModel):
    """One priority score per issue, computed every cycle from declared inputs."""

    model_config = ConfigDict(extra="forbid")

    method: ScoreMethod = Field(description="rice | ice | weighted | formula")
    rollup: str = Field(
        default="customer_demand", description="Rollup whose figures the score reads."
    )
    inputs: dict[str, ScoreInput] = Field(
        default_factory=dict,
        description="Named inputs. rice: reach, impact, confidence, effort; ice: impact, "
        "confidence, ease; weighted: any, each with a weight; formula: any the formula names.",
    )
    formula: str | None = Field(
        default=None,
        description="formula method: an expression over inputs and numeric issue figures, "
        "e.g. 'pipeline / 1000 + detractor_arr / 500 - effort'; functions: min max abs round "
        "sqrt log log10.",
    )
    scope: Literal["demand", "all"] = Field(
        default="demand",
        description="demand: issues someone asks for (tickets or open opportunities); all: "
        "every issue. Issues out of scope get no score.",
    )
    projects: list[str] = Field(
        default_factory=list, description="Only issues of these projects (default: all)."
    )
    status_categories: list[str] = Field(
        default_factory=list,
        description="Only issues in these status categories: new, indeterminate, done "
        "(default: all).",
    )
    decimals: int = Field(default=2, ge=0, le=6, description="Rounding of the score.")
    description: str = ""

    @model_validator(mode="after")
    def _inputs_fit_method(self) -> ScoreSpec:
        for name in self.inputs:
            if not NAME.fullmatch(name):
                raise ValueError(f"input name '{name}' must be a plain name (letters, _, digits)")
        wanted = METHOD_INPUTS.get(self.method)
        if wanted is not None:
            missing = [n for n in wanted if n not in self.inputs]
            extra = [n for n in self.inputs if n not in wanted]
            if missing or extra:
                parts = [f"missing {', '.join(missing)}"] if missing else []
                parts += [f"unknown {', '.join(extra)}"] if extra else []
                raise ValueError(
                    f"{self.method} takes inputs {', '.join(wanted)} ({'; '.join(parts)})"
                )
        if self.method == "weighted" and not self.inputs:
            raise ValueError("weighted needs at least one input")
        if (self.method == "formula") != (self.formula is not None):
            raise ValueError(
                "formula is required by method 'formula'"
                if self.method == "formula"
                else f"formula is only read by method 'formula', not '{self.method}'"
            )
        return self


def normalises_across_issues(scores: Mapping[str, ScoreSpec]) -> bool:
    """Whether a declared score reads every issue's figures (weighted: each input normalised
    across the issues scored), so that no derivation of some issues alone can compute it."""
    return any(spec.method == "weighted" for spec in scores.values())


def issue_fields_read(scores: Mapping[str, ScoreSpec]) -> tuple[str, ...]:
    """The issue fields the declared scores' inputs name (`field`), in a stable order."""
    return tuple(
        sorted(
            {
                declared.field
                for spec in scores.values()
                for declared in spec.inputs.values()
                if declared.field is not None
            }
        )
    )
