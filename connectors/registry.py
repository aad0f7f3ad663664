"""Find connectors through the `pmsync.connectors` entry-point group, once per process.

A plugin that fails to import is reported by `pmsync connectors list` and does not stop the
others from loading.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from pmsync.connectors.base import Connector

ENTRY_POINT_GROUP = "pmsync.connectors"


@dataclass
class Registry:
    """Loaded connector classes by type name, and the plugins that failed to load."""

    types: dict[str, type[Connector]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def get(self, type_name: str) -> type[Connector] | None:
        return self.types.get(type_name)

    def suggest(self, type_name: str) -> str:
        """A did-you-mean sentence for an unknown type."""
        if type_name in self.broken:
            return f"the plugin for '{type_name}' failed to load: {self.broken[type_name]}"
        known = sorted(self.types)
        close = difflib.get_close_matches(type_name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown connector type '{type_name}' (known: {', '.join(known)}){hint}"


@functools.cache
def load_registry() -> Registry:
    """Load every installed connector plugin."""
    registry = Registry()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the rest
            registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            registry.broken[ep.name] = f"{ep.value} is not a pmsync Connector class"
            continue
        registry.types[ep.name] = cls
        registry.origins[ep.name] = ep.value
    return registry
