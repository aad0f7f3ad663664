"""Keeps every resolved secret out of log lines and error messages.

Secrets are registered when the configuration resolves them; the log pipeline and the CLI's
error printer pass every string through `redact` before it leaves the process.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import MutableMapping
from typing import Any

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words


def register_secret(value: str) -> None:
    """Remember a secret value (and its common encodings) so that it is never printed."""
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        _secrets.add(value)
        _secrets.add(base64.b64encode(value.encode()).decode())


def redact(text: str) -> str:
    """Replace every registered secret in `text` with a mask."""
    if not _secrets:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return redact(repr(value))
    return value


def redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: mask registered secrets in every field of the event."""
    if not _secrets:
        return event
    return {key: _redact_value(value) for key, value in event.items()}
