"""The web view's parts on their own: the overrides writer, tables and CSV, sign-in, CSRF, and
the `[web]` configuration (secrets only as references)."""

from __future__ import annotations

import base64
import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from pmsync.app.config import load_config
from pmsync.app.web.decisions import Decision, DecisionError, write_decision
from pmsync.app.web.security import CSRF_COOKIE, SESSION_COOKIE, Guard, same_origin
from pmsync.app.web.settings import WebSettings
from pmsync.app.web.tables import Column, Table, csv_value, sort_rows, sparkline
from pmsync.errors import ConfigError
from pmsync.sync.links.linker import Overrides

REPO = Path(__file__).resolve().parent.parent
SHIPPED_OVERRIDES = (REPO / "mappings" / "overrides" / "links.toml").read_text()


# ---- the overrides file -------------------------------------------------------------------


def test_a_decision_keeps_every_comment_and_the_order_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "links.toml"
    original = SHIPPED_OVERRIDES.replace(
        "[ticket_issue]", '"zendesk:7" = "001A"   # kept as it is\n\n[ticket_issue]'
    )
    path.write_text(original)
    write_decision(
        path, Decision("zendesk:42", "42", "ticket_account", "001B", "Acme - decided by ann")
    )
    text = path.read_text()
    # Everything that was there is still there, in the same order, and the new entry follows.
    before = original.splitlines()
    after = text.splitlines()
    assert [line for line in after if line in before] == before
    assert '"zendesk:42" = "001B" # Acme - decided by ann' in text
    assert text.index('"zendesk:42"') < text.index("[ticket_issue]")
    loaded = Overrides.load(path)
    assert loaded.account == {"zendesk:7": "001A", "zendesk:42": "001B"}


def test_a_second_decision_for_a_ticket_replaces_its_entry_where_it_stands(tmp_path: Path) -> None:
    path = tmp_path / "links.toml"
    path.write_text('[ticket_account]\n"42" = "001A"\n"43" = "001C"\n')
    write_decision(path, Decision("zendesk:42", "42", "ticket_account", "none"))
    assert path.read_text() == '[ticket_account]\n"42" = "none"\n"43" = "001C"\n'


def test_issue_decisions_add_keys_to_the_tickets_list(tmp_path: Path) -> None:
    path = tmp_path / "links.toml"
    path.write_text('[ticket_issue]\n"zendesk:5" = ["-CORE-1"]\n')
    write_decision(path, Decision("zendesk:5", "5", "ticket_issue", ["CORE-2", "-CORE-1"]))
    assert Overrides.load(path).issues == {"zendesk:5": ["-CORE-1", "CORE-2"]}


def test_a_missing_overrides_file_is_created_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "overrides" / "links.toml"
    write_decision(path, Decision("zendesk:9", "9", "ticket_account", "001Z"))
    assert path.read_text().startswith("# Manual link decisions.")
    assert Overrides.load(path).account == {"zendesk:9": "001Z"}


def test_a_broken_overrides_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "links.toml"
    path.write_text("[ticket_account\n")
    with pytest.raises(DecisionError, match="not valid TOML"):
        write_decision(path, Decision("zendesk:9", "9", "ticket_account", "001Z"))
    assert path.read_text() == "[ticket_account\n"
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["links.toml"]


# ---- tables -------------------------------------------------------------------------------


def test_sorting_puts_empty_values_last_in_both_directions() -> None:
    rows: list[dict[str, Any]] = [{"a": 2}, {"a": None}, {"a": 10}, {"a": ""}]
    assert [r["a"] for r in sort_rows(rows, "a", descending=True)][:2] == [10, 2]
    assert [r["a"] for r in sort_rows(rows, "a", descending=False)][:2] == [2, 10]
    assert [r["a"] for r in sort_rows(rows, "a", descending=False)][2:] == [None, ""]


def test_csv_has_every_row_and_quotes_what_a_spreadsheet_would_run() -> None:
    rows = [{"subject": '=HYPERLINK("http://x")', "arr": 1200.5}] + [
        {"subject": f"s{n}", "arr": n} for n in range(60)
    ]
    table = Table("t", "T", (Column("subject", "Subject"), Column("arr", "ARR", "money")), rows)
    table.arrange({}, "arr", descending=True)
    assert len(table.shown) == 50
    parsed = list(csv.reader(io.StringIO(table.csv())))
    assert parsed[0] == ["subject", "arr"]
    assert len(parsed) == 62
    assert ['\'=HYPERLINK("http://x")', "1200.5"] in parsed
    assert csv_value(-5) == -5


def test_paging_and_sorting_read_their_own_prefix_and_ignore_nonsense() -> None:
    rows = [{"n": n} for n in range(120)]
    table = Table("t", "T", (Column("n", "N", "number"),), rows, prefix="t_", page_size=50)
    table.arrange({"t_sort": "n", "t_dir": "asc", "t_page": "3", "sort": "x"}, None, True)
    assert [r["n"] for r in table.shown] == list(range(100, 120))
    other = Table("u", "U", (Column("n", "N", "number"),), list(rows), page_size=50)
    other.arrange({"sort": "nope", "page": "zz"}, "n", descending=True)
    assert other.sort == "n"
    assert other.page == 1
    assert other.shown[0]["n"] == 119


def test_sparkline_scales_to_the_busiest_week() -> None:
    assert sparkline([0, 2, 8]) == "▁▃█"
    assert sparkline([0, 0]) == "▁▁"


def web(**values: object) -> WebSettings:
    return WebSettings.model_validate(values)


# ---- sign-in and CSRF ---------------------------------------------------------------------


def request(
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> Request:
    builder = EnvironBuilder(
        path="/",
        base_url="http://127.0.0.1:9474",
        headers=Headers(headers or {}),
        data=form,
        method="POST",
    )
    environ = builder.get_environ()
    if cookies:
        environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return Request(environ)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_needs_both_the_user_and_the_password() -> None:
    guard = Guard(web(auth="basic", username="ops", password="s3cret-pass"))
    assert guard.identify(request(basic("ops", "s3cret-pass"))) is not None
    assert guard.identify(request(basic("ops", "wrong"))) is None
    assert guard.identify(request(basic("eve", "s3cret-pass"))) is None
    assert guard.identify(request({"Authorization": "Basic !!!"})) is None
    assert guard.identify(request()) is None


def test_token_auth_by_header_or_by_a_signed_expiring_cookie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guard = Guard(web(auth="token", token="tok-123456"))
    assert guard.identify(request({"Authorization": "Bearer tok-123456"})) is not None
    assert guard.identify(request({"Authorization": "Bearer nope"})) is None
    value, _lifetime = guard.session_cookie()
    assert "tok-123456" not in value
    assert guard.identify(request(cookies={SESSION_COOKIE: value})) is not None
    expires, _, signature = value.partition(".")
    tampered = f"{int(expires) + 3600}.{signature}"
    assert guard.identify(request(cookies={SESSION_COOKIE: tampered})) is None
    later = time.time() + 13 * 3600  # past the default 12-hour lifetime
    monkeypatch.setattr("pmsync.app.web.security.time.time", lambda: later)
    assert guard.identify(request(cookies={SESSION_COOKIE: value})) is None
    monkeypatch.undo()
    rotated = Guard(web(auth="token", token="another-token"))
    assert rotated.identify(request(cookies={SESSION_COOKIE: value})) is None
    assert int(expires) > time.time()


def test_csrf_needs_the_token_of_this_browsers_cookie_and_this_origin() -> None:
    guard = Guard(WebSettings())
    seed, new = guard.csrf_seed(request())
    assert new
    token = guard.csrf_token(seed)
    assert guard.csrf_ok(request(cookies={CSRF_COOKIE: seed}, form={"csrf": token}))
    assert not guard.csrf_ok(request(cookies={CSRF_COOKIE: seed}, form={"csrf": "x" + token}))
    assert not guard.csrf_ok(request(form={"csrf": token}))
    other_seed, _ = guard.csrf_seed(request())
    assert not guard.csrf_ok(request(cookies={CSRF_COOKIE: other_seed}, form={"csrf": token}))
    foreign = request(
        {"Origin": "http://evil.example"}, cookies={CSRF_COOKIE: seed}, form={"csrf": token}
    )
    assert not guard.csrf_ok(foreign)
    # A process restart (a new key) expires the forms it served.
    assert not Guard(WebSettings()).csrf_ok(
        request(cookies={CSRF_COOKIE: seed}, form={"csrf": token})
    )


def test_same_origin_compares_the_host_the_request_was_sent_to() -> None:
    assert same_origin(request({"Origin": "http://127.0.0.1:9474"}))
    assert not same_origin(request({"Origin": "http://127.0.0.1:9999"}))
    assert not same_origin(request({"Referer": "https://evil.example/page"}))


# ---- configuration ------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pmsync.toml"
    path.write_text(text)
    return path


def test_the_web_token_is_read_from_a_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_WEB_TOKEN", "web-token-value")
    config = load_config(
        write(tmp_path, '[web]\nauth = "token"\ntoken = { env = "PMSYNC_TEST_WEB_TOKEN" }\n')
    )
    web = config.settings.web
    assert web.token is not None
    assert web.token.get_secret_value() == "web-token-value"
    assert (web.host, web.port, web.enabled) == ("127.0.0.1", 9474, False)


def test_a_web_secret_written_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\nauth = "basic"\nusername = "ops"\npassword = "hunter22"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [str(p) for p in caught.value.problems]
    assert any("web.password" in p and "must not be written" in p for p in problems), problems
    assert not any("hunter22" in p for p in problems)


def test_web_auth_without_its_secret_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[web]\nauth = "token"\n'))
    assert any("needs token" in str(p) for p in caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[web]\nauth = "token"\ntoken = { env = "NOPE_NOT_SET" }\n'))
    assert any("NOPE_NOT_SET" in str(p) for p in caught.value.problems)
