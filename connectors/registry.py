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

from pmsync.connectors.base import Connector

ENTRY_POINT_GROUP = "pmsync.connectors"


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

    def get(self, type_name: str) -> type[Connector] | None:
        self.load(type_name)
        return self.loaded.get(type_name)

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
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        registry.pending[ep.name] = ep  # a later plugin of the same name wins, as before
    return registry
