"""Wire configuration, connectors, mappings and the store together for one process.

The CLI and the daemon both start here; the engine itself stays free of configuration.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pmsync.app.config import Config, load_config_leniently
from pmsync.app.glance import current_state_reader, require_store
from pmsync.connectors.base import Connector, StreamSpec
from pmsync.connectors.registry import Registry, load_registry
from pmsync.errors import (
    ConfigError,
    FatalError,
    Interrupted,
    PmsyncError,
    Problem,
    QuotaExhausted,
    UsageError,
)
from pmsync.gcpolicy import bulk_allocation, trim_heap
from pmsync.logs import get_logger
from pmsync.sync.mapping.loader import MappingSet, check_against_connectors, load_mappings
from pmsync.sync.store.presence import (
    StoreAbsent,
    StoreUnreachable,
    check_store_present,
)
from pmsync.sync.store.rows import StateReader
from pmsync.validation import did_you_mean

if TYPE_CHECKING:  # loaded where used: `status` needs no engine, links, write-back or SQLAlchemy
    from pmsync.sync.engine import PageHook, StopCheck, StreamResult, SyncEngine
    from pmsync.sync.links.aliases import KeyLookup
    from pmsync.sync.links.changes import Scope
    from pmsync.sync.links.derive import Derived
    from pmsync.sync.links.models import WritebackSpec
    from pmsync.sync.links.report import Section
    from pmsync.sync.mapping.compiler import CompiledStream
    from pmsync.sync.store.store import Store
    from pmsync.sync.writeback.apply import ApplyResult
    from pmsync.sync.writeback.plan import GuardTrip, Plan

ENTITY_TARGETS = {"issue": "issue", "feedback": "ticket", "account": "account"}

log = get_logger("pmsync.runtime")


@dataclass(frozen=True)
class StreamJob:
    """One stream of one connector instance, with its mapping."""

    connector: str
    spec: StreamSpec
    mapping: CompiledStream

    @property
    def qualified(self) -> str:
        return f"{self.connector}.{self.spec.name}"


@dataclass
class Runtime:
    """Everything a command needs, built once from the configuration."""

    config: Config
    mappings: MappingSet
    registry: Registry
    # Commands that only read open a store that is there and never create one (presence.py).
    create_store: bool = True
    # Commands that keep running upgrade a store's schema in a child process (no Alembic here).
    upgrade_in_child: bool = False
    _connectors: dict[str, Connector] = field(default_factory=dict)
    _store: Store | None = None
    _store_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _derived: tuple[tuple[object, float | None], Derived] | None = None
    _incremental: Derived | None = None  # the last incremental derivation (plans reuse it)
    _full: tuple[int, Derived] | None = None  # a full derivation, by generation
    _heap_dirty: bool = False  # a derivation freed memory since the last `settle_heap`

    @classmethod
    def load(
        cls,
        config_path: str | None = None,
        *,
        create_store: bool = True,
        full_check: bool = True,
        upgrade_in_child: bool = False,
    ) -> Runtime:
        """Load config and mappings and check them against each other; ConfigError lists all.

        `create_store=False`: `store` raises NoStore rather than create a missing store.
        `upgrade_in_child=True`: a store that must be created or upgraded is, by a child
        process (`pmsync.sync.store.upgrade`), so this one never imports Alembic; for commands
        that keep running (`sync`, `run`, `apply`, `demo`).
        `full_check=False`: mappings are not checked against each connector's streams and
        fields, nor is the link overrides file read, so no connector module (HTTP client, API
        library) or linker is imported; for commands that only read the store (`status`).
        `check-config`, `sync` and the daemon check everything."""
        registry = load_registry()
        config, problems = load_config_leniently(config_path, registry)
        problems.extend(config.mapping_problems())
        try:
            mappings = load_mappings(config.mapping_paths())
        except ConfigError as exc:
            problems.extend(exc.problems)
            mappings = MappingSet()
        runtime = cls(
            config=config,
            mappings=mappings,
            registry=registry,
            create_store=create_store,
            upgrade_in_child=upgrade_in_child,
        )
        problems.extend(runtime.cross_check(full=full_check))
        ConfigError.collect(problems)
        return runtime

    def cross_check(self, *, full: bool = True) -> list[Problem]:
        """Configured streams need mappings; with `full`, mappings are checked against each
        connector's streams and fields too, and the link overrides file is read."""
        instances = {name: s.type for name, s in self.config.connectors.items()}
        names: dict[str, list[str] | None] = {}
        known: dict[tuple[str, str], frozenset[str]] = {}
        problems: list[Problem] = []
        for name, type_name in instances.items():
            if full:
                connector = self.connector(name)
                specs = connector.streams()
                names[name] = None if connector.open_streams else [s.name for s in specs]
                for spec in specs:
                    known[(name, spec.name)] = spec.known_fields
            mapped = self.mappings.for_connector(name, type_name)
            for wanted in self.config.connectors[name].streams or []:
                if wanted not in mapped:
                    problems.append(
                        Problem(
                            str(self.config.path),
                            f"connectors.{name}.streams",
                            f"stream '{wanted}' has no mapping in {self._mapping_dirs()}"
                            f"{did_you_mean(wanted, mapped)}",
                        )
                    )
        if full:
            problems.extend(self._full_check(instances, names, known))
        return problems

    def _full_check(
        self,
        instances: dict[str, str],
        names: dict[str, list[str] | None],
        known: dict[tuple[str, str], frozenset[str]],
    ) -> list[Problem]:
        """Mappings against the connectors' streams and fields; the link overrides file."""
        from pmsync.sync.links.linker import Overrides

        problems = check_against_connectors(
            self.mappings, instances, names, known, installed_types=self.registry.types
        )
        try:
            Overrides.load(self.mappings.overrides_path)
        except ConfigError as exc:
            problems.extend(exc.problems)
        return problems

    def _mapping_dirs(self) -> str:
        return ", ".join(self.config.settings.mappings.paths)

    @property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use; NoStore when it is not there and
        this runtime may not create it."""
        if self._store is None:
            with self._store_lock:  # a daemon's threads may ask at once: one of them opens it
                if self._store is None:
                    self._store = self._open_store()
        return self._store

    @contextmanager
    def state_reader(self) -> Iterator[StateReader]:
        """What `status` reads: a current store through its driver alone, sqlite3 or psycopg
        (importing SQLAlchemy was most of its start-up); any other through `store`, which
        upgrades an older store first, as before."""
        url = self.config.store_url()
        if self._store is not None:
            yield self._store
            return
        if not self.create_store:
            self._require_store(url)
        with current_state_reader(url) as reader:
            yield self.store if reader is None else reader

    def _open_store(self) -> Store:
        from pmsync.sync.store.store import Store

        url = self.config.store_url()
        if not self.create_store:
            self._require_store(url)
        try:
            return Store(url, upgrade_in_child=self.upgrade_in_child)
        except ConfigError as exc:
            raise ConfigError([self._named(p) for p in exc.problems]) from None
        except OSError as exc:  # its folder cannot be made (a file in the way, no rights)
            reason = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
            raise ConfigError(
                Problem(str(self.config.path), "store.url", f"cannot create the store ({reason})")
            ) from None

    def _require_store(self, url: str) -> None:
        written = self.config.settings.store.url is not None
        require_store(url, self.config.path, url_written=written)

    def _named(self, problem: Problem) -> Problem:
        """A store problem names the configuration file that set the URL."""
        return problem if problem.file else Problem(str(self.config.path), *astuple(problem)[1:])

    def _discovery_store(self) -> Store | None:
        """The store for the discovery cache; None (no cache) when a read-only command finds
        none: looking something up must not create a store."""
        if self._store is None and not self.create_store:
            try:
                check_store_present(self.config.store_url())
            except (StoreAbsent, StoreUnreachable):
                return None
        return self.store

    def connector(self, name: str) -> Connector:
        """The (cached) connector instance; constructing one performs no I/O."""
        if name not in self._connectors:
            settings = self.config.connectors.get(name)
            if settings is None:
                raise UsageError(
                    "CONNECTOR",
                    f"no connector '{name}' in {self.config.path}"
                    f"{did_you_mean(name, self.config.connectors)} "
                    f"(connectors: {', '.join(self.config.connectors) or 'none'})",
                )
            cls = self.registry.get(settings.type)
            assert cls is not None  # load_config checked the type
            instance = cls(name, settings)
            # What it discovers is shared with every other pmsync process through the store.
            from pmsync.sync.store.discovery import StoreDiscoveryCache

            instance.discovery = StoreDiscoveryCache(self._discovery_store)
            self._connectors[name] = instance
        return self._connectors[name]

    def slots(self) -> list[tuple[str, str]]:
        """(connector, stream) of every stream `jobs()` syncs, in its order, from the
        configuration and mappings alone: no connector is imported or made."""
        return [
            (name, stream) for name, mapped in self._mapped_streams().items() for stream in mapped
        ]

    def _mapped_streams(self) -> dict[str, dict[str, CompiledStream]]:
        """Per enabled connector, its configured (or else every mapped) stream that has a
        mapping, with the mapping."""
        found: dict[str, dict[str, CompiledStream]] = {}
        for name, settings in self.config.connectors.items():
            if not settings.enabled:
                continue
            mapped = self.mappings.for_connector(name, settings.type)
            wanted = settings.streams if settings.streams is not None else list(mapped)
            found[name] = {stream: mapped[stream] for stream in wanted if stream in mapped}
        return found

    def jobs(self, selection: Sequence[str] = (), *, option: str = "--stream") -> list[StreamJob]:
        """The streams to sync: enabled connectors' mapped (or configured) streams, filtered.

        An unknown name in `selection` is a UsageError naming `option`, the argument it came
        from."""
        jobs: list[StreamJob] = []
        for name, mapped in self._mapped_streams().items():
            type_name = self.config.connectors[name].type
            for stream_name, mapping in mapped.items():
                spec = self.connector(name).stream(stream_name)
                mapping.bind_key(spec.key)
                # Write-back compares against the target's current values: read those fields too.
                mapping.source_fields |= self._written_fields(name, type_name, mapping.entity)
                jobs.append(StreamJob(name, spec, mapping))
        if not selection:
            return jobs
        chosen: list[StreamJob] = []
        for item in selection:
            matches = [j for j in jobs if item in (j.qualified, j.spec.name, j.connector)]
            if not matches:
                raise UsageError(
                    option,
                    f"no stream '{item}'{did_you_mean(item, _selectable(jobs))} "
                    f"(streams: {', '.join(j.qualified for j in jobs) or 'none'})",
                )
            chosen.extend(m for m in matches if m not in chosen)
        return chosen

    def engine(
        self,
        *,
        run_id: str | None = None,
        on_page: PageHook | None = None,
        should_stop: StopCheck | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> SyncEngine:
        from pmsync.sync.engine import RetryPolicy, SyncEngine

        tuning = self.config.settings.sync
        return SyncEngine(
            self.store,
            run_id=run_id or new_run_id(),
            retry=RetryPolicy(
                max_attempts_without_progress=tuning.max_attempts_without_progress,
                initial_backoff=tuning.initial_backoff.total_seconds(),
                max_backoff=tuning.max_backoff.total_seconds(),
            ),
            on_page=on_page,
            should_stop=should_stop,
            sleep=sleep,
        )

    def run_once(
        self,
        selection: Sequence[str] = (),
        *,
        full_refresh: bool = False,
        sweep: bool | None = None,
        run_id: str | None = None,
        on_page: PageHook | None = None,
    ) -> list[StreamResult]:
        """One pass over the selected streams. `sweep`: None = when due, True = always."""
        run_id = run_id or new_run_id()
        engine = self.engine(run_id=run_id, on_page=on_page)
        results: list[StreamResult] = []
        stopped: set[str] = set()
        from structlog.contextvars import bound_contextvars

        with bound_contextvars(run_id=run_id):
            for job in self.jobs(selection):
                if job.connector in stopped:
                    continue
                connector = self.connector(job.connector)
                result = engine.sync_stream(
                    connector, job.spec, job.mapping, full_refresh=full_refresh
                )
                results.append(result)
                if result.status == "paused":
                    stopped.add(job.connector)  # quota used up: leave the rest for next cycle
                    continue
                if result.status != "ok" or sweep is False:
                    continue
                interval = self.config.connectors[job.connector].sweep_interval
                due = sweep or engine.sweep_due(connector, job.spec, interval)
                if due and not self._sweep(engine, connector, job, result):
                    stopped.add(job.connector)  # quota used up during the sweep
        self.trim_change_journal()
        return results

    def _sweep(
        self, engine: SyncEngine, connector: Connector, job: StreamJob, result: StreamResult
    ) -> bool:
        """Run the stream's sweep into `result`; False when the API budget ran out."""
        try:
            result.deleted += engine.sweep_stream(connector, job.spec, job.mapping)
        except QuotaExhausted as exc:  # pause like a read that ran out of quota
            result.status = "paused"
            result.error = str(exc)
            log.warning(
                "sweep_paused", connector=job.connector, stream=job.spec.name, error=str(exc)
            )
            return False
        except (PmsyncError, FatalError) as exc:
            log.warning(
                "sweep_failed", connector=job.connector, stream=job.spec.name, error=str(exc)
            )
            return True
        except Exception:  # a malformed answer must not end the whole cycle
            log.exception("sweep_crashed", connector=job.connector, stream=job.spec.name)
            return True
        result.swept = True
        return True

    def _written_fields(self, connector: str, type_name: str, entity: str) -> frozenset[str]:
        target = ENTITY_TARGETS.get(entity)
        return frozenset(
            field_name
            for _file, spec in self.mappings.writebacks.values()
            if spec.target == target and spec.connector in (connector, type_name)
            for field_name in spec.fields
        )

    def writable_connectors(self) -> dict[str, Connector]:
        """Every enabled connector instance, for write-back."""
        return {
            name: self.connector(name) for name, s in self.config.connectors.items() if s.enabled
        }

    def writes_to(self, connector: str) -> bool:
        """Whether any declared write-back, or the loop closure, writes to `connector`."""
        settings = self.config.connectors.get(connector)
        if settings is None:
            return False
        names = (connector, settings.type)
        if any(spec.connector in names for _file, spec in self.mappings.writebacks.values()):
            return True
        close_loop = self.config.settings.close_loop
        return close_loop.enabled and close_loop.connector in names

    def plan(
        self,
        *,
        derived: Derived | None = None,
        only_connector: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Plan:
        """Every write the declared write-backs and loop closures would make now."""
        from pmsync.sync.writeback.plan import build_plan

        derived = derived or self.derive(should_stop=should_stop)
        connectors = self.writable_connectors()
        plan = build_plan(
            self.store,
            derived,
            self.mappings.writebacks,
            connectors,
            self.config.settings.writeback,
            self.config.settings.close_loop,
        )
        return plan if only_connector is None else _only(plan, only_connector)

    def plan_in_chunks(
        self,
        connector: str,
        *,
        chunk_weight: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Plan | None:
        """`plan(only_connector=connector)` of every target, from the stored links and kept
        inputs of the last full derivation, a chunk of targets at a time (`derive_chunks`;
        `chunk_weight`: targets and the tickets they read per chunk): never the whole World.
        None: no full derivation kept those inputs, or a weighted score needs every issue.

        Only the write-backs that can write to `connector` are planned, over every target
        they weigh in the guard (their connectors' targets of their kind), and the loop
        closure's tickets when it writes there."""
        from pmsync.sync.links.chunks import CHUNK_WEIGHT
        from pmsync.sync.links.derive import derive_chunks
        from pmsync.sync.writeback.plan import build_plan_chunked

        writebacks, targets = self._targets_for(connector)
        chunks = derive_chunks(
            self.store,
            self.mappings.rollups,
            self.config.settings.currency,
            targets,
            scores=self.mappings.score_specs(),
            weight=chunk_weight or CHUNK_WEIGHT,
        )
        if chunks is None:
            return None
        plan = build_plan_chunked(
            self.store,
            _counted(chunks, should_stop),
            writebacks,
            self.writable_connectors(),
            self.config.settings.writeback,
            self.config.settings.close_loop,
        )
        return _only(plan, connector)

    def _targets_for(
        self, connector: str
    ) -> tuple[dict[str, tuple[str, WritebackSpec]], dict[str, set[str]]]:
        """The write-backs that can write to `connector`, and the targets they (and the loop
        closure, when it writes there) plan: kind -> the enabled connectors holding them."""
        enabled = {name: s.type for name, s in self.config.connectors.items() if s.enabled}

        def matching(wanted: str) -> set[str]:
            return {name for name, type_name in enabled.items() if wanted in (name, type_name)}

        writebacks = {
            name: (file, spec)
            for name, (file, spec) in self.mappings.writebacks.items()
            if connector in matching(spec.connector)
        }
        targets: dict[str, set[str]] = {}
        for _file, spec in writebacks.values():
            targets.setdefault(spec.target, set()).update(matching(spec.connector))
        close_loop = self.config.settings.close_loop
        if close_loop.enabled and connector in matching(close_loop.connector):
            targets.setdefault("ticket", set()).update(matching(close_loop.connector))
        return writebacks, targets

    def writeback_lock(
        self,
        connectors: Sequence[str] | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> AbstractContextManager[None]:
        """Plan and apply under this lock: one write-back at a time per connector and store
        (default: every enabled connector, as `pmsync apply` writes to any of them)."""
        from pmsync.sync.store.locks import store_locks

        names = list(connectors) if connectors is not None else list(self.writable_connectors())
        return store_locks(
            self.store, [f"writeback:{name}" for name in names], should_stop=should_stop
        )

    def apply(
        self,
        plan: Plan,
        *,
        confirm: bool = False,
        should_stop: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ApplyResult:
        from pmsync.sync.writeback.apply import WriteRetry, apply_plan

        settings = self.config.settings.writeback
        retry = WriteRetry(
            attempts=settings.retry_attempts,
            initial_backoff=self.config.settings.sync.initial_backoff.total_seconds(),
            max_wait=settings.retry_max_wait.total_seconds(),
        )
        return apply_plan(
            plan,
            self.store,
            self.writable_connectors(),
            confirm=confirm,
            should_stop=should_stop,
            retry=retry,
            sleep=sleep,
        )

    def plan_changes(
        self,
        connector: str,
        *,
        should_stop: Callable[[], bool] | None = None,
        chunk_weight: int | None = None,
    ) -> tuple[Plan, list[int]]:
        """The writes due for `connector` since its last clean write-back, and the dirty rows
        they cover (`done_planning` clears those once applied without failure).

        Derives incrementally first (nothing changed: nothing read); then plans only the targets
        the derivations marked for this connector, from a World of just those targets, or every
        target after a full derivation, a chunk of targets at a time (`plan_in_chunks`;
        `chunk_weight` sizes the chunks).
        """
        with bulk_allocation(one_arena=False):  # see `collector_aside` in sync/links/derive.py
            return self._plan_changes(connector, should_stop, chunk_weight)

    def _plan_changes(
        self, connector: str, should_stop: Callable[[], bool] | None, chunk_weight: int | None
    ) -> tuple[Plan, list[int]]:
        from pmsync.sync.links.score_models import normalises_across_issues
        from pmsync.sync.writeback.plan import Plan

        # A full derivation is streamed (it holds no ticket) when every target can then be
        # planned a chunk at a time; a weighted score needs every issue's figures at once.
        whole = normalises_across_issues(self.mappings.score_specs())
        latest = self.derive(incremental=True, should_stop=should_stop, hold=whole)
        seqs, scope = self._dirty_targets(connector)
        if not seqs:
            return Plan(uuid.uuid4().hex[:16]), []
        if scope is None:
            chunked = self.plan_in_chunks(
                connector, chunk_weight=chunk_weight, should_stop=should_stop
            )
            if chunked is not None:
                return chunked, seqs
        derived = self._scoped_view(latest, scope) or self._full_view(should_stop)
        return self.plan(derived=derived, only_connector=connector), seqs

    def plan_every_target(
        self,
        *,
        should_stop: Callable[[], bool] | None = None,
        chunk_weight: int | None = None,
    ) -> Plan:
        """`plan()` without holding the World, for `pmsync apply`: the same writes, kept
        writes, guard trips and loop closures, derived and planned the daemon's way.

        The derivation is incremental when nothing asks for a full one, and a full one is
        streamed; then every connector some write-back writes to plans every target a chunk
        at a time (`plan_in_chunks`). A weighted score needs every issue's figures at once:
        then, or when no full derivation kept the inputs chunks read, the plan is of the whole
        World, held, as the daemon falls back (`_full_view`). At 1M tickets the held World
        alone was about 2.3 GB; the target is 500 MiB."""
        with bulk_allocation(one_arena=False):  # see `collector_aside` in sync/links/derive.py
            return self._plan_every_target(should_stop, chunk_weight)

    def _plan_every_target(
        self, should_stop: Callable[[], bool] | None, chunk_weight: int | None
    ) -> Plan:
        from pmsync.sync.links.score_models import normalises_across_issues

        whole = normalises_across_issues(self.mappings.score_specs())
        self.derive(incremental=True, should_stop=should_stop, hold=whole)
        parts = None if whole else self._chunked_plans(should_stop, chunk_weight)
        if parts is not None:
            return self._merged(parts)
        return self.plan(derived=self._full_view(should_stop))

    def empty_scores(self) -> Section:
        """The declared scores left empty on issues in their scope, and the inputs they miss,
        as the last persisted derivation computed them (`stored_empty_scores`): for every
        issue of the World, read from the stored rollups without holding it."""
        from pmsync.sync.links.models import DEFAULT_ROLLUPS
        from pmsync.sync.links.report import stored_empty_scores

        declared = list(self.mappings.rollups) or list(DEFAULT_ROLLUPS)
        return stored_empty_scores(self.store, self.mappings.score_specs(), declared)

    def _chunked_plans(
        self, should_stop: Callable[[], bool] | None, chunk_weight: int | None
    ) -> list[Plan] | None:
        """Each written connector's plan of every target, in chunks; None: no full
        derivation kept the inputs chunks read. Unknown fields are reported together, once
        each (a write-back to two connectors resolves its fields in both plans), as
        `build_plan` reports them."""
        parts: list[Plan] = []
        problems: dict[Problem, None] = {}
        for name in self._writers():
            try:
                chunked = self.plan_in_chunks(
                    name, chunk_weight=chunk_weight, should_stop=should_stop
                )
            except ConfigError as exc:
                problems.update(dict.fromkeys(exc.problems))
                continue
            if chunked is None:
                return None
            parts.append(chunked)
        ConfigError.collect(problems)
        return parts

    def _merged(self, parts: Sequence[Plan]) -> Plan:
        """One plan of the connectors' plans (each holds only its own writes and loops, and
        the guard trips of the write-backs that write to it: a write-back writing to two
        connectors trips in both, with the same tally). Trips are in declaration order, as
        `build_plan` has them."""
        from pmsync.sync.writeback.plan import Plan

        plan = Plan(uuid.uuid4().hex[:16])
        trips: dict[str, GuardTrip] = {}
        for part in parts:
            plan.writes.extend(part.writes)
            plan.kept.extend(part.kept)
            plan.loops.extend(part.loops)
            trips.update({trip.writeback: trip for trip in part.guard})
        order = {name: index for index, name in enumerate(self.mappings.writebacks)}

        def declared(writeback: str) -> int:
            return order.get(writeback, len(order))  # loop closures come last

        plan.writes.sort(key=lambda w: declared(w.writeback))  # stable: by connector within
        plan.guard = sorted(trips.values(), key=lambda t: declared(t.writeback))
        return plan

    def _dirty_targets(self, connector: str) -> tuple[list[int], Scope | None]:
        from pmsync.sync.links.changes import dirty_targets

        with self.store.engine.connect() as connection:
            return dirty_targets(connection, connector)

    def _scoped_view(self, latest: Derived, scope: Scope | None) -> Derived | None:
        """The figures of `scope`'s targets: this cycle's incremental derivation when it
        computed them all, else derived from the stored links. None: every target is to be
        planned (`scope` None), or no full derivation kept the inputs."""
        from pmsync.sync.links.derive import derive_scope

        if scope is None:
            return None
        reuse = self._incremental
        if reuse is not None and reuse.generation != latest.generation:
            reuse = self._incremental = None  # another derivation came since
        if reuse is not None and _covers(reuse, scope):
            return dataclasses.replace(reuse, scope=scope)  # this cycle's derivation
        return derive_scope(
            self.store,
            self.mappings.rollups,
            self.config.settings.currency,
            scope,
            scores=self.mappings.score_specs(),
        )

    def done_planning(self, seqs: Sequence[int]) -> None:
        """The targets behind `seqs` were planned and their writes applied: forget them, and
        the kept derivations once no connector has anything left to plan.

        The full derivation serves connectors that plan every target; the incremental one,
        connectors that plan the same generation's targets after this one. With nothing left
        to plan neither is read again (the next derivation marks targets afresh, under a new
        generation, which no kept derivation matches), so an idle daemon holds none: one
        incremental derivation of a changed account's tickets was 9,000 tickets of a
        20,000-ticket World, kept for as long as nothing else changed."""
        from pmsync.sync.links.changes import clear_dirty, has_dirty, has_full_dirty

        with self.store.transaction() as connection:
            clear_dirty(connection, seqs)
            everything_planned = not has_full_dirty(connection)
            nothing_left = everything_planned and not has_dirty(connection)
        if everything_planned and self._full is not None:
            self._full = None  # the full World is no longer needed: let it go
            self._heap_dirty = True
        if nothing_left and self._incremental is not None:
            self._incremental = None
            self._heap_dirty = True

    @property
    def keeps_derivation(self) -> bool:
        """Whether a derivation is kept for the plans still to come (tests)."""
        return self._full is not None or self._incremental is not None

    def settle_heap(self) -> None:
        """After a write-back cycle: when a derivation ran or a kept one was let go, collect
        and hand the freed heap back (`release_memory`); else nothing (a quiet cycle freed
        next to nothing)."""
        if self._heap_dirty:
            self._heap_dirty = False
            self.release_memory()

    def release_memory(self) -> None:
        """Close the store's idle pooled connections, then collect and trim (`release_memory`).

        A SQLite connection keeps a page cache (up to 2 MiB by default) and its statements,
        filled while the first sync and full derivations read everything: scattered over the C
        heap, they held its freed pages resident. In an idle daemon on glibc's malloc, closing
        them took RSS from 257 to 154 MiB (objects in use 88 -> 64 MiB). The pool opens
        connections again as threads ask (a connection in use elsewhere is left alone: it
        closes when it is given back)."""
        from sqlalchemy.pool import QueuePool

        if self._store is not None and isinstance(self._store.engine.pool, QueuePool):
            # Only a queue pool leaves connections in use alone; an in-memory SQLite store's
            # pool (one connection per thread) would close its only copy of the database.
            self._store.engine.dispose()
        release_memory()

    def trim_change_journal(self) -> None:
        """Keep the journal of changed records bounded when nothing derives for a long time
        (a daemon without write-back, syncs without reports): past its limit it is dropped and
        the next derivation derives everything."""
        from pmsync.sync.links.changes import trim_journal

        if trim_journal(self.store):
            log.info("change_journal_dropped", hint="the next derivation derives everything")

    def _full_view(self, should_stop: Callable[[], bool] | None) -> Derived:
        """Every figure, for a connector that plans all its targets (kept while another one
        still has to): the last full derivation while no other came since, else computed."""
        from pmsync.sync.links.derive import current_generation

        generation = current_generation(self.store)
        kept = self._full  # read once: another worker's derivation may let it go meanwhile
        if kept is not None and kept[0] == generation:
            return kept[1]
        derived = self.derive(persist=False, should_stop=should_stop)
        self._full = (generation, derived)
        return derived

    def _forget_derivations(self) -> None:
        """Let every kept derivation go before a full one reads the whole World: each is stale
        once it completes, and holding one while the next is built doubles the peak (and the
        heap a daemon keeps afterwards)."""
        self._full = self._incremental = self._derived = None

    def derive(
        self,
        *,
        persist: bool = True,
        should_stop: Callable[[], bool] | None = None,
        incremental: bool = False,
        hold: bool = True,
    ) -> Derived:
        """Link the stored records and compute the rollups (stored when `persist`).

        A derivation this process made is reused while nothing it read has changed. With
        `incremental`, only what changed since the last derivation is derived (see
        `sync/links/derive.py`); the result then holds only the targets that changed.
        `hold=False`: a full derivation is streamed and its result holds no figure
        (`Derived.held`); it is neither kept nor reused.
        """
        from pmsync.sync.links.derive import derive
        from pmsync.sync.links.linker import Overrides

        if incremental:
            derived = derive(
                self.store,
                self.mappings.links,
                Overrides.load(self.mappings.overrides_path),
                self.mappings.rollups,
                self.config.settings.currency,
                scores=self.mappings.score_specs(),
                should_stop=should_stop,
                lookups=self._key_lookups(),
                projects=self._issue_projects(),
                incremental=True,
                writers=self._writers(),
                before_full=self._forget_derivations,
                hold=hold,
            )
            if derived.mode != "quiet":
                self._heap_dirty = True
            if derived.mode == "incremental":
                self._incremental = derived
            elif derived.mode == "full":
                if derived.held:  # what a plan of every target reads
                    self._full = (derived.generation, derived)
                self.release_memory()  # the rows and payloads it read are garbage now
            return derived
        version = (self.store.data_version(), _mtime(self.mappings.overrides_path))
        cached = self._derived
        if persist and hold and cached is not None and cached[0] == version:
            return cached[1]
        derived = derive(
            self.store,
            self.mappings.links,
            Overrides.load(self.mappings.overrides_path),
            self.mappings.rollups,
            self.config.settings.currency,
            persist=persist,
            scores=self.mappings.score_specs(),
            should_stop=should_stop,
            lookups=self._key_lookups(),
            projects=self._issue_projects(),
            writers=self._writers(),
            before_full=self._forget_derivations,
            hold=hold,
        )
        if persist and derived.held:
            self._derived = (version, derived)
        self.release_memory()
        return derived

    def _writers(self) -> list[str]:
        """Connectors some write-back (or the loop closure) writes to."""
        return [name for name in self.writable_connectors() if self.writes_to(name)]

    def _key_lookups(self) -> dict[str, KeyLookup]:
        """Connectors that can say which issue a key names (Jira: old keys of moved issues)."""
        found: dict[str, KeyLookup] = {}
        for name, connector in self.writable_connectors().items():
            lookup = getattr(connector, "lookup_issue_keys", None)
            if callable(lookup):
                found[name] = lookup
        return found

    def _issue_projects(self) -> list[str]:
        projects: list[str] = []
        for settings in self.config.connectors.values():
            projects.extend(getattr(settings, "projects", None) or [])
        return projects

    def close(self) -> None:
        self._forget_derivations()  # a reloaded daemon's old runtime may outlive its workers
        for connector in self._connectors.values():
            connector.close()
        if self._store is not None:
            self._store.close()


def _selectable(jobs: Sequence[StreamJob]) -> set[str]:
    """Every name `--stream` accepts: connector.stream, stream, connector."""
    return {name for j in jobs for name in (j.qualified, j.spec.name, j.connector)}


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def release_memory() -> None:
    """Collect, then hand the freed heap back to the system (glibc keeps it otherwise, so a
    daemon's RSS would stay at the peak of its first full derivation)."""
    gc.collect()
    trim_heap()


def _only(plan: Plan, connector: str) -> Plan:
    """The plan's writes, kept writes, guard trips and loops that concern `connector`."""
    plan.writes = [w for w in plan.writes if w.connector == connector]
    plan.kept = [w for w in plan.kept if w.connector == connector]
    # Only this connector's own write-backs can hold its writes back.
    mine = {w.writeback for w in plan.writes}
    plan.guard = [trip for trip in plan.guard if trip.writeback in mine]
    plan.loops = [loop for loop in plan.loops if loop[1].startswith(f"{connector}:")]
    return plan


def _counted(
    chunks: Iterator[Derived], should_stop: Callable[[], bool] | None
) -> Iterator[Derived]:
    """The chunks, stopping between two when asked (Interrupted: nothing is half planned),
    and a log line of how many there were."""
    count = 0
    for derived in chunks:
        count += 1
        yield derived
        if should_stop is not None and should_stop():
            raise Interrupted("stop requested while planning")
    log.info("planned_in_chunks", chunks=count)


def _covers(derived: Derived, scope: Scope) -> bool:
    """Whether an incremental derivation computed every figure of `scope`'s targets: its
    issues' rollups, its tickets, and every ticket of its accounts."""
    if derived.scope is None:
        return False
    return (
        scope.issues <= derived.scope.issues
        and scope.tickets <= set(derived.world.tickets)
        and scope.accounts <= derived.scope.accounts
    )


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:
        return None
