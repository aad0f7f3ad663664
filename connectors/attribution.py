"""Which connector an HTTP adapter belongs to, so a request is counted under its connector.

A connector's requests are not always sent by its own worker thread: linking asks Jira about
ticket keys from whichever worker derives, a write-back reads the fields it is about to write.
The daemon's request metrics therefore look the adapter up here first and fall back to the
sending thread's connector only for adapters no connector claimed.
"""

from __future__ import annotations

import threading
import weakref

from requests.adapters import BaseAdapter

_owners: weakref.WeakKeyDictionary[BaseAdapter, str] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def claim(adapter: BaseAdapter, connector: str) -> None:
    """Record that `adapter` sends `connector`'s requests (call it after `make_session`)."""
    with _lock:
        _owners[adapter] = connector


def owner(adapter: BaseAdapter) -> str | None:
    """The connector that claimed `adapter`, if one did."""
    with _lock:
        return _owners.get(adapter)
