"""Structured logging: structlog everywhere, JSON when not on a TTY, secrets masked.

Library loggers (requests, zenpy, urllib3) are routed through the same processor chain, so
redaction covers them too. Context (run id, connector, stream) is bound with contextvars.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

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
    """Set up structlog and the stdlib bridge once per process.

    structlog is imported here, not at the top: `pmsync --help` never logs, and structlog
    (with rich's tracebacks) was most of its start-up."""
    import structlog

    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty; at debug level they speak too (redaction still applies).
    library_level = (
        logging.DEBUG if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    )
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; context bound with `structlog.contextvars` shows on every line."""
    import structlog

    return structlog.get_logger(name)
