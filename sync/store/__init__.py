"""The store: raw payloads, unified fields, hashes, tombstones, cursors and dead letters.

Its modules are imported by name (`pmsync.sync.store.store`): this package imports none of
them, so a short command that reads the store through its driver (`rows.py`) never loads
SQLAlchemy.
"""
