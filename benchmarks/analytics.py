"""Figures for the product-analytics connectors: requests and time per sync, into SQLite.

    python benchmarks/analytics.py [--accounts 200] [--days 90]

Runs `pmsync sync --once` (in process, through Runtime) against the Pendo and PostHog
simulators: a full backfill, then a caught-up cycle, and prints requests, records and seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pmsync.app.runtime import Runtime
from pmsync.logs import configure_logging
from pmsync.simulators.pendo import PendoSimulator
from pmsync.simulators.pendo import generate as generate_pendo
from pmsync.simulators.posthog import PostHogSimulator
from pmsync.simulators.posthog import generate as generate_posthog

REPO = Path(__file__).resolve().parent.parent


def posthog_block(sim: PostHogSimulator) -> str:
    """The config.example.toml PostHog example, uncommented, pointed at the simulator."""
    lines = (REPO / "config.example.toml").read_text().splitlines()
    start = lines.index("# [connectors.posthog]")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    text = "\n".join(block)
    text = text.replace("https://us.posthog.com", sim.base_url)
    text = text.replace('{ credential = "posthog_personal_api_key" }', '{ env = "BENCH_PH" }')
    return text.replace("requests_per_minute = 2 ", "requests_per_minute = 100000 ")


def run(config: Path, streams: list[str]) -> tuple[float, int, int]:
    runtime = Runtime.load(str(config))
    started = time.perf_counter()
    results = runtime.run_once(streams, sweep=False)
    seconds = time.perf_counter() - started
    runtime.close()
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(f"sync failed: {failed[0].error}")
    return seconds, sum(r.records_read for r in results), sum(r.written for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    configure_logging("warning", "json")
    pendo = PendoSimulator()
    posthog = PostHogSimulator()
    pendo.start()
    posthog.start()
    generate_pendo(pendo, accounts=args.accounts, days=args.days + 1, seed=1)
    generate_posthog(posthog, accounts=args.accounts, days=args.days + 1, seed=1)
    os.environ["BENCH_PENDO"] = pendo.integration_key
    os.environ["BENCH_PH"] = posthog.api_key
    print(f"accounts={args.accounts} days={args.days}")
    for slice_days in (1, 7):
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "pmsync.toml"
            config.write_text(
                f"""[store]
url = "sqlite:///{Path(tmp) / "bench.db"}"
[mappings]
paths = ["{REPO / "mappings" / "pendo.toml"}", "{REPO / "mappings" / "examples" / "posthog.toml"}"]
[connectors.pendo]
type = "pendo"
base_url = "{pendo.base_url}"
integration_key = {{ env = "BENCH_PENDO" }}
backfill_days = {args.days}
slice_days = {slice_days}
requests_per_minute = 100000
{posthog_block(posthog)}
"""
            )
            for label in ("pendo.usage", "posthog.usage"):
                if label == "posthog.usage" and slice_days != 1:
                    continue
                for phase in ("backfill", "caught-up cycle"):
                    pendo.reset_log()
                    posthog.reset_log()
                    seconds, read, written = run(config, [label])
                    requests = len(pendo.requests) + len(posthog.requests)
                    tag = f"{label} slice_days={slice_days}" if label == "pendo.usage" else label
                    print(
                        f"{tag:28} {phase:16} requests={requests:5} records={read:7} "
                        f"written={written:7} seconds={seconds:6.2f} "
                        f"records/s={read / seconds if seconds else 0:9.0f}"
                    )
    pendo.stop()
    posthog.stop()


if __name__ == "__main__":
    main()
