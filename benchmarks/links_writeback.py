"""What linking, rollups and write-back cost as the company grows, and what a quiet cycle writes.

For each scale it launches the demo company (simulated Salesforce, Zendesk and Jira), syncs it,
then times: the first derive (every link and rollup new), the write-back plan and its apply, a
second quiet cycle (sync + derive + plan), and the cycle after one account's ARR changed. It
prints seconds, the writes each step made, and the requests the quiet cycle sent. Run:

    python benchmarks/links_writeback.py                  # the demo's size and 10x
    python benchmarks/links_writeback.py --scales 1 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pmsync.app.runtime import Runtime
from pmsync.logs import configure_logging
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import launch


def measure(scale: int) -> dict[str, float | int]:
    size = CompanySize(
        accounts=300 * scale,
        contacts=900 * scale,
        users=1200 * scale,
        tickets=3000 * scale,
        issues=250 * scale,
    )
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size, pendo=False) as demo:
        runtime = Runtime.load(str(demo.config_path))
        runtime.run_once()
        figures: dict[str, float | int] = {"tickets": size.tickets, "issues": size.issues}
        started = time.perf_counter()
        derived = runtime.derive()
        figures["derive_first_s"] = time.perf_counter() - started
        started = time.perf_counter()
        plan = runtime.plan(derived=derived)
        figures["plan_s"] = time.perf_counter() - started
        started = time.perf_counter()
        result = runtime.apply(plan, confirm=True)
        figures["apply_s"] = time.perf_counter() - started
        figures["first_writes"] = len(result.applied)
        sims = demo.simulators
        for sim in (sims.salesforce, sims.zendesk, sims.jira):
            sim.reset_log()
        started = time.perf_counter()
        runtime.run_once()
        quiet = runtime.plan()
        figures["quiet_cycle_s"] = time.perf_counter() - started
        figures["quiet_writes"] = len(quiet.writes)
        figures["quiet_requests"] = sum(
            len(s.requests) for s in (sims.salesforce, sims.zendesk, sims.jira)
        )
        account = max(demo.company.truth.accounts.values(), key=lambda a: a.arr)
        row = sims.salesforce.table("Account").rows[account.id]
        sims.salesforce.update("Account", account.id, {"ARR__c": float(row["ARR__c"]) + 1000})
        started = time.perf_counter()
        runtime.run_once()
        changed = runtime.plan()
        figures["one_change_cycle_s"] = time.perf_counter() - started
        figures["one_change_targets"] = len({w.target_key for w in changed.writes})
        runtime.close()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    configure_logging("error")
    columns = [
        "tickets",
        "issues",
        "derive_first_s",
        "plan_s",
        "apply_s",
        "first_writes",
        "quiet_cycle_s",
        "quiet_writes",
        "quiet_requests",
        "one_change_cycle_s",
        "one_change_targets",
    ]
    print(" ".join(f"{c:>18}" for c in columns))
    for scale in args.scales:
        figures = measure(scale)
        print(
            " ".join(
                f"{figures[c]:>18.2f}" if isinstance(figures[c], float) else f"{figures[c]:>18}"
                for c in columns
            )
        )


if __name__ == "__main__":
    main()
