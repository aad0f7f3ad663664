"""Load and validate the TOML configuration, reporting every problem at once.

Each problem names the file and the TOML path (and, for secrets, the variable or file tried).
Connector tables are validated by the settings model of their connector type, so a plugin's
own options get the same treatment as the built-in ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pmsync.app.daemon.settings import DaemonSettings
from pmsync.app.glance import (
    CONFIG_ENV,
    CONNECTOR_NAME,
    find_config_path,
    mapping_files,
    mapping_path,
    nothing_found,
    resolve_secrets,
    resolved_store_url,
)
from pmsync.app.web.settings import WebSettings
from pmsync.connectors.base import ConnectorSettings
from pmsync.connectors.registry import Registry, load_registry
from pmsync.durations import Duration
from pmsync.errors import ConfigError, Problem
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.store.presence import readable_without_sqlalchemy
from pmsync.sync.writeback.settings import CloseLoopSettings, WritebackSettings
from pmsync.tomlfile import read_toml
from pmsync.validation import pydantic_problems


class StoreSettings(BaseModel):
    """Where the store lives: a SQLite file (default) or a PostgreSQL URL."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: sqlite file pmsync.db in $STATE_DIRECTORY or "
        "next to the config file. Relative SQLite paths are relative to the config file.",
    )

    @field_validator("url")
    @classmethod
    def _usable(cls, url: str | None) -> str | None:
        problem = None if url is None else store_url_problem(url)
        if problem:
            raise ValueError(problem)
        return url


STORE_BACKENDS = ("sqlite", "postgresql")
STORE_EXAMPLES = "sqlite:////var/lib/pmsync/pmsync.db or postgresql+psycopg://user@host/db"


def store_url_problem(url: str) -> str | None:
    """Why `url` cannot name a store (dialect, driver), found without connecting; the URL
    itself is never repeated (it may hold a password)."""
    if readable_without_sqlalchemy(url):
        return None  # SQLite, or PostgreSQL with psycopg installed: no need to ask SQLAlchemy
    return _sqlalchemy_url_problem(url)


def _sqlalchemy_url_problem(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"not a database URL; write {STORE_EXAMPLES}"
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in STORE_BACKENDS:
        return f"the store is SQLite or PostgreSQL, not '{backend}'; write {STORE_EXAMPLES}"
    try:
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:
        return f"'{driver}' is no {backend} driver; write {STORE_EXAMPLES}"
    except ImportError:
        return f"the {backend} driver '{driver}' is not installed; write {STORE_EXAMPLES}"
    if getattr(dialect, "is_async", False):
        return f"'{driver}' is an asyncio driver, which pmsync does not use; write {STORE_EXAMPLES}"
    return None


class MappingSettings(BaseModel):
    """Which mapping files to load."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        default_factory=lambda: ["mappings"],
        description="Mapping files or directories (every *.toml inside), relative to the config.",
    )


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class SyncSettings(BaseModel):
    """Engine tuning; the defaults suit most installations."""

    model_config = ConfigDict(extra="forbid")

    max_attempts_without_progress: int = Field(default=5, ge=1)
    max_backoff: Duration = Field(
        default=timedelta(minutes=5), description="Longest wait between retries."
    )
    initial_backoff: Duration = Field(default=timedelta(seconds=1))


class Settings(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    store: StoreSettings = Field(default_factory=StoreSettings)
    mappings: MappingSettings = Field(default_factory=MappingSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    currency: CurrencySettings = Field(default_factory=CurrencySettings)
    writeback: WritebackSettings = Field(default_factory=WritebackSettings)
    close_loop: CloseLoopSettings = Field(default_factory=CloseLoopSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass
class Config:
    """A validated configuration: the settings, typed connector settings and where it came from."""

    path: Path
    settings: Settings
    connectors: dict[str, ConnectorSettings]
    raw_sections: frozenset[str] = frozenset()  # the top-level tables the file wrote

    @property
    def directory(self) -> Path:
        return self.path.parent

    def store_url(self) -> str:
        """The store URL with relative SQLite paths made absolute."""
        return resolved_store_url(self.settings.store.url, self.directory)

    def mapping_paths(self) -> list[Path]:
        """Every mapping file the configuration names, in a stable order (entries that do not
        exist are left out: `mapping_problems` names them)."""
        return mapping_files(self.settings.mappings.paths, self.directory)

    def mapping_problems(self) -> list[Problem]:
        """An entry of `mappings.paths` that does not exist, named with where it was looked for."""
        problems = []
        default = "mappings" not in self.raw_sections
        for entry in self.settings.mappings.paths:
            path = mapping_path(entry, self.directory)
            if not path.exists():
                which = " (the default)" if default else ""
                problems.append(
                    Problem(
                        str(self.path),
                        "mappings.paths",
                        f"'{entry}'{which} does not exist: no file or folder {path} (relative "
                        "paths start at the configuration's folder; copy the shipped mappings/ "
                        "there, or list where yours are)",
                    )
                )
        return problems


def load_config(path: str | Path | None = None, registry: Registry | None = None) -> Config:
    """Read, resolve and validate the configuration; raise ConfigError with every problem."""
    config, problems = load_config_leniently(path, registry)
    ConfigError.collect(problems)
    return config


def load_config_leniently(
    path: str | Path | None = None, registry: Registry | None = None
) -> tuple[Config, list[Problem]]:
    """The configuration built from its valid sections, and every problem of the others.

    Callers that check more (mapping files) report all problems together; a file that is not
    TOML at all still raises ConfigError.
    """
    config_path = find_config_path(path).resolve()
    if path is None and not os.environ.get(CONFIG_ENV) and not config_path.exists():
        raise ConfigError(nothing_found())
    raw = read_toml(config_path)
    file = str(config_path)
    problems: list[Problem] = []
    web_references: set[tuple[str, ...]] = set()
    if isinstance(raw.get("web"), Mapping):  # the web view's token or password
        web = resolve_secrets(
            raw["web"], (), web_references, file, "web", config_path.parent, problems
        )
        raw = {**raw, "web": web}
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, file=file, model=Settings))
        settings = Settings.model_validate(_valid_sections(raw))
    problems.extend(_literal_secrets(settings.web, web_references, file, "web"))
    problems.extend(_broken_secrets(settings.web, file, "web"))
    registry = registry or load_registry()
    connectors: dict[str, ConnectorSettings] = {}
    for name in settings.connectors:
        if not CONNECTOR_NAME.fullmatch(name):
            problems.append(
                Problem(
                    file,
                    f"connectors.{name}",
                    "a connector name uses letters, digits, '-' and '_' only "
                    "(it prefixes stream names: connector.stream)",
                )
            )
    for name, table in settings.connectors.items():
        typed = _load_connector(name, table, registry, file, config_path.parent, problems)
        if typed is not None:
            connectors[name] = typed
    config = Config(config_path, settings, connectors, frozenset(raw))
    return config, problems


def _valid_sections(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level sections that validate on their own (connectors are checked one by one)."""
    valid: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "connectors":
            if isinstance(value, dict):  # a connector that is not a table is reported already
                valid[key] = {k: v for k, v in value.items() if isinstance(v, dict)}
            continue
        try:
            Settings.model_validate({key: value})
        except ValidationError:
            continue
        valid[key] = value
    return valid


def _load_connector(
    name: str,
    table: Mapping[str, Any],
    registry: Registry,
    file: str,
    base_dir: Path,
    problems: list[Problem],
) -> ConnectorSettings | None:
    prefix = f"connectors.{name}"
    type_name = table.get("type")
    if not isinstance(type_name, str):
        problems.append(Problem(file, f"{prefix}.type", "required: the connector type"))
        return None
    model = registry.settings_model(type_name)
    if model is None:
        problems.append(Problem(file, f"{prefix}.type", registry.suggest(type_name)))
        return None
    references: set[tuple[str, ...]] = set()
    resolved = resolve_secrets(table, (), references, file, prefix, base_dir, problems)
    try:
        settings = model.model_validate(resolved)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, file=file, prefix=prefix, model=model))
        return None
    problems.extend(_literal_secrets(settings, references, file, prefix))
    problems.extend(_broken_secrets(settings, file, prefix))
    return settings


def _literal_secrets(
    settings: BaseModel, references: set[tuple[str, ...]], file: str, prefix: str
) -> list[Problem]:
    """A problem for each secret written in the file instead of referred to."""
    return [
        Problem(
            file,
            ".".join((prefix, *secret_path)),
            "secrets must not be written in the file; write "
            '{ env = "VAR" }, { file = "/path" } or { credential = "name" }',
        )
        for secret_path in _secret_paths(settings, ())
        if secret_path not in references
    ]


def _broken_secrets(settings: BaseModel, file: str, prefix: str) -> list[Problem]:
    """A secret with a line break (CR or LF) cannot go into a header: every request would fail
    before it is sent, and be retried as if the network were at fault. Only a field marked
    multiline (a PEM key) may have lines. The value is never shown."""
    return [
        Problem(
            file,
            ".".join((prefix, *path)),
            "the secret contains a line break (CR or LF); a token, key or password is one "
            "line: check the variable or file it comes from",
        )
        for path, value, multiline in _secret_values(settings, ())
        if not multiline and ("\r" in value or "\n" in value)
    ]


def _secret_values(
    model: BaseModel, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str, bool]]:
    """(path, value, may have lines) of every SecretStr set in a validated model."""
    found: list[tuple[tuple[str, ...], str, bool]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            extra = info.json_schema_extra
            multiline = isinstance(extra, dict) and extra.get("multiline") is True
            found.append(((*path, name), value.get_secret_value(), multiline))
        elif isinstance(value, BaseModel):
            found.extend(_secret_values(value, (*path, name)))
    return found


def _secret_paths(model: BaseModel, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Paths of every SecretStr value set in a validated model."""
    found: list[tuple[str, ...]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            found.append((*path, name))
        elif isinstance(value, BaseModel):
            found.extend(_secret_paths(value, (*path, name)))
    return found
