"""The web view over a small generated company, through its WSGI interface: every page and
every CSV, the security headers, sign-in, the review decision and what the next cycle makes of
it, and `pmsync serve` and `pmsync run` serving it. The browser tests are test_web_browser.py."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from werkzeug.test import Client, TestResponse

from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from pmsync.app.web.app import WebApp
from pmsync.app.web.security import CSP
from pmsync.app.web.server import build_app
from pmsync.app.web.settings import WebSettings
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import Demo, launch
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from tests.daemon_helpers import (
    DaemonProcess,
    daemon_env,
    start_sim,
    wait_until,
    write_daemon_config,
)

SMALL = CompanySize(accounts=60, contacts=150, users=200, tickets=500, issues=50, usage_days=10)
HOST = "http://127.0.0.1:9474"


@dataclass
class World:
    demo: Demo
    runtime: Runtime
    app: WebApp
    client: Client


def make_app(runtime: Runtime, config: Path, **settings: Any) -> WebApp:
    web = WebSettings.model_validate(settings)
    app = build_app(runtime, web, lambda: Runtime.load(str(config)))
    app.keeper.refresh_now()
    return app


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    demo = launch(tmp_path_factory.mktemp("web") / "demo", size=SMALL)
    runtime = Runtime.load(str(demo.config_path))
    runtime.run_once()
    with runtime.writeback_lock():
        runtime.apply(runtime.plan(derived=runtime.derive()))
    app = make_app(runtime, demo.config_path)
    yield World(demo, runtime, app, Client(app))
    app.keeper.stop()
    runtime.close()
    demo.stop()


def get(client: Client, path: str, **headers: str) -> TestResponse:
    return client.get(path, base_url=HOST, headers=headers)


def page_paths(world: World) -> list[str]:
    snapshot = world.app.keeper.snapshot
    assert snapshot is not None
    top = sorted(snapshot.issues.values(), key=lambda r: -r.arr)[0]
    account = top.roll.provenance["accounts"][0]["ref"]
    return [
        "/",
        "/?area=billing&segment=Enterprise",
        f"/issues/{top.key}",
        f"/accounts/{account}",
        "/areas",
        "/areas?segment=SMB&weeks=12",
        "/review",
        "/freshness",
    ]


def test_every_page_answers_with_the_security_headers_and_no_script(world: World) -> None:
    for path in page_paths(world):
        response = get(world.client, path)
        assert response.status_code == 200, path
        headers = response.headers
        assert headers["Content-Security-Policy"] == CSP
        assert "script-src" not in CSP
        assert "default-src 'none'" in CSP
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store"
        html = response.get_data(as_text=True)
        assert "<script" not in html.lower(), path
        assert " style=" not in html, path
        assert " on" + "click" not in html.lower(), path
        for src in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert src.startswith(("/", "?", "#", "http://127.0.0.1")), (path, src)


def test_every_table_exports_every_row_as_csv(world: World) -> None:
    exported = 0
    for path in page_paths(world):
        html = get(world.client, path).get_data(as_text=True)
        tables = re.findall(r'<section class="table" id="([a-z_]+)"', html)
        assert tables, path
        for name in tables:
            separator = "&" if "?" in path else "?"
            response = get(world.client, f"{path}{separator}format=csv&table={name}")
            assert response.status_code == 200, (path, name)
            assert response.mimetype == "text/csv"
            assert "attachment" in response.headers["Content-Disposition"]
            rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
            count = re.search(
                rf'id="{name}">\s*<div class="table-head">\s*<h2>[^<]*<span class="count">'
                r"\(([\d,]+)\)",
                html,
            )
            assert count is not None, (path, name)
            assert len(rows) - 1 == int(count.group(1).replace(",", "")), (path, name)
            exported += 1
    assert exported >= 14


def test_the_top_issue_and_its_arr_equal_the_report(world: World) -> None:
    result = CliRunner().invoke(
        cli,
        ["-c", str(world.demo.config_path), "report", "--format", "json", "--section", "issues"],
    )
    assert result.exit_code == 0, result.output
    top = json.loads(result.output)["issues"][0]
    rows = list(
        csv.DictReader(io.StringIO(get(world.client, "/?format=csv").get_data(as_text=True)))
    )
    assert rows[0]["issue"] == top["issue"]
    assert float(rows[0]["arr"]) == pytest.approx(top["arr"])
    assert [r["issue"] for r in rows[:20]] == [
        r["issue"] for r in json.loads(result.output)["issues"]
    ]


def test_filters_keep_only_matching_issues_and_ignore_unknown_values(world: World) -> None:
    snapshot = world.app.keeper.snapshot
    assert snapshot is not None
    every = list(
        csv.DictReader(io.StringIO(get(world.client, "/?format=csv").get_data(as_text=True)))
    )
    billing = list(
        csv.DictReader(
            io.StringIO(get(world.client, "/?area=billing&format=csv").get_data(as_text=True))
        )
    )
    assert 0 < len(billing) < len(every)
    for row in billing:
        assert "billing" in snapshot.issues[snapshot.issue_by_key[row["issue"]]].areas
    nonsense = get(world.client, "/?area=%3Cscript%3E&status=nope&format=csv")
    assert len(list(csv.DictReader(io.StringIO(nonsense.get_data(as_text=True))))) == len(every)


def test_no_secret_and_no_raw_payload_reaches_a_page(world: World) -> None:
    secrets = list(world.demo.env.values())
    raw_only = "support@vendor.example"  # in every raw Zendesk ticket, mapped nowhere
    for path in page_paths(world):
        for suffix in ("", "&format=csv" if "?" in path else "?format=csv"):
            text = get(world.client, path + suffix).get_data(as_text=True)
            assert raw_only not in text, path
            for secret in secrets:
                assert secret not in text, path


def test_unknown_pages_and_methods_get_an_error_page_with_the_headers(world: World) -> None:
    missing = get(world.client, "/issues/NOPE-404")
    assert missing.status_code == 404
    assert "NOPE-404" in missing.get_data(as_text=True)
    assert missing.headers["Content-Security-Policy"] == CSP
    assert world.client.post("/", base_url=HOST).status_code == 405
    assert get(world.client, "/static/../app.py").status_code == 404
    chart = get(world.client, "/charts/areas.svg?by=segment")
    assert chart.status_code == 200
    assert chart.mimetype == "image/svg+xml"
    assert "<svg" in chart.get_data(as_text=True)
    assert "script" not in chart.headers["Content-Security-Policy"]


def ambiguous_item(world: World) -> tuple[str, str]:
    snapshot = world.app.keeper.snapshot
    assert snapshot is not None
    item = next(
        u for u in snapshot.derived.links.unresolved if u.kind == "ticket_account" and u.candidates
    )
    account = snapshot.world.accounts[item.candidates[-1]]
    return item.ticket, account.key


def csrf_of(world: World) -> str:
    html = get(world.client, "/review").get_data(as_text=True)
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None
    return found.group(1)


def test_a_review_decision_needs_the_csrf_token_and_this_origin(world: World) -> None:
    overrides = Path(world.runtime.mappings.overrides_path or "")
    before = overrides.read_text()
    ticket, account = ambiguous_item(world)
    form = {"ticket": ticket, "kind": "ticket_account", "choice": account}
    assert world.client.post("/review/decide", base_url=HOST, data=form).status_code == 403
    token = csrf_of(world)
    foreign = world.client.post(
        "/review/decide",
        base_url=HOST,
        data={**form, "csrf": token},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    unknown = world.client.post(
        "/review/decide",
        base_url=HOST,
        data={**form, "csrf": token, "choice": "", "other": "No Such Company"},
    )
    assert unknown.status_code == 400
    assert "no account" in unknown.get_data(as_text=True)
    assert overrides.read_text() == before


def test_a_review_decision_lands_in_the_overrides_file_and_the_next_cycles_links(
    world: World,
) -> None:
    overrides = Path(world.runtime.mappings.overrides_path or "")
    before = overrides.read_text()
    ticket, account = ambiguous_item(world)
    response = world.client.post(
        "/review/decide",
        base_url=HOST,
        data={
            "ticket": ticket,
            "kind": "ticket_account",
            "choice": account,
            "csrf": csrf_of(world),
        },
        headers={"Origin": HOST},
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/review?decided=")
    after = overrides.read_text()
    assert f'"{ticket}" = "{account}"' in after
    assert "decided in the web view by local" in after
    for line in before.splitlines():  # every comment and entry is still there
        assert line in after
    derived = world.runtime.derive()  # the next cycle
    link = derived.links.account_of[ticket]
    assert (link.rule, link.target.split(":", 1)[1]) == ("override", account)
    snapshot = world.app.keeper.refresh_now()
    assert snapshot is not None
    assert ticket not in {u.ticket for u in snapshot.derived.links.unresolved}
    banner = get(world.client, response.headers["Location"]).get_data(as_text=True)
    assert "takes effect at the next cycle" in banner


def test_token_auth_sends_browsers_to_sign_in_and_scripts_need_the_bearer_token(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(world.runtime, world.demo.config_path, auth="token", token="a-long-web-token")
    client = Client(app)
    assert get(client, "/?format=csv").status_code == 401
    page = get(client, "/areas", Accept="text/html")
    assert page.status_code == 303
    assert page.headers["Location"].startswith("/login?next=%2Fareas")
    assert get(client, "/?format=csv", Authorization="Bearer a-long-web-token").status_code == 200
    form = get(client, "/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
    assert csrf is not None
    refused = client.post(
        "/login", base_url=HOST, data={"token": "wrong", "csrf": csrf.group(1), "next": "/areas"}
    )
    assert refused.status_code == 401
    signed = client.post(
        "/login",
        base_url=HOST,
        data={"token": "a-long-web-token", "csrf": csrf.group(1), "next": "//evil.example/"},
    )
    assert signed.status_code == 303
    assert signed.headers["Location"] == "/"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "a-long-web-token" not in cookie
    assert get(client, "/areas").status_code == 200
    app.keeper.stop()


def test_the_view_says_it_is_preparing_until_the_first_data_is_ready(world: World) -> None:
    app = build_app(world.runtime, WebSettings(), lambda: Runtime.load(str(world.demo.config_path)))
    response = get(Client(app), "/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert 'http-equiv="refresh"' in response.get_data(as_text=True)


@pytest.mark.slow
def test_pmsync_serve_serves_the_view_until_sigterm(world: World) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pmsync.app.cli",
            "-c",
            str(world.demo.config_path),
            "serve",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert url is not None, line

        def home() -> bool:
            try:
                with urllib.request.urlopen(url.group(1), timeout=5) as answer:  # noqa: S310
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_until(home, "the home page", timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_the_daemon_serves_the_view_when_web_is_enabled(tmp_path: Path) -> None:
    sim = start_sim()
    try:
        generate(sim, organizations=5, users=20, tickets=60, seed=3, jira_keys=[])
        sims: dict[str, ZendeskSimulator] = {"zendesk": sim}
        config = write_daemon_config(
            tmp_path,
            store_url=f"sqlite:///{tmp_path / 'pmsync.db'}",
            sims=sims,
            poll="1h",
            daemon='[web]\nenabled = true\nport = 0\nrefresh_interval = "0.2s"',
        )
        daemon = DaemonProcess(config, daemon_env(sims), tmp_path / "daemon.log").start()
        try:
            url = daemon.wait_for("web_listening")["url"]
            daemon.wait_for("stream_done")

            def fresh() -> str | None:
                try:
                    with urllib.request.urlopen(url + "freshness", timeout=5) as answer:  # noqa: S310
                        text: str = answer.read().decode()
                except OSError:
                    return None
                return text if "zendesk.tickets" in text else None

            page = wait_until(fresh, "the freshness page", timeout=60)
            assert "ok" in page
            assert daemon.terminate()[0] == 0
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.kill()
    finally:
        sim.stop()
