"""What `pmsync status` needs of the configuration, read without pydantic when nothing is in doubt.

`status` reads four things of the configuration: where the store is, the mapping files, the
log settings, and each connector's type, `enabled` and `streams`. Validating the whole file
and the mapping files with their pydantic models cost more than half of its start-up (pydantic
itself, then building every model). `glance` reads those few values from the TOML, checked as
strictly as the models check them, and resolves every secret reference (as the full load does,
so a missing variable still stops `status`). Whenever anything is in doubt (an unknown section
or key, a value of another type, a missing file, a reference that does not resolve, a stream
without a mapping) it answers None, and the caller loads the configuration in full: the full
load names each problem with its file and field, as before. What `status` does not read (the
other sections' values, a connector's other options, the mapping files' contents) is not
checked here: `pmsync check-config` and every other command check it.

The path and URL rules that both loads share live here too, so that both read them alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmsync.errors import ConfigError, NoStore, Problem
from pmsync.secretref import SecretReferenceError, is_reference, resolve_reference
from pmsync.sync.mapping.slots import for_connector, mapped_streams
from pmsync.sync.store.presence import (
    StoreAbsent,
    StoreUnreachable,
    check_store_present,
    current_store_connection,
    readable_without_sqlalchemy,
    store_place,
)
from pmsync.sync.store.rows import DriverReader, StateReader
from pmsync.tomlfile import read_toml

DEFAULT_CONFIG_PATHS = (Path("pmsync.toml"), Path("/etc/pmsync/pmsync.toml"))
CONFIG_ENV = "PMSYNC_CONFIG"
CONNECTOR_NAME = re.compile(r"[A-Za-z0-9_-]+")
# The top-level tables of the configuration (config.Settings' fields: a test holds them equal).
SECTIONS = frozenset(
    {
        "store",
        "mappings",
        "log",
        "sync",
        "currency",
        "writeback",
        "close_loop",
        "daemon",
        "web",
        "connectors",
    }
)
# config.LogSettings' choices, and its defaults first (a test holds them equal).
LOG_LEVELS = ("info", "debug", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
DEFAULT_MAPPINGS = ("mappings",)
# The connector types pmsync's own distribution declares (its `pmsync.connectors` entry points:
# a test holds them equal). Installed with pmsync, so a configuration naming one needs no look
# at the installed distributions (importlib.metadata is a fifth of a glance); any other type
# is looked for among the plugins.
BUILTIN_TYPES = frozenset({"zendesk", "pendo", "rest", "jira", "salesforce"})


# ---- shared with the full load (app.config) ------------------------------------------------


def find_config_path(explicit: str | Path | None = None) -> Path:
    """The config file to use: --config, then $PMSYNC_CONFIG, then ./pmsync.toml, /etc/pmsync."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.exists():
            return candidate
    return DEFAULT_CONFIG_PATHS[0]


def nothing_found() -> Problem:
    """No configuration passed, none in $PMSYNC_CONFIG, none where pmsync looks."""
    first, *others = DEFAULT_CONFIG_PATHS
    return Problem(
        str(first.resolve()),
        "",
        f"no such file; pmsync also looked for {', '.join(map(str, others))}. Pass -c FILE "
        f"(before or after the command) or set ${CONFIG_ENV}; config.example.toml is a start",
    )


def resolved_store_url(url: str | None, directory: Path) -> str:
    """The store URL with relative SQLite paths made absolute (from the config's folder); no
    URL: pmsync.db in $STATE_DIRECTORY or else the config's folder."""
    if url is None:
        state = os.environ.get("STATE_DIRECTORY")
        base = Path(state.split(":")[0]) if state else directory
        return f"sqlite:///{(base / 'pmsync.db').resolve()}"
    match = re.match(r"^(sqlite(?:\+\w+)?):///(?!/)(.+)$", url)
    if match and match.group(2) != ":memory:":
        return f"{match.group(1)}:///{(directory / match.group(2)).resolve()}"
    return url


def mapping_path(entry: str, directory: Path) -> Path:
    """An entry of `mappings.paths`: relative ones start at the configuration's folder."""
    path = Path(entry)
    return path if path.is_absolute() else directory / path


def mapping_files(entries: Sequence[str], directory: Path) -> list[Path]:
    """Every mapping file the entries name, in a stable order (entries that do not exist are
    left out: the full load names them)."""
    found: list[Path] = []
    for path in (mapping_path(entry, directory) for entry in entries):
        if path.is_dir():
            found.extend(sorted(path.glob("*.toml")))
        elif path.exists():
            found.append(path)
    return found


def resolve_secrets(
    value: Any,
    path: tuple[str, ...],
    references: set[tuple[str, ...]],
    file: str,
    prefix: str,
    base_dir: Path,
    problems: list[Problem],
) -> Any:
    """Replace every secret reference with its value, recording where references were."""
    if is_reference(value):
        references.add(path)
        try:
            return resolve_reference(value, base_dir)
        except SecretReferenceError as exc:
            problems.append(Problem(file, ".".join((prefix, *path)), str(exc)))
            return "unresolved"
    if isinstance(value, Mapping):
        return {
            k: resolve_secrets(v, (*path, k), references, file, prefix, base_dir, problems)
            for k, v in value.items()
        }
    return value


def require_store(url: str, config_path: Path, *, url_written: bool) -> None:
    """Return when a store is at `url`; NoStore says where none was found and which setting
    pointed there, ConfigError (store.url) why it could not be asked."""
    try:
        check_store_present(url)
    except StoreUnreachable as exc:
        raise ConfigError(
            Problem(str(config_path), "store.url", f"cannot open the store: {exc}")
        ) from None
    except StoreAbsent as exc:
        target = store_place(url)
        if url_written:
            where = f"{target} (store.url in {config_path})"
        else:
            where = f"{target} (the default, as store.url is not set in {config_path})"
        raise NoStore(
            f"no store at {where}: {exc}. `pmsync sync` creates the store; if "
            "the store is elsewhere, fix store.url"
        ) from None


@contextmanager
def current_state_reader(url: str) -> Iterator[StateReader | None]:
    """The state of the store at `url` (there: `require_store`) read through its driver alone,
    when it is current; None when a `Store` must open it (to upgrade it, or for a URL only
    SQLAlchemy reads)."""
    connection = current_store_connection(url)
    if connection is None:
        yield None
        return
    try:
        yield DriverReader(connection)
    finally:
        connection.close()


# ---- the glance ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Glance:
    """What `status` reads of a configuration whose parts it reads are beyond doubt."""

    path: Path
    store_url: str  # resolved: relative SQLite paths made absolute
    store_url_written: bool  # False: the default store, as store.url is not set
    slots: list[tuple[str, str]]  # (connector, stream), as Runtime.slots gives them
    log_level: str
    log_format: str


class _Doubt(Exception):
    """Something the full load must look at (and name, if it is a problem)."""


def glance(explicit: str | Path | None = None) -> Glance | None:
    """The configuration as `status` reads it, or None: load it in full (`Runtime.load`)."""
    try:
        return _glance(explicit)
    except _Doubt:
        return None


def _glance(explicit: str | Path | None) -> Glance:
    path = find_config_path(explicit).resolve()
    if not path.exists():
        raise _Doubt
    try:
        raw = read_toml(path)
    except ConfigError:
        raise _Doubt from None
    if not set(raw) <= SECTIONS or not all(isinstance(v, dict) for v in raw.values()):
        raise _Doubt
    store = _table(raw, "store", {"url"})
    url = store.get("url")
    if url is not None and not (isinstance(url, str) and readable_without_sqlalchemy(url)):
        raise _Doubt
    entries = _table(raw, "mappings", {"paths"}).get("paths", list(DEFAULT_MAPPINGS))
    if not (isinstance(entries, list) and all(isinstance(e, str) for e in entries)):
        raise _Doubt
    if not all(mapping_path(entry, path.parent).exists() for entry in entries):
        raise _Doubt
    log = _table(raw, "log", {"level", "format"})
    level, fmt = log.get("level", LOG_LEVELS[0]), log.get("format", LOG_FORMATS[0])
    if level not in LOG_LEVELS or fmt not in LOG_FORMATS:
        raise _Doubt
    _resolve_all(raw.get("web", {}), path, "web")
    connectors = _connectors(raw.get("connectors", {}), path)
    mapped = mapped_streams(mapping_files(entries, path.parent))
    if mapped is None:
        raise _Doubt
    return Glance(
        path=path,
        store_url=resolved_store_url(url, path.parent),
        store_url_written=url is not None,
        slots=_slots(connectors, mapped),
        log_level=level,
        log_format=fmt,
    )


def _table(raw: Mapping[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    """A section whose keys are all known (a table: checked already)."""
    table: dict[str, Any] = raw.get(name, {})
    if not set(table) <= keys:
        raise _Doubt
    return table


def _resolve_all(table: Mapping[str, Any], path: Path, prefix: str) -> None:
    """Every secret reference in the table resolves (the value is registered for redaction,
    as the full load does); one that does not is for the full load to name."""
    problems: list[Problem] = []
    resolve_secrets(table, (), set(), str(path), prefix, path.parent, problems)
    if problems:
        raise _Doubt


@dataclass(frozen=True)
class _Connector:
    name: str
    type: str
    enabled: bool
    streams: list[str] | None


def _connectors(tables: Mapping[str, Any], path: Path) -> list[_Connector]:
    """Each connector's type, `enabled` and `streams`, of a type that is installed."""
    found = []
    for name, table in tables.items():
        if not (CONNECTOR_NAME.fullmatch(name) and isinstance(table, dict)):
            raise _Doubt
        type_name, enabled = table.get("type"), table.get("enabled", True)
        streams = table.get("streams")
        if not (isinstance(type_name, str) and _installed(type_name)):
            raise _Doubt
        if not isinstance(enabled, bool):
            raise _Doubt
        if streams is not None and not (
            isinstance(streams, list) and all(isinstance(s, str) for s in streams)
        ):
            raise _Doubt
        _resolve_all(table, path, f"connectors.{name}")
        found.append(_Connector(name, type_name, enabled, streams))
    return found


def _installed(type_name: str) -> bool:
    """Whether a connector type is there: one of pmsync's own, or an installed plugin's."""
    if type_name in BUILTIN_TYPES:
        return True
    from pmsync.connectors.registry import load_registry

    return load_registry().installed(type_name)


def _slots(
    connectors: Sequence[_Connector], mapped: Mapping[tuple[str, str], Path]
) -> list[tuple[str, str]]:
    """As `Runtime.slots`: per enabled connector, its configured (or else every mapped) stream
    that has a mapping. A configured stream without one is a problem the full load names."""
    slots: list[tuple[str, str]] = []
    for connector in connectors:
        streams = for_connector(mapped, connector.name, connector.type)
        wanted = connector.streams if connector.streams is not None else list(streams)
        if any(stream not in streams for stream in wanted):
            raise _Doubt
        if connector.enabled:  # a stream named twice is one slot, as in Runtime.slots
            slots.extend((connector.name, stream) for stream in dict.fromkeys(wanted))
    return slots
