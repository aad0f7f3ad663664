"""Resolve secret references in the configuration; never accept a literal secret.

A secret is written as a table naming where it lives:
  { env = "ZENDESK_TOKEN" }          an environment variable
  { file = "/run/keys/zendesk" }     a file (its trailing newline is dropped)
  { credential = "zendesk_token" }   a systemd credential, $CREDENTIALS_DIRECTORY/<name>
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pmsync.redact import register_secret

REFERENCE_KINDS = ("env", "file", "credential")


class SecretReferenceError(Exception):
    """A reference could not be resolved; the message names the variable or file tried."""


def is_reference(value: Any) -> bool:
    """True when `value` is a `{env|file|credential = ...}` table."""
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and next(iter(value)) in REFERENCE_KINDS
        and isinstance(next(iter(value.values())), str)
    )


def resolve_reference(ref: Mapping[str, str], base_dir: Path | None = None) -> str:
    """Return the secret a reference points to, registering it for redaction."""
    kind, target = next(iter(ref.items()))
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise SecretReferenceError(f"environment variable {target} is not set")
    elif kind == "credential":
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretReferenceError(
                f"credential '{target}' needs $CREDENTIALS_DIRECTORY "
                "(set by systemd's LoadCredential=); it is not set. Outside systemd, write "
                '{ env = "VAR" } or { file = "/path" } instead'
            )
        path = Path(directory) / target
        if not path.exists():
            raise SecretReferenceError(
                f"credential '{target}' (file {path}) is not among those systemd passed "
                f"({_credential_names(Path(directory))}); check LoadCredential= in the unit"
            )
        value = _read_secret_file(path)
    else:
        path = Path(target)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        value = _read_secret_file(path)
    if not value:
        raise SecretReferenceError(f"{kind} {target} is empty")
    register_secret(value)
    return value


def _read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise SecretReferenceError(f"file {path} does not exist") from None
    except OSError as exc:
        raise SecretReferenceError(f"file {path} cannot be read ({exc.strerror})") from None


def _credential_names(directory: Path) -> str:
    """The names (never the contents) of the credentials in $CREDENTIALS_DIRECTORY."""
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError:
        return "none readable"
    return ", ".join(names) if names else "none"
