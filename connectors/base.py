"""The connector interface: the only contract between an API and the engine."""

from __future__ import annotations

import difflib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pmsync.durations import Duration
from pmsync.errors import FatalError

Record = dict[str, Any]
T = TypeVar("T")


class _Missing:
    """A field the stored payload does not carry (unlike a field that is empty)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class ConnectorSettings(BaseModel):
    """Settings every connector instance has; a connector subclasses this for its own."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Connector type, as listed by `pmsync connectors list`.")
    base_url: str | None = Field(
        default=None,
        description="API root (https://acme.zendesk.com); also points at a proxy or simulator.",
    )
    enabled: bool = True
    poll_interval: Duration = Field(default=timedelta(minutes=5))
    sweep_interval: Duration = Field(
        default=timedelta(hours=24),
        description="How often to run the id-only sweep that finds hard deletes.",
    )
    streams: list[str] | None = Field(
        default=None, description="Streams to sync; default: every stream that has a mapping."
    )
    ca_bundle: Path | None = Field(
        default=None, description="PEM file of a private CA, passed with each request."
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds per HTTP request.")
    discovery_cache: Duration = Field(
        default=timedelta(hours=24),
        description="How long what the API says about itself (Salesforce describe, Jira's "
        "server info and field catalogue, Zendesk's field definitions) is reused from the "
        "store before it is asked again; `pmsync discover` always asks.",
    )

    @field_validator("base_url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        return value.rstrip("/") if value else value


@dataclass(frozen=True)
class StreamSpec:
    """What a stream is: its name, its key field, its cursor type, how deletes are found.

    `reads_in_full`: a read from the beginning lists every record the source has (there is no
    "changed since" and no deletion feed for it), so such a read, once complete, is the stream's
    census: the engine tombstones what it no longer lists. The engine reads from the beginning
    when the census is due (`Connector.census_interval` since the last one), and otherwise from
    the stored cursor, which then has to find what is new (Zendesk's links: ids above the newest
    seen), so a quiet cycle costs one request rather than the whole listing.
    """

    name: str
    key: str
    cursor_model: type[BaseModel]
    description: str = ""
    object_name: str | None = None
    known_fields: frozenset[str] = frozenset()
    sweep: Literal["none", "census", "deletions"] = "none"
    entity_hint: str | None = None
    reads_in_full: bool = False


@dataclass(frozen=True)
class Page:
    """Records read from one API page, and the cursor that covers them.

    `deleted` holds records (at least their key field) the source reports as deleted.
    Committing `cursor` means every record before it is stored.

    `begins_census` marks the first page of a read that starts at the beginning and returns
    every live record of the stream (an endpoint read in full each cycle): when that read
    completes, the engine tombstones the stored records it did not return. A read that fails or
    stops half-way tombstones nothing, nor does its resumption in a later run (it did not list
    everything); the next read from the beginning is the census.
    """

    records: Sequence[Record]
    cursor: BaseModel
    deleted: Sequence[Record] = ()
    requests: int = 1
    begins_census: bool = False


@dataclass(frozen=True)
class SweepPage:
    """One page of an id-only sweep: records present at the source, or deleted at it."""

    present: Sequence[Record] = ()
    deleted: Sequence[Record] = ()


@dataclass(frozen=True)
class FieldInfo:
    """A field an object has at the source, custom fields included."""

    name: str
    type: str
    label: str = ""
    custom: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldWrite:
    """Set `fields` (source field name -> value) on one record of `object_name` at the source."""

    object_name: str
    key: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one FieldWrite; a failure names the record and the field.

    `retriable`: sending it again may work (429, 5xx, a dropped connection), after
    `retry_after` seconds when the API said so. `gone`: the target does not exist (404), so
    writing to it again is pointless until a read sees it again.
    """

    key: str
    ok: bool
    error: str | None = None
    retriable: bool = False
    retry_after: float | None = None
    gone: bool = False


class DiscoveryCache(Protocol):
    """Where a connector keeps what it discovered, so another process need not ask again.

    Values are JSON-able. `get` answers None when nothing younger than `max_age` is kept.
    """

    def get(self, connector: str, name: str, max_age: timedelta) -> Any | None: ...

    def put(self, connector: str, name: str, value: Any) -> None: ...

    def forget(self, connector: str, name: str) -> None: ...


class MemoryDiscoveryCache:
    """The default cache: this process only (the application puts one in the store)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, connector: str, name: str, max_age: timedelta) -> Any | None:
        with self._lock:
            found = self._values.get((connector, name))
        if found is None or time.monotonic() - found[0] > max_age.total_seconds():
            return None
        return found[1]

    def put(self, connector: str, name: str, value: Any) -> None:
        with self._lock:
            self._values[(connector, name)] = (time.monotonic(), value)

    def forget(self, connector: str, name: str) -> None:
        with self._lock:
            self._values.pop((connector, name), None)


class Connector(ABC):
    """Base class of every connector; subclasses set the class variables and the methods."""

    type_name: ClassVar[str]
    description: ClassVar[str] = ""
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    open_streams: ClassVar[bool] = False  # True: any stream name is valid (e.g. sObjects)

    def __init__(self, name: str, settings: ConnectorSettings) -> None:
        self.name = name
        self.settings = settings
        self.discovery: DiscoveryCache = MemoryDiscoveryCache()

    def cached(self, name: str, fetch: Callable[[], T], *, fresh: bool = False) -> T:
        """`fetch()`, or its answer kept in the discovery cache for `discovery_cache`.

        `fetch` must return a JSON-able value; `fresh` asks again and keeps the new answer.
        """
        if not fresh:
            found = self.discovery.get(self.name, name, self.settings.discovery_cache)
            if found is not None:
                return found  # type: ignore[no-any-return]
        value = fetch()
        self.discovery.put(self.name, name, value)
        return value

    def fields_of(self, object_name: str, *, fresh: bool = False) -> Sequence[FieldInfo]:
        """`discover(object_name)`, reused from the discovery cache (write-back resolves the
        declared field names through this, so a plan costs no request while it is fresh)."""
        rows = self.cached(
            f"fields/{object_name}",
            lambda: [asdict(info) for info in self.discover(object_name)],
            fresh=fresh,
        )
        return [
            FieldInfo(
                str(r["name"]),
                str(r["type"]),
                label=str(r.get("label") or ""),
                custom=bool(r.get("custom")),
                extra=dict(r.get("extra") or {}),
            )
            for r in rows
        ]

    @abstractmethod
    def streams(self) -> Sequence[StreamSpec]:
        """Every stream this connector can read."""

    def stream(self, name: str) -> StreamSpec:
        """The spec of one stream; a connector with open-ended streams overrides this."""
        specs = {s.name: s for s in self.streams()}
        if name in specs:
            return specs[name]
        hint = difflib.get_close_matches(name, specs, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        raise FatalError(
            f"no stream '{name}' (streams: {', '.join(sorted(specs))}){suggestion}",
            connector=self.name,
        )

    @abstractmethod
    def check(self) -> None:
        """Test reachability and credentials; raise AuthError or RetriableError."""

    @abstractmethod
    def objects(self) -> Sequence[str]:
        """The object names `discover` can describe."""

    @abstractmethod
    def discover(self, object_name: str) -> Sequence[FieldInfo]:
        """The fields `object_name` has at the source, custom fields included."""

    @abstractmethod
    def read(
        self,
        stream: StreamSpec,
        cursor: BaseModel | None,
        *,
        fields: frozenset[str] = frozenset(),
    ) -> Iterator[Page]:
        """Yield pages from `cursor` (None: from the beginning) to the present.

        `fields` names the source fields the mappings use (a hint; a connector may read more).
        """

    def sweep(self, stream: StreamSpec) -> Iterator[SweepPage]:
        """Id-only reconciliation for deletes; only for streams whose spec declares a sweep."""
        raise FatalError(f"stream '{stream.name}' has no sweep", connector=self.name)

    def census_interval(self, stream: StreamSpec) -> timedelta:
        """How often a `reads_in_full` stream is listed from the beginning (its census); in
        between, reads resume from the cursor. Default: every read (a cursor that cannot
        find what is new on its own stays correct)."""
        return timedelta(0)

    def confirm_absent(self, stream: StreamSpec, keys: Sequence[str]) -> set[str]:
        """Of the keys a census did not list, those that are really gone (default: all).

        A connector whose census order can move under concurrent changes asks again by key.
        """
        return set(keys)

    def write(self, writes: Sequence[FieldWrite]) -> list[WriteOutcome]:
        """Write declared fields back to the source; one outcome per write, in order.

        A record-level failure is an outcome with ok=False (the other writes go on); an
        API-level failure raises RetriableError / AuthError / QuotaExhausted like a read.
        """
        raise FatalError(f"connector type '{self.type_name}' cannot write", connector=self.name)

    def field_value(self, raw: Mapping[str, Any], field: str) -> Any:
        """A field's current value in a stored raw record (write-back compares against it).

        MISSING when the payload does not carry the field at all.
        """
        return raw.get(field, MISSING)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions and other resources."""
