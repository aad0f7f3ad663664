"""The web view in a real browser: Debian's Chromium driven by Playwright, on the demo company.

One demo company and one server for the module. The tests load each page (and screenshot it;
`PMSYNC_SCREENSHOTS=docs` saves the README's screenshots, otherwise they go to a temporary
directory, so a test run leaves the checkout as it was), compare the top issue with `pmsync report`, follow
issue -> account -> issue, filter by product area, and decide one review item, then find it in
the overrides file and in the next cycle's links.

Chromium comes from Debian (`apt-get install chromium`; `make test` installs it as root):
browser downloads are not possible here. Without it these tests are skipped, unless
PMSYNC_REQUIRE_BROWSER=1 (CI) turns that into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import Locator, Page, sync_playwright

from pmsync.app.cli import cli
from pmsync.app.demo import DemoRun, run_demo
from pmsync.app.runtime import Runtime
from pmsync.app.web.server import WebServer, build_app
from pmsync.app.web.settings import WebSettings

CHROMIUM = os.environ.get("PMSYNC_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = os.environ.get("PMSYNC_SCREENSHOTS")
REQUIRED = os.environ.get("PMSYNC_REQUIRE_BROWSER") == "1"

if not shutil.which(CHROMIUM) and not REQUIRED:
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow


@dataclass
class Site:
    run: DemoRun
    server: WebServer
    page: Page
    shots: Path

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")

    def open(self, path: str) -> Page:
        response = self.page.goto(self.url + path)
        assert response is not None, path
        assert response.status == 200, path
        return self.page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"web-{name}.png"), full_page=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    run = run_demo(tmp_path_factory.mktemp("browser") / "demo")
    config = str(run.demo.config_path)
    settings = WebSettings.model_validate({"port": 0, "refresh_interval": "0.2s"})
    app = build_app(run.runtime, settings, lambda: Runtime.load(config))
    server = WebServer(app, settings)
    server.start()
    assert app.keeper.wait_ready(60) is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.mktemp("shots")
            yield Site(run, server, page, shots)
        finally:
            browser.close()
            server.stop()
            run.close()
    assert not errors, errors  # no CSP violation, no failed resource


def report_issues(run: DemoRun) -> list[dict[str, object]]:
    result = CliRunner().invoke(
        cli, ["-c", str(run.demo.config_path), "report", "--format", "json", "--section", "issues"]
    )
    assert result.exit_code == 0, result.output
    issues: list[dict[str, object]] = json.loads(result.output)["issues"]
    return issues


def cell(row: Locator, column: str) -> str:
    text: str = row.locator(f'td[data-column="{column}"]').inner_text()
    return text.strip()


def test_the_home_page_ranks_issues_as_the_report_does(site: Site) -> None:
    page = site.open("/")
    top = report_issues(site.run)[0]
    first = page.locator('table[data-table="issues"] tbody tr').first
    assert cell(first, "issue") == top["issue"]
    assert cell(first, "arr") == f"{top['arr']:,.0f}"
    assert page.locator("figure.chart img").evaluate("img => img.naturalWidth") > 0
    site.shot("issues")


def test_issue_to_account_to_issue(site: Site) -> None:
    page = site.open("/")
    key = cell(page.locator('table[data-table="issues"] tbody tr').first, "issue")
    page.locator('table[data-table="issues"] tbody tr').first.locator(
        'td[data-column="issue"] a'
    ).click()
    assert page.locator("h1 .key").inner_text() == key
    assert page.locator('table[data-table="accounts"] tbody tr').count() > 0
    site.shot("issue")
    using = page.locator('table[data-table="accounts"] tbody tr').filter(
        has=page.locator('td[data-column="active_users"]:not(:empty)')
    )
    account_link = using.first.locator('td[data-column="account"] a')
    account = account_link.inner_text()
    account_link.click()
    assert page.locator("h1").inner_text() == account
    requests = page.locator('table[data-table="requests"] td[data-column="issue"] a')
    assert key in requests.all_inner_texts()
    assert page.locator("figure.chart img").evaluate("img => img.naturalWidth") > 0
    site.shot("account")
    requests.filter(has_text=key).first.click()
    assert page.locator("h1 .key").inner_text() == key


def test_filtering_by_product_area(site: Site) -> None:
    page = site.open("/")
    total = page.locator("p.summary strong").first.inner_text()
    page.select_option('select[name="area"]', "billing")
    page.locator("form.filters button[type=submit]").click()
    assert "area=billing" in page.url
    assert page.locator("p.summary strong").first.inner_text() != total
    snapshot = site.server.app.keeper.snapshot
    assert snapshot is not None
    keys = page.locator('table[data-table="issues"] td[data-column="issue"]').all_inner_texts()
    assert keys
    for key in keys:
        assert "billing" in snapshot.issues[snapshot.issue_by_key[key.strip()]].areas


def test_product_areas_and_freshness_pages(site: Site) -> None:
    page = site.open("/areas")
    images = page.locator("figure.chart img")
    assert images.count() == 2
    for n in range(2):
        assert images.nth(n).evaluate("img => img.naturalWidth") > 0
    site.shot("areas")
    page = site.open("/freshness")
    streams = page.locator('table[data-table="streams"] td[data-column="stream"]')
    assert "zendesk.tickets" in streams.all_inner_texts()
    site.shot("freshness")


def test_deciding_a_review_item_writes_the_overrides_file_for_the_next_cycle(site: Site) -> None:
    page = site.open("/review?kind=ticket_account")
    site.shot("review")
    row = (
        page.locator('table[data-table="review"] tbody tr')
        .filter(has=page.locator("select option:nth-child(3)"))
        .first
    )
    ticket_text = cell(row, "ticket")
    choice = row.locator("select option").nth(1)
    account_id = choice.get_attribute("value")
    assert account_id
    row.locator("select").select_option(account_id)
    row.locator("button[type=submit]").click()
    assert page.locator(".banner.ok").inner_text().startswith("Decision for ticket")
    run = site.run
    overrides = Path(run.runtime.mappings.overrides_path or "")
    text = overrides.read_text()
    entry = next(line for line in text.splitlines() if f'= "{account_id}"' in line)
    ticket = entry.split("=")[0].strip().strip('"')
    assert ticket.endswith(ticket_text.split(":")[-1])
    assert "# Manual link decisions" in text  # the file's own comments are kept
    run.runtime.close()
    run.runtime = Runtime.load(str(run.demo.config_path))
    derived = run.runtime.derive()  # the next cycle
    link = derived.links.account_of[ticket]
    assert link.rule == "override"
    assert link.target.endswith(account_id)
