"""Which streams the mapping files map, for each connector instance.

`for_connector` is the one rule that picks an instance's streams (its own mappings win over
its type's); the loader's `MappingSet` applies it to compiled streams. `mapped_streams` reads
the stream names from the files' TOML alone, without validating or compiling anything: what
`pmsync status` needs, at a small part of the loader's start-up (its pydantic models and
compilers). It answers only for files whose shape leaves no doubt, and None otherwise: the
loader then names the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from pmsync.errors import ConfigError
from pmsync.tomlfile import read_toml

T = TypeVar("T")


def for_connector(
    streams: Mapping[tuple[str, str], T], instance: str, type_name: str
) -> dict[str, T]:
    """Stream mappings for one connector instance: instance-specific ones win over type ones.

    `streams` is keyed by (connector reference, stream), in the files' order."""
    chosen: dict[str, T] = {}
    for (ref, stream), value in streams.items():
        if ref == type_name and stream not in chosen:
            chosen[stream] = value
    for (ref, stream), value in streams.items():
        if ref == instance:
            chosen[stream] = value
    return chosen


def mapped_streams(paths: Sequence[Path]) -> dict[tuple[str, str], Path] | None:
    """(connector reference, stream) of every enabled stream mapping, with its file, in the
    order `load_mappings` keeps them; None when a file does not parse, or its connector or
    streams are not shaped as the loader wants, or a stream is mapped twice."""
    found: dict[tuple[str, str], Path] = {}
    for path in paths:
        try:
            raw = read_toml(path)
        except ConfigError:
            return None
        connector, streams = raw.get("connector"), raw.get("streams", {})
        if not isinstance(streams, dict) or (streams and not isinstance(connector, str)):
            return None
        if connector is not None and not isinstance(connector, str):
            return None
        for name, table in streams.items():
            enabled = table.get("enabled", True) if isinstance(table, dict) else None
            if not isinstance(enabled, bool):
                return None
            slot = (str(connector), name)
            if not enabled:
                continue
            if slot in found:
                return None
            found[slot] = path
    return found
