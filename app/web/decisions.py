"""Write a review decision into the overrides file: the web view's only write.

The file is product ops' own (comments, order, blank lines): tomlkit reads and writes it back
unchanged except for the one entry decided. Writers take an exclusive lock on a sidecar file,
write a temporary file beside the real one, check that it still loads as an overrides file,
and rename it over the original, so a crash or a second decision at the same moment never
leaves a half-written or lost decision. The decision takes effect at the next cycle, which
reads the file again.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table as TomlTable

from pmsync.errors import ConfigError, PmsyncError
from pmsync.sync.links.linker import NO_ACCOUNT, Overrides

NEW_FILE_HEADER = """\
# Manual link decisions. Keys are ticket ids ("123") or "connector:123".
# `pmsync links review` and the web view's review queue list the tickets that need one.
"""


class DecisionError(PmsyncError):
    """A decision that cannot be written (named in the message for the page)."""


@dataclass(frozen=True)
class Decision:
    """One decision: the ticket, and the account (or "none") or issue keys it is linked to."""

    ticket_ref: str
    ticket_key: str
    kind: str  # ticket_account | ticket_issue
    value: str | list[str]
    comment: str = ""


def write_decision(path: Path, decision: Decision) -> None:
    """Add or replace the ticket's entry in its section, keeping everything else as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        text = path.read_text(encoding="utf-8") if path.exists() else NEW_FILE_HEADER
        try:
            document = tomlkit.parse(text)
        except tomlkit.exceptions.TOMLKitError as exc:
            raise DecisionError(f"{path} is not valid TOML ({exc}); fix it by hand first") from None
        _apply(document, decision)
        _replace(path, tomlkit.dumps(document))


def _apply(document: tomlkit.TOMLDocument, decision: Decision) -> None:
    section = document.get(decision.kind)
    if section is None:
        section = tomlkit.table()
        document.add(decision.kind, section)
    if not isinstance(section, TomlTable):
        raise DecisionError(f"[{decision.kind}] in the overrides file is not a table")
    existing = next(
        (k for k in (decision.ticket_ref, decision.ticket_key) if k in section), decision.ticket_ref
    )
    value: Any = decision.value
    if decision.kind == "ticket_issue":
        current = section.get(existing)
        keys = list(current) if isinstance(current, list) else [str(current)] if current else []
        value = keys + [k for k in decision.value if k not in keys]
    item = tomlkit.item(value)
    if decision.comment:
        item.comment(decision.comment)
    section[existing] = item


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, after checking it loads as an overrides file."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        try:
            Overrides.load(Path(temporary))
        except ConfigError as exc:
            problems = "; ".join(str(p.message) for p in exc.problems)
            raise DecisionError(
                f"the decision would break the overrides file: {problems}"
            ) from None
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def decision_comment(label: str, who: str) -> str:
    """The comment written beside a decision: what it names, who decided, and when."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"{label} - decided in the web view by {who}, {when}" if label else ""
    return " ".join(text.replace("#", "").split())


def is_none(value: str) -> bool:
    return value.strip().lower() == NO_ACCOUNT
