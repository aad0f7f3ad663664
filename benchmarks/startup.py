"""Start-up cost: CPU seconds of `pmsync --help` and `pmsync status`, each a fresh process.

`status` runs against a configuration with one Zendesk connector (nothing is requested from it)
and a SQLite store created and migrated beforehand (or the store --store names, created there
if missing: a PostgreSQL URL, say, whose search_path names an existing schema of its own), so
the runs measure what a command costs when the store is already current. CPU is user + system
of the children (resource.getrusage), the median over --runs runs, next to `python -c pass`
for the interpreter's own share. Target: each <= 0.4 s; it prints the ratio to the target
(<= 1.0 meets it). Run:

    python benchmarks/startup.py
    python benchmarks/startup.py --runs 9
    python benchmarks/startup.py --store \
        'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dstartup'
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pmsync.sync.store.store import Store

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 0.4

CONFIG = """[store]
url = "{store}"
[mappings]
paths = ["{mappings}"]
[connectors.zendesk]
type = "zendesk"
base_url = "http://127.0.0.1:9"
streams = ["tickets"]
[connectors.zendesk.credentials]
email = "ops@example.com"
api_token = {{ env = "STARTUP_ZENDESK_TOKEN" }}
"""


def cpu_of(command: list[str], env: dict[str, str]) -> float:
    """User + system CPU seconds of one child process running `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--pmsync", default=str(Path(sys.executable).with_name("pmsync")), help="the executable"
    )
    parser.add_argument("--store", help="the store's URL (default: a SQLite file made here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or f"sqlite:///{Path(tmp) / 'pmsync.db'}"
        config = Path(tmp) / "pmsync.toml"
        config.write_text(CONFIG.format(store=store, mappings=REPO / "mappings"))
        env = {**os.environ, "STARTUP_ZENDESK_TOKEN": "startup-token"}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "pmsync --help": [args.pmsync, "--help"],
            "pmsync status": [args.pmsync, "-c", str(config), "status"],
        }
        # `status` reads a store and never creates one: `sync` would, here the Store class does.
        Store(store).engine.dispose()
        worst = 0.0
        for name, command in commands.items():
            runs = [cpu_of(command, env) for _ in range(args.runs)]
            median = statistics.median(runs)
            line = (
                f"{name:<16} CPU median {median:.3f} s (min {min(runs):.3f}, max {max(runs):.3f})"
            )
            if name.startswith("pmsync"):
                worst = max(worst, median / TARGET_S)
                line += f"  ratio to the {TARGET_S} s target {median / TARGET_S:.2f}"
            print(line)
    print(f"RATIO worst/target {worst:.2f} (<= 1.0 meets the target)")


if __name__ == "__main__":
    main()
