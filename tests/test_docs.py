"""The README tells the truth about the CLI and the metrics.

Every `pmsync ...` invocation the README shows names commands and options that exist; every
option named on its own exists on some command; every command, subcommand and option of the CLI
appears in the README; every metric name it mentions is one the daemon exports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from pmsync.app.cli.main import load_all_commands
from pmsync.app.daemon.metrics import Metrics
from pmsync.sync.store.store import Store
from tests.conftest import REPO

cli = load_all_commands()  # every command registered, for walking `cli.commands`

README = (REPO / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`]+)`")
# `pmsync` as the program: the first word of a span or shell line, or an installed script.
PROGRAM = re.compile(r"^(?:sudo\s+)?(?:\S*/bin/)?pmsync\s+(.*)$", re.DOTALL)
# A metric name, not a quoted value such as a credential name in a TOML example.
METRIC = re.compile(r"(?<![\w\"])pmsync_[a-z_]+[a-z]")


@dataclass(frozen=True)
class Invocation:
    """`pmsync` and what follows it, as written in the README."""

    text: str

    def tokens(self) -> list[str]:
        """Words, with the README's [optional] brackets and a/b alternatives taken apart."""
        words: list[str] = []
        for raw in self.text.split():
            word = raw.strip("[]")
            if word.startswith("-"):
                words.extend(word.split("/"))
            elif word:
                words.append(word)
        return words


def _shell_lines() -> Iterator[str]:
    for language, body in FENCE.findall(README):
        if language in ("sh", ""):
            for line in body.splitlines():
                yield line.split(" #", 1)[0].strip()


def _prose() -> str:
    return FENCE.sub("", README)


def invocations() -> list[Invocation]:
    found = []
    for text in [*_shell_lines(), *SPAN.findall(_prose())]:
        match = PROGRAM.match(text.strip())
        if match:
            found.append(Invocation(match.group(1)))
    return list(dict.fromkeys(found))  # each distinct one once


def option_spans() -> list[str]:
    """Options the README names on their own, e.g. `--stream` or `-c/--config FILE`."""
    spans = [s.split()[0] for s in SPAN.findall(_prose()) if s.startswith("-")]
    return [option for span in spans for option in span.split("/")]


def _context(path: tuple[str, ...]) -> click.Context:
    """A click context for the command at `path`, chained as when pmsync runs it."""
    context = click.Context(cli, info_name="pmsync")
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
        context = click.Context(command, parent=context, info_name=name)
    return context


def options_of(path: tuple[str, ...]) -> dict[str, click.Option]:
    """Every spelling of every option of the command at `path`, --help included."""
    context = _context(path)
    found: dict[str, click.Option] = {}
    for parameter in context.command.get_params(context):
        if isinstance(parameter, click.Option):
            for spelling in (*parameter.opts, *parameter.secondary_opts):
                found[spelling] = parameter
    return found


def command_paths(
    group: click.Group = cli, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


def resolve(invocation: Invocation) -> tuple[tuple[str, ...], list[tuple[tuple[str, ...], str]]]:
    """The command path an invocation names and the (command path, option) pairs it uses.

    Raises AssertionError naming the word that is not a command."""
    path: tuple[str, ...] = ()
    command: click.Command = cli
    used: list[tuple[tuple[str, ...], str]] = []
    tokens = invocation.tokens()
    index = 0
    while index < len(tokens):
        word = tokens[index]
        index += 1
        if word == "...":  # the README elides the rest
            break
        if word.startswith("-"):
            used.append((path, word))
            option = options_of(path).get(word)
            if isinstance(command, click.Group) and option is not None and not option.is_flag:
                index += 1  # its value, not a command
        elif isinstance(command, click.Group):
            assert word in command.commands, (
                f"README shows `pmsync {invocation.text}`: {word!r} is not a command of "
                f"`{' '.join(('pmsync', *path))}` (commands: {sorted(command.commands)})"
            )
            command = command.commands[word]
            path = (*path, word)
    return path, used


def test_the_readme_shows_pmsync_at_work() -> None:
    """The extraction below finds what it should (guards against a silently empty check)."""
    shown = {resolve(i)[0] for i in invocations()}
    assert ("sync",) in shown
    assert ("mappings", "preview") in shown
    assert len(option_spans()) >= 5


@pytest.mark.parametrize("invocation", invocations(), ids=lambda i: " ".join(i.text.split()))
def test_every_command_and_option_the_readme_shows_exists(invocation: Invocation) -> None:
    _path, used = resolve(invocation)
    for path, option in used:
        assert option in options_of(path), (
            f"README shows `pmsync {invocation.text}`: `{' '.join(('pmsync', *path))}` has no "
            f"option {option} (it has {sorted(options_of(path))})"
        )


def test_every_option_the_readme_names_on_its_own_exists() -> None:
    every = {o for path in [(), *command_paths()] for o in options_of(path)}
    missing = [o for o in option_spans() if o not in every]
    assert missing == [], f"README names options no command has: {missing}"


def test_every_command_and_subcommand_appears_in_the_readme() -> None:
    shown = {resolve(i)[0] for i in invocations()}
    missing = [
        " ".join(path) for path in command_paths() if not any(s[: len(path)] == path for s in shown)
    ]
    assert missing == [], f"commands the README never shows: {missing}"


def test_every_option_of_every_command_appears_in_the_readme() -> None:
    documented = {(path, option) for i in invocations() for path, option in resolve(i)[1]}
    standalone = set(option_spans())
    missing = []
    for path in [(), *command_paths()]:
        for option in {id(p): p for p in options_of(path).values()}.values():
            names = {*option.opts, *option.secondary_opts}
            if "--help" in names:
                continue
            if not any((path, n) in documented or (not path and n in standalone) for n in names):
                missing.append(f"{' '.join(('pmsync', *path))} {'/'.join(sorted(names))}")
    assert missing == [], f"options the README never names: {sorted(missing)}"


def exported_metric_names(tmp_path: Path) -> set[str]:
    """The names a scrape of the daemon's /metrics can show (counters end in _total)."""
    store = Store(f"sqlite:///{tmp_path / 'metrics.db'}")
    metrics = Metrics("docs", lambda: store)
    try:
        names = set()
        for family in metrics.registry.collect():
            suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
            names.add(family.name + suffix)
        return names
    finally:
        metrics.close()
        store.close()


def test_every_metric_the_readme_names_is_exported(tmp_path: Path) -> None:
    named = set(METRIC.findall(README))
    assert len(named) >= 10  # the extraction found the README's metrics section
    exported = exported_metric_names(tmp_path)
    assert sorted(named - exported) == [], f"exported: {sorted(exported)}"
