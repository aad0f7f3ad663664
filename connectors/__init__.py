"""Connectors: each knows one API and nothing of the store.

A connector declares its streams; a stream reads pages from a typed cursor and yields records
plus the cursor that covers them. Third parties ship connectors as packages that register an
entry point in the `pmsync.connectors` group.

The names below come from `pmsync.connectors.base`, imported when first asked for: importing
the registry (`pmsync.connectors.registry`) must not import pydantic, which `pmsync status`
does without.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pmsync.connectors.base import (
        Connector,
        ConnectorSettings,
        FieldInfo,
        FieldWrite,
        Page,
        StreamSpec,
        SweepPage,
        WriteOutcome,
    )

__all__ = [
    "Connector",
    "ConnectorSettings",
    "FieldInfo",
    "FieldWrite",
    "Page",
    "StreamSpec",
    "SweepPage",
    "WriteOutcome",
]


def __getattr__(name: str) -> Any:
    """`from pmsync.connectors import Connector`, as plugins write it, imports the base."""
    if name in __all__:
        return getattr(importlib.import_module("pmsync.connectors.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
