"""Join the other voices and the scores to each issue's rollup.

The sales voice (pipeline at stake) and the survey voice (detractors among the asking
accounts) become figures of the rollup, next to its ARR, once such records are synced; the
declared scores are then computed from all of them. A voice that has no records adds nothing,
so a store without opportunities or surveys keeps its rollups exactly as they were.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from pmsync.sync.links.models import RollupSpec
from pmsync.sync.links.pipeline import IssuePipeline, compute_pipeline
from pmsync.sync.links.rollups import Currencies, Rollup
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.links.scores import IssueFacts, ScoreResult, compute_scores
from pmsync.sync.links.surveys import NPS, AccountScores, detractor_figures, latest_scores
from pmsync.sync.links.world import World

if TYPE_CHECKING:
    from pmsync.sync.links.fixed import FixedInputs

NO_PIPELINE = IssuePipeline(0.0, 0, 0, (), 0, ())


@dataclass
class Voices:
    """What the other voices say, for reports and views; the figures are in the rollups."""

    pipeline: dict[str, IssuePipeline] = field(default_factory=dict)  # issue ref ->
    surveys: AccountScores = field(default_factory=dict)  # kind -> account ref -> latest
    scores: dict[str, dict[str, ScoreResult]] = field(default_factory=dict)  # name -> issue ->
    has_pipeline: bool = False
    has_surveys: bool = False


def hear_voices(
    world: World,
    rollups: dict[str, dict[str, Rollup]],
    specs: Mapping[str, RollupSpec],
    scores: Mapping[str, ScoreSpec],
    currencies: Currencies,
    *,
    today: date | None = None,
    fixed: Mapping[str, FixedInputs] | None = None,
) -> Voices:
    """Add the voices' figures and the scores to `rollups` (replaced in place).

    `fixed` (by rollup): the pipeline figures and latest NPS an incremental derivation kept
    from the last full one, used instead of the World's opportunities and survey answers."""
    voices = Voices(
        has_pipeline=bool(world.opportunities or world.opportunity_issues),
        has_surveys=bool(world.surveys),
    )
    for name, per_issue in rollups.items():
        spec = specs.get(name) or RollupSpec()
        if fixed is not None:
            figures = _fixed_figures(fixed[name], per_issue, spec)
        else:
            figures = _voice_figures(world, voices, per_issue, spec, currencies, today)
        for score_name, score in scores.items():
            if score.rollup == name:
                _score(voices, score_name, score, world, per_issue, figures)
        for issue_ref, extra in figures.items():
            if extra:
                per_issue[issue_ref] = dataclasses.replace(per_issue[issue_ref], voices=extra)
    return voices


def _voice_figures(
    world: World,
    voices: Voices,
    per_issue: dict[str, Rollup],
    spec: RollupSpec,
    currencies: Currencies,
    today: date | None,
) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {ref: {} for ref in per_issue}
    if voices.has_pipeline:
        pipeline = compute_pipeline(world, currencies, spec.pipeline_stages)
        if not voices.pipeline:
            voices.pipeline = pipeline
        for issue_ref in per_issue:
            figures[issue_ref].update(pipeline.get(issue_ref, NO_PIPELINE).figures())
    if voices.has_surveys:
        latest = latest_scores(world, days=spec.survey_days, today=today)
        if not voices.surveys:
            voices.surveys = latest
        nps = latest.get(NPS, {})
        for issue_ref, roll in per_issue.items():
            asking = roll.provenance["accounts"]
            figures[issue_ref].update(detractor_figures(asking, nps, spec.detractor_max))
    return figures


def _fixed_figures(
    fixed: FixedInputs, per_issue: dict[str, Rollup], spec: RollupSpec
) -> dict[str, dict[str, Any]]:
    """The voices' figures from kept inputs, as `_voice_figures` computes them."""
    figures: dict[str, dict[str, Any]] = {ref: {} for ref in per_issue}
    if fixed.pipeline is not None:
        none = NO_PIPELINE.figures()
        for issue_ref in per_issue:
            figures[issue_ref].update(fixed.pipeline.get(issue_ref, none))
    if fixed.nps is not None:
        for issue_ref, roll in per_issue.items():
            asking = roll.provenance["accounts"]
            figures[issue_ref].update(detractor_figures(asking, fixed.nps, spec.detractor_max))
    return figures


def _score(
    voices: Voices,
    name: str,
    spec: ScoreSpec,
    world: World,
    per_issue: dict[str, Rollup],
    figures: dict[str, dict[str, Any]],
) -> None:
    facts = {
        issue_ref: IssueFacts(
            world.issues[issue_ref],
            {**roll.value(), **figures[issue_ref]},
            roll.provenance["accounts"],
        )
        for issue_ref, roll in per_issue.items()
    }
    results = compute_scores(spec, facts)
    voices.scores[name] = results
    for issue_ref, result in results.items():
        extra = figures[issue_ref]
        extra[name] = result.value
        if result.in_scope:
            extra.setdefault("scores", {})[name] = result.provenance(spec.method)
