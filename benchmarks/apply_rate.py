"""Write-back rate: does `apply` keep Jira busy at the request rate the configuration allows?

It launches the demo company (simulated Salesforce, Zendesk and Jira), sets Jira's
`requests_per_second` to --rate, syncs, derives and plans, then applies the plan and reads the
Jira simulator's own log: every request sent during the apply, and the seconds between the
first and the last of them. The achieved rate is (requests - 1) / seconds (the intervals the
pacer spaced out); it prints achieved / configured. Target: >= 0.95. Run:

    python benchmarks/apply_rate.py                 # the demo's size, 10 requests/s
    python benchmarks/apply_rate.py --rate 20 --scale 2
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from pmsync.app.runtime import Runtime
from pmsync.logs import configure_logging
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import launch

TARGET = 0.95


def measure(scale: int, rate: int) -> dict[str, float]:
    size = CompanySize(
        accounts=300 * scale,
        contacts=900 * scale,
        users=1200 * scale,
        tickets=3000 * scale,
        issues=250 * scale,
    )
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size, pendo=False) as demo:
        config = demo.config_path.read_text()
        paced = re.sub(r"(?m)^requests_per_second = \d+$", f"requests_per_second = {rate}", config)
        demo.config_path.write_text(paced)
        runtime = Runtime.load(str(demo.config_path))
        try:
            runtime.run_once()
            plan = runtime.plan()
            jira = demo.simulators.jira
            jira.reset_log()
            started = time.time()
            result = runtime.apply(plan, confirm=True)
            elapsed = time.time() - started
            sent = [r.at for r in jira.requests]
        finally:
            runtime.close()
    span = max(sent) - min(sent) if len(sent) > 1 else 0.0
    achieved = (len(sent) - 1) / span if span > 0 else 0.0
    return {
        "writes": float(len(result.applied)),
        "jira_requests": float(len(sent)),
        "apply_s": elapsed,
        "span_s": span,
        "achieved_per_s": achieved,
        "ratio": achieved / rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="demo company size multiple")
    parser.add_argument("--rate", type=int, default=10, help="Jira requests_per_second")
    args = parser.parse_args()
    configure_logging("error")
    figures = measure(args.scale, args.rate)
    print(
        f"apply: {figures['writes']:.0f} writes, {figures['jira_requests']:.0f} Jira requests "
        f"in {figures['span_s']:.2f} s (apply {figures['apply_s']:.2f} s): "
        f"{figures['achieved_per_s']:.2f}/s of {args.rate}/s configured"
    )
    print(f"RATIO achieved/configured {figures['ratio']:.3f} (target >= {TARGET})")
    sys.exit(0 if figures["ratio"] >= TARGET else 1)


if __name__ == "__main__":
    main()
