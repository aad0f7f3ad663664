"""`pmsync sync --once` with the example configuration when no API can be reached.

Rewrites config.example.toml so that every connector points at a host that does not resolve
(the `.invalid` top-level domain, RFC 2606) or, with `--refused`, at a local port nobody
listens on; gives each credential a dummy value; then runs `pmsync sync --once` as a process
and prints its wall time, the longest stretch without a log line, and the errors it reported.
Issue 12 (item 6) measured 117 s and a 46 s silence on this run. Run:

    python benchmarks/unreachable_hosts.py
    python benchmarks/unreachable_hosts.py --refused
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
CREDENTIALS = (
    "pmsync_zendesk_api_token",
    "pmsync_salesforce_client_secret",
    "pmsync_pendo_integration_key",
    "pmsync_jira_api_token",
)


def closed_port() -> int:
    """A local port that refuses connections (bound a moment ago, closed now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable_config(directory: Path, *, refused: bool) -> Path:
    """config.example.toml with every API host unreachable and the store in `directory`."""
    port = closed_port()
    hosts = {
        "zendesk": "https://acme.zendesk.invalid",
        "salesforce": "https://acme.my.salesforce.invalid",
        "pendo": "https://app.pendo.invalid",
        "jira": "https://acme.atlassian.invalid",
    }
    if refused:
        hosts = dict.fromkeys(hosts, f"http://127.0.0.1:{port}")
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('base_url = "https://acme.zendesk.com"', f'base_url = "{hosts["zendesk"]}"')
    text = text.replace('base_url = "https://acme.atlassian.net"', f'base_url = "{hosts["jira"]}"')
    for kind in ("salesforce", "pendo"):
        text = text.replace(f'type = "{kind}"', f'type = "{kind}"\nbase_url = "{hosts[kind]}"')
    text = text.replace('paths = ["mappings"]', f'paths = ["{REPO / "mappings"}"]')
    text = text.replace("[store]", f'[store]\nurl = "sqlite:///{directory / "pmsync.db"}"', 1)
    path = directory / "pmsync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(config: Path, credentials: Path) -> tuple[float, float, list[str], int]:
    """(seconds, longest silence in seconds, error lines, exit code) of `sync --once`."""
    command = [sys.executable, "-m", "pmsync.app.cli", "-c", str(config), "--log-format", "json"]
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)}
    started = time.monotonic()
    process = subprocess.Popen(
        [*command, "sync", "--once"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    last, silence, errors = started, 0.0, []
    for line in process.stderr:
        now = time.monotonic()
        silence, last = max(silence, now - last), now
        if line.startswith(b"{"):
            event = orjson.loads(line)
            if event.get("level") in ("warning", "error") and event.get("error"):
                errors.append(f"{event['event']}: {event['error']}")
    code = process.wait()
    finished = time.monotonic()
    return finished - started, max(silence, finished - last), errors, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refused", action="store_true", help="a closed local port, not DNS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pmsync-unreachable-") as temporary:
        directory = Path(temporary)
        credentials = directory / "credentials"
        credentials.mkdir()
        for name in CREDENTIALS:
            (credentials / name).write_text("not-a-real-secret\n", encoding="utf-8")
        config = unreachable_config(directory, refused=args.refused)
        seconds, silence, errors, code = run(config, credentials)
    print(f"sync --once: {seconds:.1f} s, exit {code}, longest silence {silence:.1f} s")
    for error in dict.fromkeys(errors):
        print(f"  {error}")


if __name__ == "__main__":
    main()
