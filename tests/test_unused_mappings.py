"""Shipped mappings for installed connector types that a configuration does not use."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pmsync.app.cli import cli

REPO = Path(__file__).resolve().parent.parent


def check(tmp_path: Path, connectors: str, mappings: list[Path]) -> tuple[int, str]:
    config = tmp_path / "pmsync.toml"
    paths = ", ".join(f'"{p}"' for p in mappings)
    config.write_text(f"[mappings]\npaths = [{paths}]\n{connectors}")
    result = CliRunner().invoke(cli, ["--config", str(config), "check-config"])
    return result.exit_code, result.output


def test_a_mapping_for_an_unconfigured_installed_type_is_unused(tmp_path: Path) -> None:
    pendo_only = '[connectors.pendo]\ntype = "pendo"\nintegration_key = { env = "HOME" }\n'
    code, output = check(tmp_path, pendo_only, [REPO / "mappings"])
    assert code == 0, output
    assert "1 connector(s)" in output


def test_a_mapping_for_an_unknown_connector_is_still_an_error(tmp_path: Path) -> None:
    code, output = check(tmp_path, "", [REPO / "mappings" / "examples" / "posthog.toml"])
    assert code == 1
    assert "no connector instance or type 'posthog' in the configuration" in output
    assert output.count("'posthog'") == 1
