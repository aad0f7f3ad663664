"""Hostile configuration and mapping files: `check-config` and `mappings validate` answer with
exit 0 or 1 and one line per problem naming the file (and TOML path), never a traceback, a
Python class name or a secret, and they create no store.

Hypothesis mutates the shipped example configuration and the shipped mapping files: nested
arrays deeper than any parser's recursion, bytes that are not UTF-8, wrong types, missing and
unknown tables and keys, integers past 64 bits, JMESPath garbage, literal secrets. The examples
are derandomized, so CI runs the same bounded set each time; PMSYNC_FUZZ_EXAMPLES runs more.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmsync.app.cli import cli
from tests.conftest import REPO

SECRET = "fz-Referenced-Secret-7Q2x"  # what every { env = ... } reference resolves to
LITERAL = "fz-Literal-Secret-9K4w"  # written into the files by the fuzzer, never registered
SECRET_ENV = "PMSYNC_FUZZ_SECRET"
CRLF_ENV = "PMSYNC_FUZZ_CRLF_SECRET"
EXAMPLES = int(os.environ.get("PMSYNC_FUZZ_EXAMPLES", "100"))
COMMANDS = (("check-config",), ("mappings", "validate"))
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|Traceback")

# Raw TOML put where a value goes: what a dumper cannot (or will not) write.
RAW_VALUES = (
    "[" * 3000 + "]" * 3000,
    "[" * 400 + "1" + "]" * 400,
    "{ a = " * 300 + "1" + " }" * 300,
    "123456789012345678901234567890",
    "-99999999999999999999999999999999999",
    "inf",
    "-inf",
    "nan",
    "1e308",
    "0x7fffffffffffffff",
    "9999-12-31T23:59:59Z",
    "0001-01-01",
    '"\\u0000"',
)
JMESPATH_GARBAGE = (
    "subject | foo(@)",
    "nope(subject)",
    "length(@, @)",
    "to_number(`1`, `2`)",
    "sort_by(@, &x) | unknown_fn(@)",
    "[?",
    "a.b[",
    "foo(",
    "`{`",
    "'unterminated",
    "a[::0]",
    "&&",
    "",
    "@@",
    "(" * 1500 + "a" + ")" * 1500,
)
SHORT_TEXT = st.text(alphabet="abcxyz019_-.|[]{}()&@`'\"!?*<>=,:$ \t", max_size=16)
SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63)]),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    SHORT_TEXT,
    st.sampled_from(JMESPATH_GARBAGE),
    st.datetimes(
        timezones=st.just(UTC), min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)
    ),
    st.sampled_from(
        [{"env": "PMSYNC_FUZZ_UNSET"}, {"file": "/nonexistent/pmsync"}, {"env": CRLF_ENV}]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abxyz"), inner, max_size=3)
    ),
    max_leaves=6,
)


@dataclass
class Workspace:
    """The example configuration and shipped mappings, rewritten for each example."""

    root: Path
    config: dict[str, Any]
    mappings: dict[str, dict[str, Any]]
    written: list[Path] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / "pmsync.toml"


def make_workspace(root: Path) -> Workspace:
    """The example configuration, every reference resolving from the environment, to SECRET."""
    text = (REPO / "config.example.toml").read_text()
    text = re.sub(r"\{ credential = \"[^\"]+\" \}", f'{{ env = "{SECRET_ENV}" }}', text)
    mappings = {p.name: tomllib.loads(p.read_text()) for p in (REPO / "mappings").glob("*.toml")}
    return Workspace(root, tomllib.loads(text), mappings)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    saved = {name: os.environ.get(name) for name in (SECRET_ENV, CRLF_ENV)}
    os.environ[SECRET_ENV] = SECRET
    os.environ[CRLF_ENV] = SECRET + "\r\nX-Injected: 1"
    yield make_workspace(tmp_path_factory.mktemp("fuzz"))
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def paths_in(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a parsed TOML document (tables, values and list items)."""
    found: list[tuple[Any, ...]] = []
    children: list[tuple[Any, Any]] = []
    if isinstance(document, dict):
        children = list(document.items())
    elif isinstance(document, list):
        children = list(enumerate(document))
    for key, value in children:
        found.append((*prefix, key))
        found.extend(paths_in(value, (*prefix, key)))
    return found


def parent_of(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


@st.composite
def mutated_files(draw: st.DrawFn, workspace: Workspace) -> dict[str, bytes]:
    """File name -> bytes for the configuration and every mapping file, a few of them broken."""
    documents: dict[str, Any] = {"pmsync.toml": copy.deepcopy(workspace.config)}
    for name, document in workspace.mappings.items():
        documents[name] = copy.deepcopy(document)
    raws: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(documents)))
        _mutate(draw, documents[name], raws)
    files = {name: _dump(document, raws).encode() for name, document in documents.items()}
    if draw(st.integers(0, 9)) == 0:  # now and then, damage the bytes themselves
        name = draw(st.sampled_from(sorted(files)))
        data = files[name]
        at = draw(st.integers(0, len(data)))
        damage = draw(
            st.sampled_from([b"\xff\xfe", b"\xc3", b"\x00", b"\r", b"[[", b'"""', b"= ="])
        )
        files[name] = data[:at] + damage + data[at:] if draw(st.booleans()) else data[:at]
    return files


def _mutate(draw: st.DrawFn, document: dict[str, Any], raws: dict[str, str]) -> None:
    paths = paths_in(document)
    kind = draw(st.sampled_from(["set", "raw", "delete", "unknown", "secret"]))
    if not paths or kind == "unknown":
        tables = [p for p in paths if isinstance(parent_of(document, (*p, "x")), dict)]
        target = parent_of(document, (*draw(st.sampled_from(tables)), "x")) if tables else document
        target[draw(st.sampled_from(["unknwon", "rollup", "streams", "links", "score", "zz"]))] = (
            draw(VALUES)
        )
        return
    references = [p for p in paths if parent_of(document, (*p, "x")) == {"env": SECRET_ENV}]
    if kind == "secret" and references:  # a secret written into the file, not referred to
        path = draw(st.sampled_from(references))
        parent_of(document, path)[path[-1]] = LITERAL
        return
    path = draw(st.sampled_from(paths))
    parent = parent_of(document, path)
    if kind == "delete":
        del parent[path[-1]]
    elif kind == "raw":
        token = f"@@RAW{len(raws)}@@"
        raws[token] = draw(st.sampled_from(RAW_VALUES))
        parent[path[-1]] = token
    else:
        parent[path[-1]] = draw(VALUES)


def _dump(document: dict[str, Any], raws: dict[str, str]) -> str:
    """TOML text: top-level scalars, then one [table] per nested table (inline below that)."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    lines += _tables(document, ())
    text = "\n".join(lines) + "\n"
    for token, raw in raws.items():
        text = text.replace(_value(token), raw)
    return text


def _tables(document: dict[str, Any], prefix: tuple[str, ...]) -> list[str]:
    lines: list[str] = []
    for name, table in document.items():
        if isinstance(table, dict):
            path = (*prefix, name)
            lines.append(f"[{'.'.join(map(_key, path))}]")
            lines += [
                f"{_key(k)} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)
            ]
            lines += _tables(table, path)
    return lines


def _key(name: Any) -> str:
    return json.dumps(str(name))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(_value, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write(workspace: Workspace, files: dict[str, bytes]) -> None:
    mappings = workspace.root / "mappings"
    shutil.rmtree(mappings, ignore_errors=True)
    mappings.mkdir()
    for name, data in files.items():
        (workspace.root if name == "pmsync.toml" else mappings).joinpath(name).write_bytes(data)


def assert_answers_well(workspace: Workspace, args: tuple[str, ...]) -> None:
    """Exit 0 or 1; 'ok', or one line per problem naming one of the files; nothing leaked."""
    result = CliRunner().invoke(cli, ["-c", str(workspace.config_path), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    output = result.output
    assert result.exit_code in (0, 1), output
    assert SECRET not in output, output
    assert LITERAL not in output, output
    assert not CLASS_NAME.search(output), output
    lines = output.strip().splitlines()
    if result.exit_code == 0:
        assert lines, output
        assert lines[-1].endswith("valid") or lines[0].startswith("ok"), output
        return
    header = re.fullmatch(r"configuration problems \((\d+)\):", lines[0])
    assert header, output
    assert len(lines) == 1 + int(header.group(1)), output
    known = (str(workspace.root / "pmsync.toml"), str(workspace.root / "mappings"))
    for line in lines[1:]:
        assert line.startswith("  "), line
        assert line.strip().startswith(known), line
        assert ": " in line.strip().removeprefix(str(workspace.root)), line


def test_hostile_files_get_answers_not_tracebacks(workspace: Workspace) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        files = data.draw(mutated_files(workspace))
        write(workspace, files)
        # Both commands load the same way; one per example keeps the test short.
        assert_answers_well(workspace, data.draw(st.sampled_from(COMMANDS)))
        assert not list(workspace.root.glob("pmsync.db*")), "a check created a store"

    check()
