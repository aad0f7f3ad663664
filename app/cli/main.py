"""The `pmsync` command group: global options, then every command registered from its module."""

from __future__ import annotations

import importlib
from typing import cast

import click

from pmsync import __version__
from pmsync.logs import LogFormat, configure_logging

from .context import Context, WholeHelpGroup

# The module that defines each command (in its COMMANDS). A command's module is imported when
# the command runs, so `pmsync status` loads none of the others' imports; `--help` loads all.
# tests/test_startup_imports.py checks this table against every module's COMMANDS.
COMMAND_MODULES = {
    "check-config": "setup_commands",
    "connectors": "setup_commands",
    "mappings": "setup_commands",
    "schema": "setup_commands",
    "check": "setup_commands",
    "discover": "setup_commands",
    "sync": "sync_commands",
    "run": "sync_commands",
    "status": "sync_commands",
    "dead-letters": "sync_commands",
    "state": "state_commands",
    "links": "report_commands",
    "report": "report_commands",
    "plan": "writeback_commands",
    "apply": "writeback_commands",
    "demo": "demo_command",
    "serve": "serve_command",
}

# The options of the group, with whether each takes a value. People write them after the
# command too (`pmsync check-config --config x`); they are moved in front of it.
GLOBAL_OPTIONS = {"-c": True, "--config": True, "--log-level": True, "--log-format": True}


class PmsyncGroup(WholeHelpGroup):
    """The `pmsync` group: global options are accepted before or after the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            for command in importlib.import_module(f"{__package__}.{module}").COMMANDS:
                self.add_command(command)
        return super().get_command(ctx, cmd_name)


def hoist_global_options(args: list[str]) -> list[str]:
    """`cmd ... -c FILE ...` -> `-c FILE cmd ...`: global options found after the command
    move before it (up to a `--`)."""
    command = _command_index(args)
    if command is None:
        return args
    front, rest, moved = list(args[:command]), [args[command]], []
    tail = iter(args[command + 1 :])
    for arg in tail:
        if arg == "--":
            rest += [arg, *tail]
            break
        name = arg.split("=", 1)[0]
        if arg.startswith("-c") and not arg.startswith("--") and len(arg) > 2:
            moved.append(arg)  # -cFILE
            continue
        if name in GLOBAL_OPTIONS:
            moved.append(arg)
            if GLOBAL_OPTIONS[name] and "=" not in arg:
                value = next(tail, None)
                if value is not None:
                    moved.append(value)
            continue
        rest.append(arg)
    return [*front, *moved, *rest]


def _command_index(args: list[str]) -> int | None:
    """Where the command name is: the first argument that is neither an option nor a value."""
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = GLOBAL_OPTIONS.get(arg, False)
            continue
        return index
    return None


@click.group(
    cls=PmsyncGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Global options go before or after the command. Environment: $PMSYNC_CONFIG names "
    "the configuration file when -c is not given.",
)
@click.version_option(__version__, prog_name="pmsync")
@click.option(
    "-c",
    "--config",
    envvar="PMSYNC_CONFIG",
    type=click.Path(dir_okay=False),
    show_envvar=True,
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


def load_all_commands() -> click.Group:
    """The `pmsync` group with every command registered (`cli.commands` is otherwise filled as
    commands are asked for); for code that walks the commands, such as the docs' tests."""
    for name in COMMAND_MODULES:
        cli.get_command(click.Context(cli), name)
    return cli


_as_program = False  # set by `main`: this process is the `pmsync` program itself


def started_as_program() -> bool:
    """Whether `main` started this process's command (the `pmsync` script or `python -m
    pmsync.app.cli`), not a test or a program calling the click group: only then may a command
    execute itself again (`pmsync run` on the system allocator)."""
    return _as_program


def main() -> None:
    """Console-script entry point."""
    global _as_program  # noqa: PLW0603 - one flag per process
    _as_program = True
    cli(prog_name="pmsync")
