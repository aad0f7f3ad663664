"""Jira Cloud and Data Center connector.

The connector module (its HTTP client and API library) loads when first named: the settings
module alone is what validating a configuration needs (`pmsync status` imports no connector).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pmsync.connectors.jira.connector import JiraConnector
    from pmsync.connectors.jira.search import IssueCursor
    from pmsync.connectors.jira.writes import RemoteLink

__all__ = ["IssueCursor", "JiraConnector", "RemoteLink"]

_LAZY = {
    "IssueCursor": "pmsync.connectors.jira.search",
    "JiraConnector": "pmsync.connectors.jira.connector",
    "RemoteLink": "pmsync.connectors.jira.writes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
