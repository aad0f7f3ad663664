"""The house: one import namespace, every folder shipped, floors declared for every module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _source_packages() -> dict[str, Path]:
    """Every package the root folders hold, by its installed name."""
    found: dict[str, Path] = {}
    for name, folder in SETUPTOOLS["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            found[".".join((name, *relative))] = init.parent
    return found


def _data_folders() -> dict[str, Path]:
    """Folders of data files inside a package (no code), by their installed name."""
    found: dict[str, Path] = {}
    for package, folder in _source_packages().items():
        for child in folder.iterdir():
            if (
                child.is_dir()
                and child.name != "__pycache__"
                and any(path.is_file() for path in child.iterdir())
                and not (child / "__init__.py").exists()
            ):
                found[f"{package}.{child.name}"] = child
    return found


def test_every_code_and_data_folder_is_a_listed_package_and_nothing_else_is() -> None:
    assert sorted(SETUPTOOLS["packages"]) == sorted({**_source_packages(), **_data_folders()})


def test_the_root_holds_no_pmsync_folder_that_would_shadow_the_installed_package() -> None:
    assert not (REPO / "pmsync").exists()
    for required in ("connectors", "sync", "mappings", "tests", "systemd"):
        assert (REPO / required).is_dir(), required


def test_every_foundation_module_is_held_by_the_floor_contracts() -> None:
    contracts = {c["name"]: c for c in PYPROJECT["tool"]["importlinter"]["contracts"]}
    foundation = contracts["The foundation imports nothing of ours"]["source_modules"]
    modules = {f"pmsync.{p.stem}" for p in (REPO / "foundation").glob("*.py")}
    assert set(foundation) == modules - {"pmsync.__init__"}


def test_every_data_file_is_package_data() -> None:
    data = SETUPTOOLS["package-data"]
    folders = {**_source_packages(), **_data_folders()}
    for package, folder in _data_folders().items():
        for path in filter(Path.is_file, folder.iterdir()):
            assert any(Path(path.name).match(p) for p in data[package]), path
    for path in [*(REPO / "mappings").rglob("*.toml"), *(REPO / "simulators").rglob("*.toml")]:
        package = next(name for name, folder in folders.items() if folder == path.parent)
        assert any(path.relative_to(path.parent).match(p) for p in data[package]), path


def _copy_checkout(target: Path) -> Path:
    """The tracked files of this checkout (and the working tree's edits) copied to `target`."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


@pytest.mark.slow
def test_a_wheel_built_after_the_demo_installs_one_import_name_and_every_file(
    tmp_path: Path,
) -> None:
    checkout = _copy_checkout(tmp_path / "checkout")
    leftover = checkout / "pmsync-demo"  # what `pmsync demo` leaves in a checkout
    leftover.mkdir()
    (leftover / "__init__.py").write_text("")
    (leftover / "pmsync.toml").write_text("")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), checkout],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert "deprecat" not in built.stderr.lower(), built.stderr
    assert "BuildBackendWarning" not in built.stderr, built.stderr  # e.g. a data folder unlisted
    (wheel,) = tmp_path.glob("pmsync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == ["pmsync"]
    shipped = {n for n in names if not n.startswith("pmsync-")}
    assert all(n.startswith("pmsync/") for n in shipped), sorted(shipped)[:5]
    for package, folder in _source_packages().items():
        for source in folder.glob("*.py"):
            assert f"{package.replace('.', '/')}/{source.name}" in shipped, source
    assert "pmsync/mappings/links.toml" in shipped
    assert "pmsync/mappings/overrides/links.toml" in shipped
    assert "pmsync/mappings/examples/writeback.toml" in shipped
    assert "pmsync/simulators/demo_mappings/writeback.toml" in shipped
    assert "pmsync/py.typed" in shipped
