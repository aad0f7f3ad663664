"""Logging in: the three auth modes, hosts, re-login on expiry (bounded), and secrets kept out."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
import structlog
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from pmsync.app.cli import cli
from pmsync.connectors.base import FieldWrite
from pmsync.connectors.salesforce.settings import SalesforceCredentials, SalesforceSettings
from pmsync.errors import AuthError
from pmsync.logs import configure_logging
from pmsync.simulators.salesforce import SalesforceSimulator, generate
from tests.salesforce_support import ids, make_connector, read_pages, running, write_config


@pytest.fixture
def sim() -> Iterator[SalesforceSimulator]:
    yield from running(SalesforceSimulator())


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def token_requests(sim: SalesforceSimulator) -> int:
    return len(sim.requests_to("/services/oauth2/token"))


# ---- modes -------------------------------------------------------------------------------------


def test_client_credentials_send_the_app_credentials_as_basic_auth(
    sim: SalesforceSimulator,
) -> None:
    connector = make_connector(sim)
    connector.check()
    login = sim.requests_to("/services/oauth2/token")[0]
    expected = base64.b64encode(f"{sim.client_id}:{sim.client_secret}".encode()).decode()
    assert login.headers["authorization"] == f"Basic {expected}"
    assert login.body == b"grant_type=client_credentials"
    connector.close()


@pytest.mark.filterwarnings("ignore:(?s).*self-authorize:UserWarning")
def test_jwt_bearer_login(sim: SalesforceSimulator, rsa_pair: tuple[str, str]) -> None:
    private, public = rsa_pair
    sim.jwt_public_key = public
    credentials = SalesforceCredentials(
        method="jwt", client_id=sim.client_id, username=sim.username, private_key=SecretStr(private)
    )
    connector = make_connector(sim, credentials=credentials)
    connector.check()
    assert sim.requests_to("/services/oauth2/token")[0].status == 200
    wrong = SalesforceCredentials(
        method="jwt",
        client_id=sim.client_id,
        username="someone@else",
        private_key=SecretStr(private),
    )
    with pytest.raises(AuthError, match="invalid_grant"):
        make_connector(sim, credentials=wrong).check()
    connector.close()


def test_password_and_security_token_login_through_soap(sim: SalesforceSimulator) -> None:
    good = SalesforceCredentials(
        method="password",
        username=sim.username,
        password=SecretStr(sim.password),
        security_token=SecretStr(sim.security_token),
    )
    connector = make_connector(sim, credentials=good, my_domain=None)
    connector.check()
    assert sim.requests_to("/services/Soap/u/59.0")[0].status == 200
    bad = good.model_copy(update={"security_token": SecretStr("stale-token")})
    with pytest.raises(AuthError, match="INVALID_LOGIN") as info:
        make_connector(sim, credentials=bad, my_domain=None).check()
    assert "stale-token" not in str(info.value)
    assert sim.password not in str(info.value)
    connector.close()


def test_settings_name_what_each_method_lacks() -> None:
    with pytest.raises(ValueError, match="needs client_secret"):
        SalesforceCredentials(method="client_credentials", client_id="x")
    with pytest.raises(ValueError, match="needs my_domain"):
        SalesforceSettings(
            credentials=SalesforceCredentials(client_id="x", client_secret=SecretStr("y"))
        )
    with pytest.raises(ValueError, match=r"acme\.my\.salesforce\.com"):
        SalesforceSettings(
            my_domain="acme.example.com",
            credentials=SalesforceCredentials(client_id="x", client_secret=SecretStr("y")),
        )


@pytest.mark.parametrize("my_domain", [None, "sf-proxy.corp.example:8443"])
def test_behind_a_proxy_client_credentials_need_no_my_domain(
    sim: SalesforceSimulator, my_domain: str | None
) -> None:
    """base_url sends everything, the login included, through a proxy (issue 11, item 12)."""
    generate(sim, accounts=5, contacts=0, users=1)
    connector = make_connector(sim, my_domain=my_domain)
    pages = read_pages(connector, connector.stream("Account"), fields=["Name"])
    assert len(ids(pages)) == 5
    [login] = sim.requests_to("/services/oauth2/token")
    assert login.body == b"grant_type=client_credentials"
    connector.close()


@responses.activate
def test_production_hosts_are_https_and_the_ca_bundle_goes_with_each_request(
    tmp_path: Path,
) -> None:
    """No base_url: login at the My Domain host, then the returned instance, TLS verified."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    responses.post(
        "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token",
        json={
            "access_token": "tok-123456",
            "instance_url": "https://acme--uat.sandbox.my.salesforce.com",
        },
    )
    responses.get(
        "https://acme--uat.sandbox.my.salesforce.com/services/data/v59.0/limits/",
        json={"DailyApiRequests": {"Max": 1, "Remaining": 1}},
        headers={"Sforce-Limit-Info": "api-usage=5/100"},
    )
    settings = SalesforceSettings(
        my_domain="https://acme--uat.sandbox.my.salesforce.com/",
        ca_bundle=bundle,
        credentials=SalesforceCredentials(client_id="x", client_secret=SecretStr("y")),
    )
    from pmsync.connectors.salesforce import SalesforceConnector

    connector = SalesforceConnector("salesforce", settings)
    connector.check()
    # responses records each request's keyword arguments as `req_kwargs`, an attribute its own
    # annotations of PreparedRequest do not declare (it sets it under a type: ignore too).
    sent = [c.request.req_kwargs for c in responses.calls]  # type: ignore[attr-defined]
    assert [kwargs["verify"] for kwargs in sent] == [str(bundle)] * 2
    assert connector.guard.used == 5
    assert connector.guard.total == 100
    connector.close()


# ---- a wrong secret --------------------------------------------------------------------------


def test_wrong_client_secret_is_a_one_line_configuration_error(
    sim: SalesforceSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, sim)
    monkeypatch.setenv("PMSYNC_TEST_SF_SECRET", "wrong-secret-value")
    result = CliRunner().invoke(cli, ["--config", str(config), "check", "salesforce"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("FAIL salesforce")
    assert "invalid client credentials" in lines[0]
    assert "connectors.salesforce" in lines[0]
    assert "Traceback" not in result.output
    assert "wrong-secret-value" not in result.output


def test_wrong_client_secret_fails_the_sync_without_a_traceback(
    sim: SalesforceSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(sim, accounts=5, contacts=5)
    config = write_config(tmp_path, sim)
    monkeypatch.setenv("PMSYNC_TEST_SF_SECRET", "wrong-secret-value")
    result = CliRunner().invoke(cli, ["--config", str(config), "sync", "--once", "--json"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "wrong-secret-value" not in result.output
    assert '"status": "failed"' in result.output
    assert "invalid client credentials" in result.output


# ---- expiry and re-login --------------------------------------------------------------------


def test_an_expired_session_logs_in_again_mid_read(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=900, contacts=0)
    connector = make_connector(sim)
    spec = connector.stream("Account")
    seen: list[str] = []
    for number, page in enumerate(connector.read(spec, None)):
        seen += [r["Id"] for r in page.records]
        if number == 1:
            sim.expire_sessions()
    assert sorted(seen) == sorted(sim.live_ids("Account"))
    assert token_requests(sim) == 2
    assert len(sim.requests_to("/services/data/v59.0/query/", "GET")) >= 4
    connector.close()


def test_a_session_refused_after_login_gives_up_after_a_bounded_number_of_logins(
    sim: SalesforceSimulator,
) -> None:
    generate(sim, accounts=10, contacts=0)
    connector = make_connector(sim)
    connector.check()
    sim.reject_sessions = True
    with pytest.raises(AuthError, match="INVALID_SESSION_ID"):
        read_pages(connector, connector.stream("Account"))
    assert token_requests(sim) <= 1 + 4  # simple-salesforce re-logs in 4 times, no loop
    connector.close()


def test_bulk_results_log_in_again_once_then_give_up(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=300, contacts=0)
    connector = make_connector(sim, bulk_threshold=100, bulk_page_size=100)
    spec = connector.stream("Account")
    pages = connector.read(spec, None)
    first = [next(pages), next(pages), next(pages)]  # sizing page, job page, first results
    sim.expire_sessions()
    rest = list(pages)
    got = {r["Id"] for p in first + rest for r in p.records}
    assert got == sim.live_ids("Account")
    assert token_requests(sim) == 2
    sim.reject_sessions = True
    before = token_requests(sim)
    with pytest.raises(AuthError):
        list(connector.read(spec, first[2].cursor))
    assert token_requests(sim) - before <= 1 + 4
    connector.close()


# ---- secrets -----------------------------------------------------------------------------------


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("debug", "json", stream=buffer)
    for name in ("urllib3", "requests", "simple_salesforce"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield buffer
    root.handlers[:], level = saved
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.filterwarnings("ignore:(?s).*self-authorize:UserWarning")
def test_no_secret_in_any_log_line(
    sim: SalesforceSimulator,
    log_buffer: io.StringIO,
    rsa_pair: tuple[str, str],
) -> None:
    generate(sim, accounts=450, contacts=0)
    private, public = rsa_pair
    sim.jwt_public_key = public
    connector = make_connector(sim)
    connector.check()
    pages = read_pages(connector, connector.stream("Account"), fields=("Name",))
    sim.expire_sessions()
    connector.write([FieldWrite("Account", ids(pages)[0], {"Open_Requests__c": 3.0})])
    with pytest.raises(AuthError):
        make_connector(sim, secret="wrong-secret-xyz").check()
    jwt = SalesforceCredentials(
        method="jwt", client_id=sim.client_id, username=sim.username, private_key=SecretStr(private)
    )
    make_connector(sim, credentials=jwt).check()
    password = SalesforceCredentials(
        method="password",
        username=sim.username,
        password=SecretStr(sim.password),
        security_token=SecretStr(sim.security_token),
    )
    make_connector(sim, credentials=password, my_domain=None).check()
    bad = password.model_copy(update={"security_token": SecretStr("old-token-123")})
    with pytest.raises(AuthError):
        make_connector(sim, credentials=bad, my_domain=None).check()
    text = log_buffer.getvalue()
    assert "salesforce_login" in text
    assert "/services/oauth2/token" in text
    basic = base64.b64encode(f"{sim.client_id}:{sim.client_secret}".encode()).decode()
    secrets = [sim.client_secret, "wrong-secret-xyz", basic, *sim.issued_tokens]
    secrets += [sim.password, sim.security_token, "old-token-123"]
    secrets += [line for line in private.splitlines() if "PRIVATE KEY" not in line][:3]
    leaked = [s for s in secrets if s in text]
    assert not leaked
    connector.close()
