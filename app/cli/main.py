"""The `pmsync` command group: global options, then every command registered from its module."""

from __future__ import annotations

from typing import cast

import click

from pmsync import __version__
from pmsync.logs import LogFormat, configure_logging

from . import (
    demo_command,
    report_commands,
    serve_command,
    setup_commands,
    sync_commands,
    writeback_commands,
)
from .context import Context


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pmsync")
@click.option(
    "-c",
    "--config",
    envvar="PMSYNC_CONFIG",
    type=click.Path(dir_okay=False),
    help="Configuration file (default: ./pmsync.toml, then /etc/pmsync/pmsync.toml).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Override the configured log level.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    help="Log format; auto is JSON unless stderr is a terminal.",
)
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, log_level: str | None, log_format: str | None
) -> None:
    """pmsync links customer feedback, revenue and engineering work across your tools.

    It polls Zendesk, Salesforce, Jira and product analytics, normalises records through the
    mapping files, links them in one store and writes rollups back.
    """
    configure_logging(log_level or "warning", cast(LogFormat, log_format or "auto"))
    ctx.obj = Context(config, log_level, log_format)


for _module in (
    setup_commands,
    sync_commands,
    report_commands,
    writeback_commands,
    demo_command,
    serve_command,
):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pmsync")
