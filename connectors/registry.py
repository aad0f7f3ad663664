"""Find connectors through the `pmsync.connectors` entry-point group, once per process.

A plugin that fails to import is reported by `pmsync connectors list` and does not stop the
others from loading.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from pmsync.logs import structlog_for_plugins

if TYPE_CHECKING:  # imported where used: `status` reads the type names alone, without pydantic
    from pmsync.connectors.base import Connector, ConnectorSettings

ENTRY_POINT_GROUP = "pmsync.connectors"
# Optional: a type's settings model on its own, so validating a configuration imports no
# connector module (its HTTP client and API library); only used from the same distribution.
SETTINGS_ENTRY_POINT_GROUP = "pmsync.connector_settings"


class ConnectorTypes(Mapping[str, "type[Connector]"]):
    """Connector classes by type name, each plugin imported when first asked for by name.

    A configuration names one or two connector types; importing every installed one (their
    client libraries, crypto for JWT logins) was most of a short command's start-up and a
    third of a sync's memory. Iterating gives the installed names without importing them;
    `items()` and `values()` import all (and drop the ones that failed to load).
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getitem__(self, name: str) -> type[Connector]:
        self._registry.load(name)
        return self._registry.loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._registry.loaded, *self._registry.pending])

    def __len__(self) -> int:
        return len(self._registry.loaded) + len(self._registry.pending)

    def items(self) -> ItemsView[str, type[Connector]]:
        return self._registry.load_all().items()

    def values(self) -> ValuesView[type[Connector]]:
        return self._registry.load_all().values()


@dataclass
class Registry:
    """Installed connector classes by type name, and the plugins that failed to load.

    Plugins in `pending` are imported on first use (`get`, `types[name]`); `broken` imports
    them all, since only an import shows which fail."""

    loaded: dict[str, type[Connector]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    pending: dict[str, EntryPoint] = field(default_factory=dict)
    settings_entry_points: dict[str, EntryPoint] = field(default_factory=dict)

    @property
    def types(self) -> ConnectorTypes:
        return ConnectorTypes(self)

    @property
    def broken(self) -> dict[str, str]:
        self.load_all()
        return self.failed

    def load(self, type_name: str) -> None:
        """Import one pending plugin (a broken one is recorded in `failed`)."""
        ep = self.pending.pop(type_name, None)
        if ep is None:
            return
        from pmsync.connectors.base import Connector

        structlog_for_plugins()
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the rest
            self.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            return
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            self.failed[ep.name] = f"{ep.value} is not a pmsync Connector class"
            return
        self.loaded[ep.name] = cls
        self.origins[ep.name] = ep.value

    def load_all(self) -> dict[str, type[Connector]]:
        for name in list(self.pending):
            self.load(name)
        return self.loaded

    def installed(self, type_name: str) -> bool:
        """Whether a plugin of this type is installed (loaded or not yet); nothing is imported,
        so a plugin that would fail to load counts too."""
        return type_name in self.loaded or type_name in self.pending

    def get(self, type_name: str) -> type[Connector] | None:
        self.load(type_name)
        return self.loaded.get(type_name)

    def settings_model(self, type_name: str) -> type[ConnectorSettings] | None:
        """The settings model of `type_name` (None: no such type, or its plugin is broken).

        Taken from the type's settings entry point while its connector is not imported yet,
        so a command that only reads the configuration leaves the connector module alone."""
        from pmsync.connectors.base import ConnectorSettings

        ep = self.settings_entry_points.get(type_name)
        if ep is not None and type_name in self.pending:
            try:
                model = ep.load()
            except Exception:  # noqa: BLE001 - the connector's own import says what is wrong
                model = None
            if isinstance(model, type) and issubclass(model, ConnectorSettings):
                return model
        cls = self.get(type_name)
        return None if cls is None else cls.settings_model

    def suggest(self, type_name: str) -> str:
        """A did-you-mean sentence for an unknown type."""
        self.load(type_name)
        if type_name in self.failed:
            return f"the plugin for '{type_name}' failed to load: {self.failed[type_name]}"
        known = sorted(self.load_all())
        close = difflib.get_close_matches(type_name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown connector type '{type_name}' (known: {', '.join(known)}){hint}"


@functools.cache
def load_registry() -> Registry:
    """Every installed connector plugin, each imported when first used."""
    registry = Registry()
    found = entry_points()  # one pass over the installed distributions for both groups
    for ep in found.select(group=ENTRY_POINT_GROUP):
        registry.pending[ep.name] = ep  # a later plugin of the same name wins, as before
    for ep in found.select(group=SETTINGS_ENTRY_POINT_GROUP):
        connector = registry.pending.get(ep.name)
        if connector is not None and _same_distribution(connector, ep):
            registry.settings_entry_points[ep.name] = ep
    return registry


def _same_distribution(first: EntryPoint, second: EntryPoint) -> bool:
    """Whether one distribution declared both. Entry points of one `entry_points()` pass share
    their distribution object; only others are compared by name, which parses the metadata
    file (pmsync's holds the README: 10 parses were a few ms of `pmsync status`)."""
    dist = getattr(first, "dist", None)
    if dist is not None and dist is getattr(second, "dist", None):
        return True
    return _distribution(first) == _distribution(second)


def _distribution(ep: EntryPoint) -> str | None:
    """The distribution that declared `ep`: a plugin replacing a type brings its own model."""
    dist = getattr(ep, "dist", None)
    return None if dist is None else str(dist.name)
