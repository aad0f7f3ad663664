"""Connectors: each knows one API and nothing of the store.

A connector declares its streams; a stream reads pages from a typed cursor and yields records
plus the cursor that covers them. Third parties ship connectors as packages that register an
entry point in the `pmsync.connectors` group.
"""

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
