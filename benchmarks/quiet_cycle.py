"""Requests a quiet cycle costs, per connector: `sync --once`, `plan`, `apply` as three processes.

Launches the demo company (simulated Salesforce, Zendesk, Jira and Pendo, in this process), then
runs `pmsync sync --once`, `pmsync plan` and `pmsync apply` as three separate processes, three
times over with nothing changed in between:
  * cycle 1 fills the store and writes every figure;
  * cycle 2 reads back what cycle 1 wrote (edits move Jira's `updated` and Salesforce's stamp);
  * cycle 3 is the second quiet cycle: what it costs is printed, per connector, next to the
    target of issue 11 (item 9): one request per stream plus one per connector, no write.
Before cycles 2 and 3 it waits for the next minute to settle, so Jira's search has a new window
to read, as it would one poll interval later (Jira searches whole settled minutes). Requests are
counted by the simulators (logins and failed calls included). Run:

    python benchmarks/quiet_cycle.py
    python benchmarks/quiet_cycle.py --no-wait     # faster; Jira may then read no window at all
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pmsync.simulators.base import Simulator
from pmsync.simulators.demo import Demo, launch

WRITES = ("PUT", "PATCH", "POST", "DELETE")
READS_BY_POST = ("/oauth2/token", "/search", "/aggregation")  # logins and queries write nothing


def cli(demo: Demo, *args: str) -> None:
    command = [sys.executable, "-m", "pmsync.app.cli", "--log-level", "error"]
    command += ["-c", str(demo.config_path), *args]
    done = subprocess.run(
        command, env={**os.environ, **demo.env}, capture_output=True, check=False, timeout=600
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr.decode()[-2000:]}")


def cycle(demo: Demo) -> None:
    cli(demo, "sync", "--once")
    cli(demo, "plan")
    cli(demo, "apply")


def wait_for_next_minute() -> None:
    """Until a new minute has passed Jira's settle lag (one minute, the default)."""
    time.sleep(60 - time.time() % 60 + 1)


def streams(demo: Demo) -> dict[str, int]:
    from pmsync.app.runtime import Runtime

    os.environ.update(demo.env)
    runtime = Runtime.load(str(demo.config_path))
    try:
        counted: Counter[str] = Counter(job.connector for job in runtime.jobs())
        return dict(counted)
    finally:
        runtime.close()


def endpoint(path: str) -> str:
    for marker in ("/services/data/v59.0/", "/rest/api/2/", "/api/v2/", "/api/", "/services/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    parts = [p for p in path.split("/") if p]
    named = ["{id}" if _is_id(p) else p for p in parts]
    return "/".join(named[:3])


def _is_id(part: str) -> bool:
    """A record id in a path (a number, a Salesforce id, an issue key), not an endpoint name."""
    bare = part.removesuffix(".json")
    return bare.isdigit() or (len(bare) >= 15 and bare.isalnum()) or "-" in bare


def report(name: str, sim: Simulator, stream_count: int) -> bool:
    requests = list(sim.requests)
    writes = [
        r for r in requests if r.method in WRITES and not any(m in r.path for m in READS_BY_POST)
    ]
    target = stream_count + 1
    detail = Counter(f"{r.method} {endpoint(r.path)}" for r in requests)
    shown = ", ".join(f"{k} x{v}" for k, v in sorted(detail.items()))
    ok = len(requests) <= target and not writes
    print(
        f"  {name:<11} {stream_count:>7} {target:>7} {len(requests):>9} {len(writes):>7}  "
        f"{'ok' if ok else 'OVER'}   [{shown}]"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-wait", action="store_true", help="Do not wait for Jira's minute.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp) / "demo") as demo:
        sims = {
            "salesforce": demo.simulators.salesforce,
            "zendesk": demo.simulators.zendesk,
            "jira": demo.simulators.jira,
        }
        if demo.simulators.pendo is not None:
            sims["pendo"] = demo.simulators.pendo
        counts = streams(demo)
        started = time.perf_counter()
        cycle(demo)
        for _quiet in range(2):
            if not args.no_wait:
                wait_for_next_minute()
            for sim in sims.values():
                sim.reset_log()
            cycle(demo)
        seconds = time.perf_counter() - started
        print("\nThe second quiet cycle (sync --once, plan, apply as three processes):")
        print(f"  {'connector':<11} {'streams':>7} {'target':>7} {'requests':>9} {'writes':>7}")
        results = [report(name, sim, counts.get(name, 0)) for name, sim in sims.items()]
        total = sum(len(s.requests) for s in sims.values())
        target = sum(counts.values()) + len(counts)
        print(f"  {'all':<11} {sum(counts.values()):>7} {target:>7} {total:>9}")
        print(f"\n({seconds:.0f} s for the three cycles)")
        print("all targets met" if all(results) else "TARGET MISSED")
        return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
