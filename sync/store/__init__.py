"""The store: raw payloads, unified fields, hashes, tombstones, cursors and dead letters."""

from pmsync.sync.store.store import RecordRow, Store, StoredRecord, StreamCounts, StreamState

__all__ = ["RecordRow", "Store", "StoredRecord", "StreamCounts", "StreamState"]
