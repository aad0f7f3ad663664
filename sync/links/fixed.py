"""Inputs of the rollups that no value-only change can move, kept from the last full derivation.

An incremental derivation runs only when every change is a ticket, or an account's or an
issue's value (ARR, segment, status: `incremental.py`); usage, survey answers, opportunities,
people and organizations are then unchanged since the last full derivation (none of these
inputs reads a ticket), and so are, on the same day,
each account's peak usage, each account's latest NPS and each cited issue's pipeline figures
(the pipeline reads accounts' existence and names and issues' keys only, which a value-only
change keeps). The full derivation stores them (in `derive_state`, per rollup); an incremental
one reads them instead of loading the large entities they come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import orjson

from pmsync.sync.links.models import RollupSpec
from pmsync.sync.links.pipeline import compute_pipeline
from pmsync.sync.links.rollups import Currencies, usage_by_account
from pmsync.sync.links.surveys import NPS, LatestScore, latest_scores
from pmsync.sync.links.world import World


@dataclass
class FixedInputs:
    """One rollup's unmoving inputs; None: that voice has no records."""

    usage: dict[str, int] | None  # account key -> peak active users in the window
    pipeline: dict[str, dict[str, Any]] | None  # issue ref -> pipeline figures
    nps: dict[str, LatestScore] | None  # account ref -> latest NPS answer

    def dumps(self) -> str:
        """JSON in the figures' own key order (not the store's sorted one): the pipeline
        figures read back become issue properties, which then list their keys as a derivation
        of the whole World does (`pmsync plan` against `apply`, which plans from these)."""
        nps = None if self.nps is None else {k: asdict(v) for k, v in self.nps.items()}
        document = {"usage": self.usage, "pipeline": self.pipeline, "nps": nps}
        return orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS).decode()

    @classmethod
    def loads(cls, text: str) -> FixedInputs:
        data = orjson.loads(text)
        nps = data["nps"]
        return cls(
            data["usage"],
            data["pipeline"],
            None if nps is None else {k: LatestScore(**v) for k, v in nps.items()},
        )


def fixed_inputs(
    world: World,
    specs: Mapping[str, RollupSpec],
    currencies: Currencies,
    today: date,
) -> dict[str, FixedInputs]:
    """Each rollup's unmoving inputs, computed from a whole World."""
    has_pipeline = bool(world.opportunities or world.opportunity_issues)
    found: dict[str, FixedInputs] = {}
    for name, spec in specs.items():
        pipeline = None
        if has_pipeline:
            computed = compute_pipeline(world, currencies, spec.pipeline_stages)
            pipeline = {ref: p.figures() for ref, p in computed.items()}
        nps = None
        if world.surveys:
            nps = latest_scores(world, days=spec.survey_days, today=today).get(NPS, {})
        found[name] = FixedInputs(usage_by_account(world, spec.usage_days, today), pipeline, nps)
    return found
