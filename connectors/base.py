"""The connector interface: the only contract between an API and the engine."""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pmsync.durations import Duration
from pmsync.errors import FatalError

Record = dict[str, Any]


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

    @field_validator("base_url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        return value.rstrip("/") if value else value


@dataclass(frozen=True)
class StreamSpec:
    """What a stream is: its name, its key field, its cursor type, how deletes are found."""

    name: str
    key: str
    cursor_model: type[BaseModel]
    description: str = ""
    object_name: str | None = None
    known_fields: frozenset[str] = frozenset()
    sweep: Literal["none", "census", "deletions"] = "none"
    entity_hint: str | None = None


@dataclass(frozen=True)
class Page:
    """Records read from one API page, and the cursor that covers them.

    `deleted` holds records (at least their key field) the source reports as deleted.
    Committing `cursor` means every record before it is stored.

    `begins_census` marks the first page of a read that starts at the beginning and returns
    every live record of the stream (an endpoint read in full each cycle): when that read
    completes, the engine tombstones the stored records it did not return. A read that fails or
    stops half-way tombstones nothing; its resumption completes the same census.
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
    """What happened to one FieldWrite; a failure names the record and the field."""

    key: str
    ok: bool
    error: str | None = None
    retriable: bool = False


class Connector(ABC):
    """Base class of every connector; subclasses set the class variables and the methods."""

    type_name: ClassVar[str]
    description: ClassVar[str] = ""
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    open_streams: ClassVar[bool] = False  # True: any stream name is valid (e.g. sObjects)

    def __init__(self, name: str, settings: ConnectorSettings) -> None:
        self.name = name
        self.settings = settings

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
