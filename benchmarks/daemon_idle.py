"""What `pmsync run` costs while nothing changes: CPU share, requests per stream per poll, RSS.

Launches the demo company at the given size (simulated Salesforce, Zendesk, Jira, Pendo, in
this process), starts `pmsync run` on it with a short poll interval, waits until its first
cycles have written everything back and it is idle (no write for two polls), then watches it
for a few minutes, sending SIGHUP (a reload) halfway. It prints the process's CPU share over
the window, the share scaled to a 45 s poll (the work of an idle cycle is per poll, so the share
scales with poll / 45; the figure also holds the timers' own overhead, scaled as if it were
per poll too, which overstates it), the requests each stream sent per poll, and RSS over time.
Targets (issue 14, item 4): <= 2% of a core at a 45 s poll, no request beyond one per stream
per poll, RSS <= 200 MiB and flat over reloads. Run:

    python benchmarks/daemon_idle.py                                 # 20k tickets, 1,500 issues
    python benchmarks/daemon_idle.py --tickets 3000 --issues 250 --minutes 2 --poll 10
    python benchmarks/daemon_idle.py --links-census 1h     # Zendesk's links census hourly
    python benchmarks/daemon_idle.py --detail jira         # every request Jira saw, in order

Zendesk lists its Jira links in full every `links_census_interval` (default "0s": every cycle,
so a removed link stops counting at the next one); `--links-census` sets it for the run.

`--warm-up` starts the window only once the daemon has read back its own first write-back:
Jira searches `updated` by the minute, so the issues pmsync just wrote come back once when
their minute settles (`settle_lag` after it) and again in every pass whose `overlap` still
reaches that minute. After the last write the benchmark therefore also waits settle_lag +
overlap + one minute (the minute the write fell in) + one poll (4 min 15 s with the defaults
and a 15 s poll). Without it, the window holds those reads (about 22 Jira pages at 1,500
issues): true of a daemon's first minutes, not of it idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

from pmsync.app.runtime import Runtime
from pmsync.connectors.jira.settings import JiraSettings
from pmsync.simulators.base import Simulator
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import Demo, launch

WRITES = ("PUT", "PATCH", "POST", "DELETE")
READS_BY_POST = ("/oauth2/token", "/search", "/aggregation")
TARGET_SHARE = 0.02
TARGET_RSS_MIB = 200
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def writes(sims: dict[str, Simulator]) -> int:
    return sum(
        1
        for sim in sims.values()
        for r in sim.requests
        if r.method in WRITES and not any(m in r.path for m in READS_BY_POST)
    )


def streams_per_connector(demo: Demo) -> dict[str, int]:
    os.environ.update(demo.env)
    runtime = Runtime.load(str(demo.config_path))
    try:
        return dict(Counter(job.connector for job in runtime.jobs()))
    finally:
        runtime.close()


def readback_seconds(demo: Demo) -> float:
    """How long after its last write Jira's searches still read what was written: settle_lag +
    overlap of the slowest Jira connector, plus the minute the write fell in."""
    os.environ.update(demo.env)
    runtime = Runtime.load(str(demo.config_path))
    try:
        lags = [
            (s.settle_lag + s.overlap).total_seconds()
            for s in runtime.config.connectors.values()
            if isinstance(s, JiraSettings)
        ]
    finally:
        runtime.close()
    return max(lags, default=0.0) + 60


def last_write_at(sims: dict[str, Simulator]) -> float:
    """When the last write reached any simulator (time.time()), 0 when none did."""
    return max(
        (
            r.at
            for sim in sims.values()
            for r in sim.requests
            if r.method in WRITES and not any(m in r.path for m in READS_BY_POST)
        ),
        default=0.0,
    )


def warm_up(
    process: subprocess.Popen[bytes], sims: dict[str, Simulator], poll: float, readback: float
) -> float:
    """Wait until the last write is `readback` + one poll old (the daemon has read back its
    own writes); returns the seconds waited. A write meanwhile starts the wait again."""
    started = time.monotonic()
    while time.time() - last_write_at(sims) < readback + poll:
        if process.poll() is not None:
            raise SystemExit("pmsync run exited early")
        time.sleep(2)
    return time.monotonic() - started


def settle(process: subprocess.Popen[bytes], sims: dict[str, Simulator], poll: float) -> float:
    """Wait until the daemon has written back and then wrote nothing for two polls; returns
    the seconds it took."""
    started = time.monotonic()
    last, quiet_since = 0, time.monotonic()
    while last == 0 or time.monotonic() - quiet_since < 2 * poll + 5:
        if process.poll() is not None:
            raise SystemExit("pmsync run exited early")
        count = writes(sims)
        if count != last:
            last, quiet_since = count, time.monotonic()
        time.sleep(2)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--issues", type=int, default=1_500)
    parser.add_argument("--poll", type=float, default=15.0, help="Poll interval, seconds.")
    parser.add_argument("--minutes", type=float, default=4.0, help="How long to watch it idle.")
    parser.add_argument(
        "--links-census",
        default=None,
        metavar="DURATION",
        help='Zendesk links_census_interval for the run (default: the default, "0s").',
    )
    parser.add_argument(
        "--detail",
        action="append",
        default=[],
        metavar="CONNECTOR",
        help="Print every request this connector saw in the window (repeatable).",
    )
    parser.add_argument("--log", type=Path, default=None, help="Keep the daemon's log here.")
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="Start the window once the daemon has read back its own first write-back.",
    )
    args = parser.parse_args()
    poll = args.poll
    scale = args.tickets / 3000
    size = CompanySize(
        accounts=round(300 * scale),
        contacts=round(900 * scale),
        users=round(1200 * scale),
        tickets=args.tickets,
        issues=args.issues,
    )
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp) / "demo", size=size) as demo:
        config = demo.config_path.read_text()
        config = config.replace('poll_interval = "30s"', f'poll_interval = "{poll:g}s"')
        config = config.replace('level = "warning"', 'level = "info"')
        if args.links_census is not None:
            assert config.count('type = "zendesk"\n') == 1, "one Zendesk connector expected"
            config = config.replace(
                'type = "zendesk"\n',
                f'type = "zendesk"\nlinks_census_interval = "{args.links_census}"\n',
            )
        demo.config_path.write_text(config)
        sims: dict[str, Simulator] = {
            "salesforce": demo.simulators.salesforce,
            "zendesk": demo.simulators.zendesk,
            "jira": demo.simulators.jira,
        }
        if demo.simulators.pendo is not None:
            sims["pendo"] = demo.simulators.pendo
        streams = streams_per_connector(demo)
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "pmsync.app.cli", "-c", str(demo.config_path), "run"],
                env={**os.environ, **demo.env},
                stdout=out,
                stderr=out,
            )
        try:
            census = args.links_census or "0s (default)"
            print(
                f"{size.tickets:,} tickets, {size.issues:,} issues; poll {poll:g} s; "
                f"Zendesk links census every {census}"
            )
            took = settle(process, sims, poll)
            print(f"first cycles and write-back settled after {took:.0f} s")
            if args.warm_up:
                readback = readback_seconds(demo)
                waited = warm_up(process, sims, poll, readback)
                print(f"warm-up: writes read back ({readback:.0f} s + a poll), {waited:.0f} s more")
            for sim in sims.values():
                sim.reset_log()
            window = args.minutes * 60
            offset = log.stat().st_size
            wall, cpu, samples = watch(process, window)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        runs = print_events(log, offset)
        if args.log is not None:
            shutil.copyfile(log, args.log)
        for name in args.detail:
            print_requests(name, sims[name])
        return report(poll, window, wall, cpu, samples, sims, streams, runs)


def print_events(log: Path, offset: int) -> Counter[str]:
    """How often each logged event happened in the window (derivations among them); returns
    each connector's stream runs (`stream_done`): a stream's poll is one run."""
    counted: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            counted[str(event.get("event"))] += 1
            if event.get("event") == "derived":
                reasons[str(event.get("reason"))] += 1
            if event.get("event") == "stream_done":
                runs[str(event.get("connector"))] += 1
    print("events in the window:", dict(counted.most_common(12)))
    print("full derivations, by reason:", dict(reasons))
    return runs


def print_requests(name: str, sim: Simulator) -> None:
    """Every request `name` saw in the window: when, method, path, query and body, shortened."""
    print(f"requests {name} saw in the window:")
    first = sim.requests[0].at if sim.requests else 0.0
    for r in sim.requests:
        query = " ".join(f"{k}={v}" for k, v in r.query.items())
        body = r.body.decode(errors="replace") if r.body else ""
        print(f"  {r.at - first:7.1f}s {r.status} {r.method} {r.path} {query} {body}"[:400])


def watch(
    process: subprocess.Popen[bytes], window: float
) -> tuple[float, float, list[tuple[float, float]]]:
    """(wall seconds, CPU seconds, RSS samples) over `window`, with a SIGHUP halfway."""
    started, cpu0 = time.monotonic(), cpu_seconds(process.pid)
    samples: list[tuple[float, float]] = []
    reloaded = False
    while (elapsed := time.monotonic() - started) < window:
        samples.append((elapsed, rss_mib(process.pid)))
        if not reloaded and elapsed >= window / 2:
            process.send_signal(signal.SIGHUP)
            reloaded = True
        time.sleep(5)
    return time.monotonic() - started, cpu_seconds(process.pid) - cpu0, samples


def report(
    poll: float,
    window: float,
    wall: float,
    cpu: float,
    samples: list[tuple[float, float]],
    sims: dict[str, Simulator],
    streams: dict[str, int],
    runs: Counter[str],
) -> int:
    share = cpu / wall
    scaled = share * poll / 45
    polls = wall / poll
    print(f"\nidle for {wall:.0f} s ({polls:.1f} polls), SIGHUP at {window / 2:.0f} s")
    print(
        f"CPU: {cpu:.2f} s = {share:.2%} of a core at a {poll:g} s poll; "
        f"scaled to a 45 s poll: {scaled:.2%} (target {TARGET_SHARE:.0%}: "
        f"{scaled / TARGET_SHARE:.2f}x)"
    )
    print("requests per stream per poll, i.e. per stream run in the window (target <= 1):")
    worst = 0.0
    for name, sim in sims.items():
        count = len(sim.requests)
        # The runs logged, not window / poll: a window holds one poll more or less than that.
        ran = runs.get(name) or round(streams.get(name, 0) * polls)
        per = count / max(1, ran)
        worst = max(worst, per)
        kinds = Counter(f"{r.method} {r.path.split('?')[0][-40:]}" for r in sim.requests)
        print(
            f"  {name:<11} {streams.get(name, 0)} streams, {ran} stream runs, "
            f"{count} requests = {per:.2f}"
        )
        print(f"              {dict(kinds.most_common(4))}")
    rss = [r for _t, r in samples]
    before = [r for t, r in samples if t < window / 2]
    after = [r for t, r in samples if t >= window / 2]
    print(
        f"RSS MiB: min {min(rss):.0f}, max {max(rss):.0f} (target {TARGET_RSS_MIB}: "
        f"{max(rss) / TARGET_RSS_MIB:.2f}x); before reload {before[0]:.0f}-{max(before):.0f}, "
        f"after {min(after):.0f}-{after[-1]:.0f}"
    )
    print("  " + " ".join(f"{t:.0f}s:{r:.0f}" for t, r in samples[:: max(1, len(samples) // 12)]))
    ok = scaled <= TARGET_SHARE and worst <= 1.0 and max(rss) <= TARGET_RSS_MIB
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
