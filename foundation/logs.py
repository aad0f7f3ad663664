"""Structured logging: structlog everywhere, JSON when not on a TTY, secrets masked.

Library loggers (requests, zenpy, urllib3) are routed through the same processor chain, so
redaction covers them too. Context (run id, connector, stream) is bound with contextvars.

structlog itself (with asyncio and rich's tracebacks, a tenth of a short command's CPU) is
imported when something first logs: `pmsync status` usually logs nothing. Loggers come from
`get_logger` (ruff bans `structlog.get_logger` elsewhere), which configures structlog as the
last `configure_logging` said before the first line is written.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, Literal, cast

from pmsync.redact import redact_processor

LogFormat = Literal["auto", "json", "console"]

_NOISY_LIBRARIES = (
    "urllib3",
    "requests",
    "zenpy",
    "simple_salesforce",
    "jira",
    "werkzeug",
    "alembic",
)


def configure_logging(level: str = "info", fmt: LogFormat = "auto", stream: Any = None) -> None:
    """Set up structlog and the stdlib bridge; called again, the last call wins.

    The stdlib side is set at once; structlog's configuration is applied now when structlog
    is loaded, else when a logger or the stdlib handler first writes (`_structlog`)."""
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    colors = out.isatty()
    with _setup.lock:
        _setup.pending = True
        if "structlog" in sys.modules:
            _apply_pending()
    handler = logging.StreamHandler(out)
    handler.setFormatter(_DeferredFormatter(as_json, colors))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty; at debug level they speak too (redaction still applies).
    library_level = (
        logging.DEBUG if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    )
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)


def logging_settings() -> tuple[str, LogFormat]:
    """The level and format the last `configure_logging` set, for a child process that must
    log as this one does (on the same stderr): ("WARNING", "auto") if it never ran."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, _DeferredFormatter):
            fmt: LogFormat = "json" if handler.formatter.as_json else "console"
            return logging.getLevelName(root.level), fmt
    return "WARNING", "auto"


class _Setup:
    """Whether configure_logging ran since structlog was last configured by it."""

    def __init__(self) -> None:
        self.pending = False
        self.lock = threading.Lock()


_setup = _Setup()


def _import_structlog() -> ModuleType:
    """structlog, imported without rich where that is safe. structlog.dev and
    structlog.tracebacks import rich (with rich.traceback, rich.pretty, pygments and attrs:
    about 4 MiB of a sync's peak memory) for exception formatters pmsync never reaches:
    `format_exc_info` turns a traceback into text before a renderer sees it. rich is hidden
    only while structlog loads, and only when no other thread runs (one importing rich then
    would fail); the CLI's own use of rich is unaffected."""
    loaded = sys.modules.get("structlog")
    if loaded is not None:
        return loaded
    if threading.active_count() > 1:
        import structlog
    else:
        previous = sys.modules.get("rich")
        sys.modules["rich"] = None  # type: ignore[assignment] # `import rich` raises ImportError
        try:
            import structlog
        finally:
            if previous is None:
                del sys.modules["rich"]
            else:
                sys.modules["rich"] = previous
    return structlog


def bound_contextvars(**values: Any) -> AbstractContextManager[None]:
    """structlog's `bound_contextvars` (context shown on every log line inside the block)."""
    return cast(
        "AbstractContextManager[None]", _structlog().contextvars.bound_contextvars(**values)
    )


def _structlog() -> ModuleType:
    """structlog, configured as the last configure_logging said (unless something else, such
    as structlog.testing.capture_logs, configured it since it was loaded)."""
    structlog = _import_structlog()

    if _setup.pending:
        with _setup.lock:
            if _setup.pending and not structlog.is_configured():
                _apply_pending()
    return structlog


def structlog_for_plugins() -> None:
    """Apply the pending configuration now. A plugin may log with `structlog.get_logger`
    directly rather than through `get_logger`: its lines must get pmsync's processors
    (redaction) and stream, not structlog's defaults on stdout. Called before a connector
    module is imported."""
    _structlog()


def _apply_pending() -> None:
    """Configure structlog (the caller holds `_setup.lock`); the output format is the stdlib
    handler's formatter's business."""
    import structlog

    _setup.pending = False
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _shared_processors() -> list[Any]:
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]


class _DeferredFormatter(logging.Formatter):
    """structlog's ProcessorFormatter, made when the first record is written (a record from
    a client library, before any pmsync logger wrote, loads structlog here)."""

    def __init__(self, as_json: bool, colors: bool) -> None:
        super().__init__()
        self.as_json = as_json
        self._colors = colors
        self._real: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._real is None:
            structlog = _structlog()
            renderer: Any = (
                structlog.processors.JSONRenderer()
                if self.as_json
                else structlog.dev.ConsoleRenderer(colors=self._colors)
            )
            self._real = structlog.stdlib.ProcessorFormatter(
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
                foreign_pre_chain=_shared_processors(),
            )
        return self._real.format(record)


class _Logger:
    """A structlog logger that loads (and configures) structlog when first used."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        logger = self._logger
        if logger is None:
            logger = self._logger = _structlog().get_logger(self._name)
        return getattr(logger, attribute)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; context bound with `structlog.contextvars` shows on every line.

    Safe at module level: structlog is loaded and configured when it first logs."""
    return _Logger(name)
