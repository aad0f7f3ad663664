"""`make demo`, the README's first command: it ends with the demo's table, and run again it
installs nothing. Run against the environment `make test` installed (CI's), so it never
installs into a running test suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# The files the Makefile's SOURCES_NOW lists.
SOURCES = (
    "foundation",
    "connectors",
    "sync",
    "app",
    "testing",
    "simulators",
    "mappings",
    "pyproject.toml",
)


def _sources_now() -> str:
    """The Makefile's SOURCES_NOW: the checksum of the list of source files and pyproject.toml."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *SOURCES],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ordered = (
        subprocess.run(
            ["sort"], input=listed, capture_output=True, text=True, check=True, env={"LC_ALL": "C"}
        ).stdout
        + (REPO / "pyproject.toml").read_text()
    )
    return subprocess.run(
        ["cksum"], input=ordered, capture_output=True, text=True, check=True
    ).stdout.strip()


def _installed_by_make(venv: Path) -> bool:
    """True when `make` installed pmsync into `venv` from the files there are now (so `make
    demo` has nothing to install, and cannot change the environment this suite runs in)."""
    marker = venv / ".pmsync-sources"
    return (
        (venv / ".installed").exists()
        and marker.exists()
        and marker.read_text().strip() == _sources_now()
    )


def _make_demo(venv: Path, demo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "demo", f"VENV={venv}", f"DEMO_DIR={demo}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(demo.parent), "COLUMNS": "80"},
    )


@pytest.mark.slow
def test_make_demo_ends_with_the_table_and_a_second_run_installs_nothing(
    tmp_path: Path,
) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = Path(sys.prefix)
    if not _installed_by_make(venv):
        pytest.skip(f"{venv} is not a current `make` install (`make test` runs this test)")
    demo = tmp_path / "demo"
    first = _make_demo(venv, demo)
    second = _make_demo(venv, demo)
    for run in (first, second):
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "Top issues by customer ARR" in run.stdout
        assert run.stdout.rstrip().splitlines()[-1].startswith("  pmsync -c ")  # "Try next"
        assert "pip install" not in run.stdout + run.stderr
        assert "installing pmsync" not in run.stdout
        assert " -m venv " not in run.stdout
    assert (demo / "pmsync.toml").is_file()
    assert _installed_by_make(venv)  # nothing was invalidated either
