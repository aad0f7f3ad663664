"""`pmsync demo`: the whole loop on a generated company, with no credentials and no network.

Starts the Salesforce, Zendesk, Jira and Pendo simulators in this process, fills them with a
seeded company (simulators/company.py), then runs exactly what production runs: a full sync, the
linking and rollups, and the write-back plan applied to the simulated Jira and Salesforce.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmsync.app.runtime import Runtime
from pmsync.app.status import stream_statuses
from pmsync.simulators.demo import Change, Demo, launch, world_changes
from pmsync.sync.engine import StreamResult
from pmsync.sync.links.derive import Derived
from pmsync.sync.writeback.apply import ApplyResult
from pmsync.sync.writeback.plan import Plan


@dataclass
class DemoRun:
    """What a demo run did, for the CLI to print and tests to check."""

    demo: Demo
    runtime: Runtime
    synced: list[StreamResult] = field(default_factory=list)
    derived: Derived | None = None
    plan: Plan | None = None
    applied: ApplyResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def close(self) -> None:
        self.runtime.close()
        self.demo.stop()

    def summary(self) -> Summary:
        """What the run did, counted the way `pmsync status` and `links review` count."""
        assert self.derived is not None
        assert self.applied is not None
        jobs = self.runtime.jobs()
        statuses = stream_statuses(self.runtime.store, [(j.connector, j.spec.name) for j in jobs])
        live = {row.stream: row.records for row in statuses}
        by_entity: dict[str, int] = {}
        for job in jobs:
            entity = job.mapping.entity
            by_entity[entity] = by_entity.get(entity, 0) + live[job.qualified]
        links = self.derived.links
        applied = self.applied.applied
        return Summary(
            accounts=by_entity.get("account", 0),
            tickets=by_entity.get("feedback", 0),
            issues=by_entity.get("issue", 0),
            records=sum(row.records for row in statuses),
            tombstones=sum(row.tombstones for row in statuses),
            streams=len(statuses),
            streams_ok=sum(1 for row in statuses if row.status == "ok"),
            linked_to_account=len(links.account_of),
            linked_to_issues=len(links.issues_of),
            to_review=len(links.unresolved),
            written=sum(1 for w in applied if w.action != "note"),
            targets=len({(w.connector, w.target_key) for w in applied if w.action != "note"}),
            notes=sum(1 for w in applied if w.action == "note"),
            failed=len(self.applied.failed),
            dead_letters=sum(r.dead_letters for r in self.synced),
            failed_streams=tuple(
                (f"{r.connector}.{r.stream}", r.error or r.status)
                for r in self.synced
                if r.status == "failed"
            ),
        )

    def change(self, kind: str) -> Change:
        """Change the demo's world (one of `CHANGES`): the next sync and plan show it."""
        return self.demo.change(kind)


CHANGES: dict[str, str] = world_changes()


@dataclass(frozen=True)
class Summary:
    """The demo's counts, in the words of the commands a user runs next."""

    accounts: int  # live records of the account entity, as `pmsync status` counts them
    tickets: int
    issues: int
    records: int
    tombstones: int
    streams: int
    streams_ok: int
    linked_to_account: int
    linked_to_issues: int
    to_review: int  # the rows of `pmsync links review`
    written: int
    targets: int
    notes: int
    failed: int
    dead_letters: int = 0  # records of this run that failed their mapping
    failed_streams: tuple[tuple[str, str], ...] = ()  # (connector.stream, why)


def run_demo(
    directory: Path,
    *,
    seed: int | None = None,
    pendo: bool = True,
    on_step: Callable[[str], None] = lambda _step: None,
    on_page: Callable[[Any], None] | None = None,
) -> DemoRun:
    """Launch the simulated company and run one full cycle against it."""
    started = time.perf_counter()
    on_step("Starting simulated Salesforce, Zendesk, Jira and Pendo with a generated company")
    kwargs: dict[str, Any] = {"pendo": pendo, "reset_mappings": False}
    if seed is not None:
        kwargs["seed"] = seed
    demo = launch(directory, **kwargs)
    run = DemoRun(demo, Runtime.load(str(demo.config_path), upgrade_in_child=True))
    try:
        _timed(run, "launch", started)
        on_step("Syncing every stream into the store")
        step = time.perf_counter()
        run.synced = run.runtime.run_once(on_page=on_page)
        _timed(run, "sync", step)
        on_step("Linking tickets to accounts and issues, rolling revenue up")
        step = time.perf_counter()
        run.derived = run.runtime.derive()
        _timed(run, "link", step)
        on_step("Writing the rollups back into Jira and Salesforce")
        step = time.perf_counter()
        with run.runtime.writeback_lock():
            run.plan = run.runtime.plan(derived=run.derived)
            run.applied = run.runtime.apply(run.plan)
        _timed(run, "write-back", step)
    except BaseException:
        run.close()
        raise
    run.seconds["total"] = time.perf_counter() - started
    return run


def _timed(run: DemoRun, name: str, since: float) -> None:
    run.seconds[name] = time.perf_counter() - since
