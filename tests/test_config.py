"""Configuration: every problem reported at once, with file and TOML path; secrets by reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from pmsync.app.config import Config, load_config
from pmsync.connectors.zendesk.settings import ZendeskSettings
from pmsync.errors import ConfigError
from pmsync.redact import redact

GOOD = """
[store]
url = "sqlite:///state/pmsync.db"

[connectors.zendesk]
type = "zendesk"
base_url = "https://acme.zendesk.com"
poll_interval = "2m"

[connectors.zendesk.credentials]
email = "ops@acme.com"
api_token = { env = "TEST_ZD_TOKEN" }
"""


def zendesk_token(config: Config) -> SecretStr:
    """The Zendesk connector's resolved API token."""
    settings = config.connectors["zendesk"]
    assert isinstance(settings, ZendeskSettings)
    assert settings.credentials.api_token is not None
    return settings.credentials.api_token


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pmsync.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_valid_config_resolves_env_secret_and_relative_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ZD_TOKEN", "tok-123456")
    config = load_config(write(tmp_path, GOOD))
    zendesk = config.connectors["zendesk"]
    assert zendesk.poll_interval.total_seconds() == 120
    assert zendesk_token(config).get_secret_value() == "tok-123456"
    assert config.store_url() == f"sqlite:///{(tmp_path / 'state' / 'pmsync.db').resolve()}"
    assert redact("token tok-123456 here") == "token *** here"


def test_every_problem_is_reported_at_once_with_paths(tmp_path: Path) -> None:
    text = """
[store]
url = "sqlite:///x.db"
colour = "blue"

[connectors.zendesk]
type = "zendesk"
base_url = "acme.zendesk.com"
pol_interval = "5m"
[connectors.zendesk.credentials]
email = "ops@acme.com"
api_token = { env = "PMSYNC_TEST_UNSET_VARIABLE" }

[connectors.crm]
type = "salesforse"
"""
    found = problems(write(tmp_path, text))
    joined = "\n".join(found)
    assert "store.colour: unknown field 'colour'" in joined
    assert (
        "connectors.zendesk.credentials.api_token: environment variable "
        "PMSYNC_TEST_UNSET_VARIABLE is not set" in joined
    )
    assert "connectors.zendesk.base_url: " in joined
    assert "https://" in joined
    assert (
        "connectors.zendesk.pol_interval: unknown field 'pol_interval'; did you mean "
        "'poll_interval'?" in joined
    )
    assert "connectors.crm.type: unknown connector type 'salesforse'" in joined
    assert all(line.startswith(str(tmp_path / "pmsync.toml")) for line in found)
    assert len(found) >= 5


def test_bad_toml_names_file_line_and_column(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "[store\nurl = 1\n"))
    assert len(found) == 1
    assert "pmsync.toml" in found[0]
    assert "invalid TOML" in found[0]
    assert "line 1" in found[0]


def test_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    found = problems(tmp_path / "absent.toml")
    assert found == [f"{tmp_path / 'absent.toml'}: file not found"]


def test_literal_secret_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace('api_token = { env = "TEST_ZD_TOKEN" }', 'api_token = "literal-secret"')
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert (
        "connectors.zendesk.credentials.api_token: secrets must not be written in the file"
        in found[0]
    )
    assert "literal-secret" not in found[0]


def test_file_and_systemd_credential_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "zd").write_text("from-credential\n")
    (tmp_path / "token.txt").write_text("from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = load_config(
        write(tmp_path, GOOD.replace('{ env = "TEST_ZD_TOKEN" }', '{ credential = "zd" }'))
    )
    assert zendesk_token(config).get_secret_value() == "from-credential"
    config = load_config(
        write(tmp_path, GOOD.replace('{ env = "TEST_ZD_TOKEN" }', '{ file = "token.txt" }'))
    )
    assert zendesk_token(config).get_secret_value() == "from-file"


def test_missing_credential_names_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    found = problems(
        write(tmp_path, GOOD.replace('{ env = "TEST_ZD_TOKEN" }', '{ credential = "nope" }'))
    )
    assert f"credential 'nope' (file {tmp_path / 'nope'}) is not among" in found[0]


def test_credentials_need_a_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ZD_TOKEN", "tok-123456")
    text = GOOD.replace('email = "ops@acme.com"\n', "")
    found = problems(write(tmp_path, text))
    assert any(
        "connectors.zendesk.credentials" in p and "set email and api_token" in p for p in found
    )


def test_default_store_lives_in_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ZD_TOKEN", "tok-123456")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    config = load_config(write(tmp_path, GOOD.replace('url = "sqlite:///state/pmsync.db"', "")))
    assert config.store_url() == f"sqlite:///{(tmp_path / 'state' / 'pmsync.db').resolve()}"


def test_the_shipped_example_configuration_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parent.parent
    text = (repo / "config.example.toml").read_text()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in re.findall(r'^[^#\n]*\{ credential = "([^"]+)" \}', text, flags=re.M):
        (credentials / name).write_text("example-secret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    path = tmp_path / "pmsync.toml"
    path.write_text(text.replace('paths = ["mappings"]', f'paths = ["{repo / "mappings"}"]'))
    from pmsync.app.runtime import Runtime

    runtime = Runtime.load(str(path))
    assert set(runtime.config.connectors) >= {"zendesk", "salesforce", "jira", "pendo"}
    assert {job.qualified for job in runtime.jobs()} >= {
        "zendesk.tickets",
        "salesforce.Account",
        "jira.issues",
        "pendo.usage",
    }
    runtime.close()
