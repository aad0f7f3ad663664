"""Write-back marks (`writeback_dirty`): a write-back clears only the marks it planned, even
when another derivation replaced them meanwhile by an "every target" mark."""

from __future__ import annotations

from pmsync.sync.links.changes import Scope, clear_dirty, dirty_targets, mark_dirty
from pmsync.sync.store.store import Store


def test_a_mark_made_while_a_write_back_planned_survives_its_clearing(store_url: str) -> None:
    store = Store(store_url)
    try:
        with store.transaction() as connection:
            mark_dirty(connection, ["jira", "salesforce"], None)  # a first full derivation
        with store.engine.connect() as connection:
            planned, scope = dirty_targets(connection, "jira")  # Jira's write-back plans...
        assert planned
        assert scope is None
        with store.transaction() as connection:  # ...while another derivation marks again
            mark_dirty(connection, ["jira", "salesforce"], None)
        with store.transaction() as connection:
            clear_dirty(connection, planned)  # Jira applied what it planned
        with store.engine.connect() as connection:
            left, scope = dirty_targets(connection, "jira")
        assert left, "the later derivation's mark was cleared with the plan made before it"
        assert scope is None
        assert not set(left) & set(planned)
    finally:
        store.close()


def test_scoped_marks_are_planned_and_cleared_by_seq(store_url: str) -> None:
    store = Store(store_url)
    try:
        with store.transaction() as connection:
            mark_dirty(connection, ["jira"], Scope(issues={"jira:1", "jira:2"}))
        with store.engine.connect() as connection:
            planned, scope = dirty_targets(connection, "jira")
        assert scope is not None
        assert scope.issues == {"jira:1", "jira:2"}
        with store.transaction() as connection:
            mark_dirty(connection, ["jira"], Scope(issues={"jira:3"}))
            clear_dirty(connection, planned)
        with store.engine.connect() as connection:
            _left, scope = dirty_targets(connection, "jira")
        assert scope is not None
        assert scope.issues == {"jira:3"}
    finally:
        store.close()
