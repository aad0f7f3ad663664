"""The connector contract suite: every connector runs it with a few lines of setup.

Subclass `ConnectorContract` in a test module, point it at a simulator holding data, and
implement the hooks. The suite checks what the engine relies on: check, discover, a full read,
an incremental read, resuming from every checkpoint, a future cursor reading nothing, deletes
becoming tombstones, and a bad credential being reported as a configuration problem.

It needs pytest (a development dependency); production code never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from pmsync.connectors.base import Connector, Page, StreamSpec
from pmsync.errors import AuthError
from pmsync.sync.engine import SyncEngine
from pmsync.sync.entities import ENTITIES
from pmsync.sync.mapping.compiler import CompiledStream
from pmsync.sync.store.store import Store


def read_all(connector: Connector, spec: StreamSpec, cursor: BaseModel | None = None) -> list[Page]:
    """Every page of a read from `cursor`."""
    return list(connector.read(spec, cursor))


def key_mapping(connector: Connector, spec: StreamSpec) -> CompiledStream:
    """A mapping that keeps only the key: enough for the engine to store and tombstone."""
    entity = spec.entity_hint if spec.entity_hint in ENTITIES else "account"
    mapping = CompiledStream(
        connector=connector.name,
        stream=spec.name,
        entity=str(entity),
        file="<contract>",
        key_path=None,
        fields=(),
        source_fields=frozenset(),
    )
    mapping.bind_key(spec.key)
    return mapping


class ConnectorContract:
    """Base class of a connector's contract tests. Hooks are the methods marked 'override'."""

    #: Streams the suite exercises; each must hold more than one page of data.
    streams: ClassVar[Sequence[str]] = ()
    #: Objects whose discovery must report at least one custom field.
    objects_with_custom_fields: ClassVar[Sequence[str]] = ()

    # ---- hooks --------------------------------------------------------------------------

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        """Override: a connector pointed at a simulator with data, small pages."""
        raise NotImplementedError

    @pytest.fixture
    def bad_connector(self) -> Iterator[Connector]:
        """Override: the same connector with a credential the simulator refuses."""
        raise NotImplementedError

    def source_keys(self, stream: str) -> set[str]:
        """Override: keys of the records live at the source now."""
        raise NotImplementedError

    def change_one(self, stream: str) -> str:
        """Override: change (or add) one record at the source; return its key."""
        raise NotImplementedError

    def delete_one(self, stream: str) -> str:
        """Override: delete one record at the source the way the API reports it; return its key."""
        raise NotImplementedError

    def future_cursor(self, spec: StreamSpec) -> BaseModel:
        """Override: a cursor far in the future for this stream."""
        raise NotImplementedError

    def key_of(self, spec: StreamSpec, record: dict[str, Any]) -> str:
        return str(record[spec.key])

    # ---- the suite -----------------------------------------------------------------------

    def _keys(self, spec: StreamSpec, pages: Sequence[Page]) -> set[str]:
        return {self.key_of(spec, r) for page in pages for r in page.records}

    def test_check_accepts_good_credentials(self, connector: Connector) -> None:
        connector.check()

    def test_bad_credential_is_a_configuration_error(self, bad_connector: Connector) -> None:
        with pytest.raises(AuthError) as info:
            bad_connector.check()
        assert bad_connector.name in str(info.value)

    def test_discover_lists_fields(self, connector: Connector) -> None:
        objects = list(connector.objects())
        assert objects
        for name in self.objects_with_custom_fields:
            fields = connector.discover(name)
            assert fields, f"{name} has no fields"
            assert any(f.custom for f in fields), f"{name}: no custom field discovered"

    def test_full_read_returns_every_live_record(self, connector: Connector) -> None:
        for stream in self.streams:
            spec = connector.stream(stream)
            pages = read_all(connector, spec)
            assert len(pages) > 1, f"{stream}: use a page size that gives several pages"
            assert self._keys(spec, pages) == self.source_keys(stream), stream

    def test_incremental_read_returns_changes(self, connector: Connector) -> None:
        for stream in self.streams:
            spec = connector.stream(stream)
            pages = read_all(connector, spec)
            changed = self.change_one(stream)
            later = read_all(connector, spec, pages[-1].cursor)
            keys = self._keys(spec, later)
            assert changed in keys, f"{stream}: change to {changed} not read"
            assert len(keys) < len(self.source_keys(stream)), f"{stream}: re-read everything"

    def test_resume_from_every_checkpoint(self, connector: Connector) -> None:
        for stream in self.streams:
            spec = connector.stream(stream)
            pages = read_all(connector, spec)
            expected = self.source_keys(stream)
            before: set[str] = set()
            for page in pages:
                before |= self._keys(spec, [page])
                resumed = self._keys(spec, read_all(connector, spec, page.cursor))
                missing = expected - before - resumed
                assert not missing, f"{stream}: resuming lost {sorted(missing)[:5]}"

    def test_future_cursor_reads_nothing(self, connector: Connector) -> None:
        for stream in self.streams:
            spec = connector.stream(stream)
            pages = read_all(connector, spec, self.future_cursor(spec))
            assert self._keys(spec, pages) == set(), stream

    def test_deleted_records_become_tombstones(self, connector: Connector, tmp_path: Path) -> None:
        store = Store(f"sqlite:///{tmp_path / 'contract.db'}")
        engine = SyncEngine(store, run_id="contract", sleep=lambda _s: None)
        for stream in self.streams:
            spec = connector.stream(stream)
            mapping = key_mapping(connector, spec)
            assert engine.sync_stream(connector, spec, mapping).status == "ok"
            gone = self.delete_one(stream)
            result = engine.sync_stream(connector, spec, mapping)
            assert result.status == "ok", result.error
            if spec.sweep != "none":
                engine.sweep_stream(connector, spec, mapping)
            stored = {
                r.key: r
                for r in store.iter_records(
                    connector=connector.name, stream=stream, include_deleted=True
                )
            }
            assert gone in stored, f"{stream}: deleted record {gone} not kept"
            assert stored[gone].deleted_at is not None, f"{stream}: {gone} not tombstoned"
            live = {k for k, r in stored.items() if r.deleted_at is None}
            assert live == self.source_keys(stream), stream
        store.close()
