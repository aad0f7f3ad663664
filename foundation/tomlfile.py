"""Read a TOML file, turning every way it can be broken into a Problem that names the file.

Configuration and mapping files are edited by people: a syntax error, a file that is not
UTF-8, or nesting deep enough to exhaust the parser's recursion must read as one line about the
file, never as a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pmsync.errors import ConfigError, Problem


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; raise ConfigError naming the file (and line, where TOML says)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(Problem(str(path), "", "file not found")) from None
    except IsADirectoryError:
        raise ConfigError(Problem(str(path), "", "is a directory, not a TOML file")) from None
    except OSError as exc:
        raise ConfigError(Problem(str(path), "", f"cannot be read ({exc.strerror})")) from None
    return parse_toml(data, str(path))


def parse_toml(data: bytes, where: str) -> dict[str, Any]:
    """Parse TOML bytes read from `where`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            Problem(
                where,
                "",
                f"is not UTF-8 text (line {line}, column {column}: byte {data[exc.start]:#04x})",
            )
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(Problem(where, "", f"invalid TOML: {exc}")) from None
    except RecursionError:
        raise ConfigError(Problem(where, "", "invalid TOML: nested too deeply")) from None
