"""Errors in the right class (issue 12, item 8): a secret with a line break is the user's to fix,
not a network fault to retry; a login answer simple-salesforce cannot read is an
authentication error, not an AttributeError from inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses
from click.testing import CliRunner
from pydantic import SecretStr

from pmsync.app.cli import cli
from pmsync.connectors.salesforce import SalesforceConnector
from pmsync.connectors.salesforce.settings import SalesforceCredentials, SalesforceSettings
from pmsync.errors import AuthError, RetriableError
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import write_config

TOKEN_URL = "https://acme.my.salesforce.com/services/oauth2/token"


@pytest.mark.parametrize("breaking", ["\r\n", "\n", "\r"])
def test_a_secret_with_a_line_break_is_a_configuration_problem_and_nothing_is_sent(
    tmp_path: Path,
    zendesk_sim: ZendeskSimulator,
    monkeypatch: pytest.MonkeyPatch,
    breaking: str,
) -> None:
    secret = f"tok-Aa9{breaking}X-Injected: yes"
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", secret)
    config = write_config(tmp_path, zendesk_url=zendesk_sim.base_url)
    for command in (["check-config"], ["sync", "--once"], ["check"]):
        result = CliRunner().invoke(cli, ["-c", str(config), *command])
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines() == [
            "configuration problems (1):",
            f"  {config}: connectors.zendesk.credentials.api_token: the secret contains a line "
            "break (CR or LF); a token, key or password is one line: check the variable or file "
            "it comes from",
        ]
        assert "X-Injected" not in result.output
    assert zendesk_sim.requests == []


def test_a_secret_file_keeps_its_trailing_newline_out_but_not_an_inner_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "token").write_bytes(b"tok-one-line\r\n")
    (tmp_path / "web").write_bytes(b"first\nsecond\n")
    config = write_config(
        tmp_path,
        zendesk_url="https://acme.zendesk.com",
        extra='[web]\nauth = "token"\ntoken = { file = "web" }\n',
    )
    config.write_text(
        config.read_text().replace('{ env = "PMSYNC_TEST_ZENDESK_TOKEN" }', '{ file = "token" }')
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [
        f"  {config}: web.token: the secret contains a line break (CR or LF); a token, key or "
        "password is one line: check the variable or file it comes from"
    ]


def test_a_pem_private_key_may_have_lines(tmp_path: Path) -> None:
    (tmp_path / "sf.key").write_text(
        "-----BEGIN PRIVATE KEY-----\nMIIEvQ\nIBADAN\n-----END PRIVATE KEY-----\n"
    )
    config = write_config(
        tmp_path,
        extra=(
            '[connectors.salesforce]\ntype = "salesforce"\nmy_domain = "acme.my.salesforce.com"\n'
            '[connectors.salesforce.credentials]\nmethod = "jwt"\nclient_id = "3MVG9"\n'
            'username = "pmsync@acme.com"\nprivate_key = { file = "sf.key" }\n'
        ),
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "check-config"])
    assert "line break" not in result.output
    assert result.exit_code == 0, result.output


def salesforce() -> SalesforceConnector:
    settings = SalesforceSettings(
        my_domain="acme.my.salesforce.com",
        credentials=SalesforceCredentials(client_id="x", client_secret=SecretStr("y")),
    )
    connector = SalesforceConnector("salesforce", settings)
    connector.sleep = lambda _seconds: None
    return connector


@responses.activate
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, [{"error": "invalid_client", "error_description": "invalid client credentials"}]),
        (400, ["unexpected"]),
        (200, {"access_token": "tok-123456"}),  # no instance_url
        (200, ["a", "list"]),
    ],
)
def test_a_token_answer_simple_salesforce_cannot_read_is_an_authentication_error(
    status: int, body: object
) -> None:
    responses.post(TOKEN_URL, json=body, status=status)
    connector = salesforce()
    with pytest.raises(AuthError) as raised:
        connector.check()
    message = str(raised.value)
    assert f"login (client_credentials) answered HTTP {status} without a session" in message
    assert "check [connectors.salesforce.credentials]" in message
    assert "Error" not in message
    connector.close()


@responses.activate
def test_a_token_answer_of_a_busy_server_stays_retriable() -> None:
    responses.post(TOKEN_URL, json=["busy"], status=503)
    connector = salesforce()
    with pytest.raises(RetriableError, match="answered HTTP 503 without a session"):
        connector.client.sf()
    connector.close()


@responses.activate
def test_check_reports_the_refused_login_as_credentials(tmp_path: Path) -> None:
    responses.post(TOKEN_URL, json=[{"error": "invalid_client"}], status=401)
    config = write_config(
        tmp_path,
        extra=(
            '[connectors.salesforce]\ntype = "salesforce"\nmy_domain = "acme.my.salesforce.com"\n'
            '[connectors.salesforce.credentials]\nclient_id = "3MVG9"\n'
            'client_secret = { env = "PMSYNC_TEST_SF_SECRET" }\n'
        ),
    )
    result = CliRunner(env={"PMSYNC_TEST_SF_SECRET": "sf-secret-1234"}).invoke(
        cli, ["-c", str(config), "check"]
    )
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(
        "FAIL salesforce  credentials: salesforce: login (client_credentials) answered HTTP 401"
    )
    assert "AttributeError" not in result.output
