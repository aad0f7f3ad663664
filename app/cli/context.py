"""What every command shares: the global options, the runtime, and errors turned into messages.

The CLI stays at the boundary: domain errors become one-screen messages here, never tracebacks.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.markup import escape

from pmsync.errors import ConfigError, PmsyncError, UsageError
from pmsync.logs import LogFormat, configure_logging
from pmsync.redact import redact

from .output import err

if TYPE_CHECKING:
    from pmsync.app.glance import Glance
    from pmsync.app.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])
EXIT_CONFIG = 78  # EX_CONFIG: the unit's RestartPreventExitStatus keeps systemd from looping


class Context:
    """Options every command shares."""

    def __init__(self, config: str | None, log_level: str | None, log_format: str | None) -> None:
        self.config_path = config
        self.log_level = log_level
        self.log_format = log_format

    def runtime(self, *, create_store: bool = False, full_check: bool = True) -> Runtime:
        """The configuration, mappings and connectors, loaded and checked against each other.

        Only commands that write pass `create_store`: the others say "no store at ...". Those
        keep running, so they create or upgrade the store in a child process (no Alembic).
        Commands that use no connector and no link (`status`) pass `full_check=False`."""
        from pmsync.app.runtime import Runtime

        runtime = Runtime.load(
            self.config_path,
            create_store=create_store,
            full_check=full_check,
            upgrade_in_child=create_store,  # the commands that write keep running
        )
        log = runtime.config.settings.log
        fmt = cast(LogFormat, self.log_format or log.format)
        configure_logging(self.log_level or log.level, fmt)
        return runtime

    def glance(self) -> Glance | None:
        """What `status` reads of the configuration, without pydantic (`app.glance`); None
        when the configuration must be loaded in full (`runtime`), which names any problem."""
        from pmsync.app.glance import glance

        seen = glance(self.config_path)
        if seen is not None:
            fmt = cast(LogFormat, self.log_format or seen.log_format)
            configure_logging(self.log_level or seen.log_level, fmt)
        return seen


pass_context = click.make_pass_decorator(Context)


class WholeHelpGroup(click.Group):
    """A command group whose help lists each command with its first sentence, never cut
    short with '...' (click's default cuts at 45 characters)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, first_sentence(command.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def first_sentence(text: str) -> str:
    """The first sentence of a docstring, whole."""
    paragraph = " ".join(text.strip().split("\n\n", 1)[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def print_config_problems(exc: ConfigError) -> None:
    err.print(f"[bold red]configuration problems ({len(exc.problems)}):[/]", markup=True)
    for problem in exc.problems:
        # One line per problem, whatever a driver or parser put in its reason.
        text = " ".join(line.strip() for line in str(problem).splitlines())
        err.print(f"  {redact(text)}", markup=False)


def print_error(exc: PmsyncError) -> None:
    err.print(f"[bold red]error:[/] {escape(redact(str(exc)))}", markup=True)


def handle_errors(fn: F) -> F:
    """Turn pmsync errors into a short message and exit code 1; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            print_config_problems(exc)
            sys.exit(1)
        except UsageError as exc:
            raise click.UsageError(redact(str(exc))) from None
        except PmsyncError as exc:
            print_error(exc)
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
