"""Server time of each web view page at the demo company's size and at 10x, against 200 ms.

For each scale it launches the demo company (simulated Salesforce, Zendesk, Jira, Pendo),
syncs it, builds the web view's data (the background derivation every page reads), then calls
the WSGI application directly for each page, chart and CSV several times: the time printed is
the server's own (routing, filtering, sorting, templates, SVG), with no network or browser in
it. Run:

    python benchmarks/web_pages.py                  # the demo's size and 10x
    python benchmarks/web_pages.py --scales 1 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from werkzeug.test import Client

from pmsync.app.runtime import Runtime
from pmsync.app.web.server import build_app
from pmsync.app.web.settings import WebSettings
from pmsync.logs import configure_logging
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import launch

BUDGET_MS = 200.0


def pages(app_snapshot_issue: str, account: str) -> list[str]:
    return [
        "/",
        "/?area=billing&segment=Enterprise&sort=tickets&dir=desc",
        "/?page=5",
        "/?format=csv",
        "/charts/trend.svg",
        "/charts/trend.svg?area=reporting",
        f"/issues/{app_snapshot_issue}",
        f"/accounts/{account}",
        f"/charts/usage.svg?account={account}",
        "/areas",
        "/areas?segment=SMB&weeks=52",
        "/charts/areas.svg?by=area&weeks=26",
        "/charts/areas.svg?by=segment&weeks=52",
        "/review",
        "/review?kind=ticket_account&page=2",
        "/freshness",
    ]


def measure(scale: int, repeat: int) -> None:
    size = CompanySize(
        accounts=300 * scale,
        contacts=900 * scale,
        users=1200 * scale,
        tickets=3000 * scale,
        issues=250 * scale,
    )
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size) as demo:
        config = str(demo.config_path)
        runtime = Runtime.load(config)
        runtime.run_once()
        app = build_app(runtime, WebSettings(), lambda: Runtime.load(config))
        started = time.perf_counter()
        snapshot = app.keeper.refresh_now()
        built = time.perf_counter() - started
        assert snapshot is not None, app.keeper.error
        top = max(snapshot.issues.values(), key=lambda r: r.arr)
        account = top.roll.provenance["accounts"][0]["ref"]
        print(
            f"\nscale {scale}x: {len(snapshot.world.tickets):,} tickets, "
            f"{len(snapshot.world.issues):,} issues, {len(snapshot.world.accounts):,} accounts; "
            f"data refresh (background) {built:.2f} s"
        )
        print(f"{'page':<58} {'median ms':>10} {'max ms':>8} {'of budget':>10}")
        client = Client(app)
        worst = 0.0
        for path in pages(top.key, account):
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                response = client.get(path)
                response.get_data()
                times.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            worst = max(worst, *times)
            print(
                f"{path[:58]:<58} {statistics.median(times):>10.1f} {max(times):>8.1f} "
                f"{max(times) / BUDGET_MS:>9.0%}"
            )
        print(f"slowest answer: {worst:.1f} ms = {worst / BUDGET_MS:.0%} of {BUDGET_MS:.0f} ms")
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure_logging("error")
    for scale in args.scales:
        measure(scale, args.repeat)


if __name__ == "__main__":
    main()
