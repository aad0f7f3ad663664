"""Files and directories that only pmsync's own user may read, whatever the umask.

The store holds raw customer payloads. Under systemd the unit's UMask=0077 keeps it private;
started by hand (`pmsync sync`, `pmsync demo`, a daemon in a shell) the usual umask 022 made
the store, its WAL and SHM files and its backups 0644: readable by every user of the machine.
These helpers create files 0600 and directories 0700 explicitly (a mode given to open() or
mkdir() only loses bits to the umask; an explicit chmod makes it exact). Existing files and
directories are left as they are: an operator may have chosen their modes.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directories(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700; existing ones are not touched."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            continue  # made by another process meanwhile: its mode is its own
        directory.chmod(DIRECTORY_MODE)


def private_file(path: Path) -> bool:
    """Create `path` empty with mode 0600 unless it exists; True when it was created."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(handle, FILE_MODE)
    finally:
        os.close(handle)
    return True


def open_to_others(path: Path) -> bool:
    """True when users other than the owner may read or write `path`."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False
