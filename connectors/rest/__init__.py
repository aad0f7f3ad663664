"""The declarative `rest` connector: any JSON API, described in configuration.

The connector module (its HTTP client and API library) loads when first named: the settings
module alone is what validating a configuration needs (`pmsync status` imports no connector).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pmsync.connectors.rest.connector import RestConnector

__all__ = ["RestConnector"]

_LAZY = {
    "RestConnector": "pmsync.connectors.rest.connector",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
