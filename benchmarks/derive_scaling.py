"""What derive + plan cost when little or nothing changed, at the demo company's size and 10x.

For each scale it launches the demo company (simulated Salesforce, Zendesk, Jira and Pendo),
syncs it, derives and writes everything back once (as the daemon's first cycle would), then
settles with two more cycles, and measures, the daemon's way (`Runtime.plan_changes` for each
connector written to, which derives incrementally first):
  * a quiet cycle: sync (nothing changed), derive, plan;
  * the cycle after ~1% of the accounts' ARR changed: derive + plan (the sync that read the
    changes is timed apart);
  * the cycle after ~1% of the tickets changed: each names another issue in its Jira-key field
    and is reopened or solved (so it leaves one issue for another, and its account's counts
    move), the same way;
and, for comparison in the same run, a full derive + plan as every cycle cost before (issue 14).
Targets (issue 14, item 2): quiet cycle's derive + plan <= 0.3 s and 1% cycle's derive + plan
<= 0.5 s at 10x.
`--peak` also measures the peak RSS of a full derive at a given size in a fresh process
(`--streamed`: then also that of a streamed one, `derive(hold=False)`, which holds no ticket
beyond a batch, in another fresh process on the same synced company), and `--peak-plan` that of
planning every target after a full derive (the daemon's write-back after a full derivation),
from the whole World and a chunk of targets at a time. Run:

    python benchmarks/derive_scaling.py                          # 1x and 10x
    python benchmarks/derive_scaling.py --scales 1 10 100
    python benchmarks/derive_scaling.py --scales --peak 30       # peak RSS of a 30x derive only
    python benchmarks/derive_scaling.py --scales --peak 30 --streamed  # held, then streamed
    python benchmarks/derive_scaling.py --scales --peak 10 50 --streamed --tickets-only
        # only tickets and issues grow (1M tickets / 50k issues is scale 333): KiB a ticket
    python benchmarks/derive_scaling.py --scales --peak-plan 30  # whole vs chunked planning
    python benchmarks/derive_scaling.py --scales --peak-apply 30  # `pmsync apply`, before/after
    python benchmarks/derive_scaling.py --scales --peak-plan-command 30  # `pmsync plan`, same
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pmsync.app.runtime import Runtime
from pmsync.logs import configure_logging
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import Demo, launch
from pmsync.simulators.zendesk.data import JIRA_KEY_FIELD

QUIET_TARGET_S = 0.3
CHANGE_TARGET_S = 0.5


DERIVE_TARGET_MIB = 500  # a derive of 1M tickets and 50k issues (issue 14, item 2)
TARGET_TICKETS = 1_000_000


def size_of(scale: int, *, tickets_only: bool = False) -> CompanySize:
    """The demo company times `scale`; `tickets_only`: only tickets and issues grow (20 tickets
    an issue, the shape of the target's 1M tickets and 50k issues), the accounts and people
    stay those of a mid-sized company (2,000 accounts, 6,000 contacts, 20,000 users)."""
    if tickets_only:
        return CompanySize(
            accounts=2000, contacts=6000, users=20000, tickets=3000 * scale, issues=150 * scale
        )
    return CompanySize(
        accounts=300 * scale,
        contacts=900 * scale,
        users=1200 * scale,
        tickets=3000 * scale,
        issues=250 * scale,
    )


def write_back(runtime: Runtime, *, apply: bool = True) -> int:
    """The daemon's write-back for every connector written to; returns the writes planned.
    Without `apply`, the plan is taken as done (the first cycle's thousands of writes take
    minutes against the simulators' rate limits and are not what is measured)."""
    planned = 0
    for name in runtime.writable_connectors():
        if not runtime.writes_to(name):
            continue
        plan, dirty = runtime.plan_changes(name)
        planned += len(plan.writes)
        if plan.guard:
            plan.guard = []  # the benchmark's first cycle writes every figure
        if plan.writes and apply:
            result = runtime.apply(plan, confirm=True)
            if result.failed:
                continue
        runtime.done_planning(dirty)
    return planned


def change_accounts(demo: Demo, share: float) -> int:
    accounts = sorted(demo.company.truth.accounts)
    chosen = accounts[:: max(1, round(1 / share))]
    table = demo.simulators.salesforce.table("Account")
    for account_id in chosen:
        row = table.rows[account_id]
        demo.simulators.salesforce.update(
            "Account", account_id, {"ARR__c": float(row["ARR__c"] or 0) + 1000}
        )
    return len(chosen)


def change_tickets(demo: Demo, share: float) -> int:
    """Move every `1/share`-th live ticket to another issue (its Jira-key field) and reopen or
    solve it."""
    truth = demo.company.truth
    keys = sorted(i.key for i in truth.issues.values() if not i.deleted)
    live = sorted(t for t, ticket in truth.tickets.items() if not ticket.deleted)
    chosen = live[:: max(1, round(1 / share))]
    zendesk = demo.simulators.zendesk
    for n, ticket_id in enumerate(chosen):
        record = zendesk.ticket_record(ticket_id)
        for custom in record["custom_fields"]:
            if custom["id"] == JIRA_KEY_FIELD:
                custom["value"] = keys[(n * 7919) % len(keys)]
        record["status"] = "solved" if record["status"] in ("new", "open", "pending") else "open"
        zendesk.put_ticket(record)
    return len(chosen)


def changed_cycle(runtime: Runtime, figures: dict[str, float | int | str], prefix: str) -> None:
    """Sync what changed, then derive (incrementally) and plan every connector written to."""
    started = time.perf_counter()
    runtime.run_once()
    synced = time.perf_counter()
    derived = runtime.derive(incremental=True)
    done = time.perf_counter()
    plans = [
        runtime.plan_changes(name)
        for name in runtime.writable_connectors()
        if runtime.writes_to(name)
    ]
    planned = time.perf_counter()
    figures[f"{prefix}_mode"] = derived.mode
    figures[f"{prefix}_sync_s"] = synced - started
    figures[f"{prefix}_derive_s"] = done - synced
    figures[f"{prefix}_derive_plan_s"] = planned - synced
    figures[f"{prefix}_writes"] = sum(len(p.writes) for p, _dirty in plans)
    for _plan, dirty in plans:
        runtime.done_planning(dirty)  # taken as applied: the next change starts clean


def measure(scale: int, *, apply_first: bool) -> dict[str, float | int | str]:
    size = size_of(scale)
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size) as demo:
        runtime = Runtime.load(str(demo.config_path))
        figures: dict[str, float | int | str] = {"tickets": size.tickets, "issues": size.issues}
        runtime.run_once()
        started = time.perf_counter()
        write_back(runtime, apply=apply_first)  # first cycle: full derive, every figure
        figures["first_derive_plan_s"] = time.perf_counter() - started
        for _settle in range(2):  # read back what was written; the next cycles are quiet
            runtime.run_once()
            write_back(runtime)
        started = time.perf_counter()
        runtime.run_once()
        synced = time.perf_counter()
        figures["quiet_writes"] = write_back(runtime)
        done = time.perf_counter()
        figures["quiet_cycle_s"] = done - started
        figures["quiet_derive_plan_s"] = done - synced
        figures["accounts_changed"] = change_accounts(demo, 0.01)
        changed_cycle(runtime, figures, "change")
        figures["tickets_changed"] = change_tickets(demo, 0.01)
        changed_cycle(runtime, figures, "ticket_change")
        started = time.perf_counter()
        full = runtime.derive(persist=False)
        runtime.plan(derived=full)
        figures["full_derive_plan_s"] = time.perf_counter() - started
        runtime.close()
        return figures


def peak(scale: int, *, streamed: bool = False, tickets_only: bool = False) -> dict[bool, int]:
    """Sync a company of `scale` and report the peak RSS of a full derive in a new process;
    with `streamed`, then that of a streamed one in another. Returns the peaks (KiB) by
    `hold`."""
    size = size_of(scale, tickets_only=tickets_only)
    peaks: dict[bool, int] = {}
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size, pendo=False) as demo:
        runtime = Runtime.load(str(demo.config_path))
        runtime.run_once()
        runtime.close()
        for hold in (True, False) if streamed else (True,):
            seconds, rss_kib, before_kib = derive_in_child(demo, hold=hold)
            peaks[hold] = rss_kib
            print(
                f"{'full' if hold else 'streamed full'} derive of {size.tickets:,} tickets / "
                f"{size.issues:,} issues: {seconds:.1f} s, peak RSS {rss_kib / 1024:.0f} MiB "
                f"(before deriving: {before_kib / 1024:.0f} MiB)"
            )
    return peaks


def project(scales: list[int], peaks: list[dict[bool, int]], *, tickets_only: bool) -> None:
    """From the smallest and largest scale: KiB a ticket, and the peak that puts at 1M tickets
    (with 50k issues when `tickets_only`), against the target."""
    small, large = size_of(scales[0]).tickets, size_of(scales[-1]).tickets
    for hold in peaks[0]:
        per_ticket = (peaks[-1][hold] - peaks[0][hold]) / (large - small)
        at_target = (peaks[-1][hold] + per_ticket * (TARGET_TICKETS - large)) / 1024
        print(
            f"{'held' if hold else 'streamed'}: {per_ticket:.2f} KiB a ticket from {small:,} to "
            f"{large:,} tickets; at 1M tickets{' / 50k issues' if tickets_only else ''} about "
            f"{at_target:.0f} MiB, {at_target / DERIVE_TARGET_MIB:.2f}x the target "
            f"({DERIVE_TARGET_MIB} MiB)"
        )


def derive_in_child(demo: Demo, *, hold: bool) -> tuple[float, int, int]:
    """(seconds, peak RSS KiB, RSS KiB before deriving) of `Runtime.derive(hold=hold)` in a
    fresh process."""
    code = (
        "import sys,time;from pmsync.app.runtime import Runtime;"
        "from pmsync.logs import configure_logging;configure_logging('error');"
        "hwm=lambda:[x.split()[1] for x in open('/proc/self/status') if 'VmHWM' in x][0];"
        "r=Runtime.load(sys.argv[1]);before=hwm();t=time.perf_counter();"
        "r.derive(hold=sys.argv[2]=='hold');"
        "print(time.perf_counter()-t, hwm(), before)"
    )
    seconds, rss_kib, before_kib = in_fresh_process(demo, code, "hold" if hold else "stream")
    return float(seconds), int(rss_kib), int(before_kib)


def in_fresh_process(demo: Demo, code: str, *args: str) -> list[str]:
    """Run `code` in a new Python process (the demo's configuration its first argument) and
    return the words it printed.

    Peaks are read from VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across fork
    and exec, so a child started by this process (which synced the company) would report this
    one's peak."""
    done = subprocess.run(
        [sys.executable, "-c", code, str(demo.config_path), *args],
        env={**os.environ, **demo.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


# Plans every target of every connector written to, after a full derivation, one connector
# after another as the daemon's write-back does (`bulk_allocation`; a plan is let go once
# applied): "whole" from one derivation of the whole World that serves every connector (what
# `Runtime._full_view` keeps), "chunked" a chunk of targets at a time (`plan_in_chunks`).
PLAN_CODE = """
import sys, time
from pmsync.app.runtime import Runtime
from pmsync.gcpolicy import bulk_allocation
from pmsync.logs import configure_logging

configure_logging("error")
hwm = lambda: [x.split()[1] for x in open("/proc/self/status") if "VmHWM" in x][0]
runtime = Runtime.load(sys.argv[1])
names = [n for n in runtime.writable_connectors() if runtime.writes_to(n)]
before, started = hwm(), time.perf_counter()
writes = missing = 0
with bulk_allocation(one_arena=False):
    derived = runtime.derive(persist=False) if sys.argv[2] == "whole" else None
    for name in names:
        if derived is not None:
            plan = runtime.plan(derived=derived, only_connector=name)
        else:
            plan = runtime.plan_in_chunks(name)
        writes += len(plan.writes) if plan is not None else 0
        missing += plan is None
        plan = None
print(time.perf_counter() - started, hwm(), before, writes, missing)
"""


def peak_plan(scale: int) -> None:
    """Sync a company of `scale`, derive it all once (stored: the links, rollups and inputs
    the chunks read), then report the peak RSS and time of planning every target of every
    connector written to, from the whole World and chunk by chunk, each in a new process."""
    size = size_of(scale)
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size, pendo=False) as demo:
        runtime = Runtime.load(str(demo.config_path))
        runtime.run_once()
        runtime.derive()
        runtime.close()
        for way in ("whole", "chunked"):
            seconds, rss_kib, before_kib, writes, missing = in_fresh_process(demo, PLAN_CODE, way)
            assert missing == "0", "no full derivation kept the inputs the chunks read"
            print(
                f"plan every target ({way}) of {size.tickets:,} tickets / {size.issues:,} "
                f"issues: {float(seconds):.1f} s, peak RSS {int(rss_kib) / 1024:.0f} MiB "
                f"(before planning: {int(before_kib) / 1024:.0f} MiB), {int(writes):,} writes"
            )


# `pmsync apply` itself, held back by a guard that every change trips (so it derives and plans
# every target and writes nothing: thousands of writes against the simulators' rate limits take
# minutes and are not what is measured). "held" is the command as it was before it planned in
# chunks: `Runtime.plan()` of one derivation of the whole World.
APPLY_CODE = """
import sys, time
from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime

if sys.argv[2] == "held":
    Runtime.plan_every_target = lambda self, **_: self.plan()
hwm = lambda: [x.split()[1] for x in open("/proc/self/status") if "VmHWM" in x][0]
before, started = hwm(), time.perf_counter()
try:
    cli.main(["-c", sys.argv[1], "apply", "--json"], standalone_mode=False)
    code = 0
except SystemExit as exc:
    code = exc.code
except Exception as exc:
    code = type(exc).__name__
print(time.perf_counter() - started, hwm(), before, code)
"""


def peak_apply(scale: int) -> None:
    """Sync a company of `scale`, then report the peak RSS and time of `pmsync apply` (held
    back by the guard), streamed (the store's first derivation, so a full one) then held, each
    in a new process."""
    size = size_of(scale)
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size, pendo=False) as demo:
        text = demo.config_path.read_text()
        demo.config_path.write_text(
            text.replace("max_change_share = 1.0", "max_change_share = 0.000001")
        )
        runtime = Runtime.load(str(demo.config_path))
        runtime.run_once()
        runtime.close()
        for way in ("streamed", "held"):
            seconds, rss_kib, before_kib, code = in_fresh_process(demo, APPLY_CODE, way)
            print(
                f"pmsync apply ({way}, held back by the guard) of {size.tickets:,} tickets / "
                f"{size.issues:,} issues: {float(seconds):.1f} s, peak RSS "
                f"{int(rss_kib) / 1024:.0f} MiB (at start: {int(before_kib) / 1024:.0f} MiB), "
                f"exit {code}"
            )


# `pmsync plan --json` itself, its JSON written to the file named by the third argument (read
# back by `peak_plan_command`). "held" is the command as it was before it planned in chunks:
# `Runtime.plan()` of one derivation of the whole World, whose scores left empty it listed
# (`derive()` returns the derivation `plan()` made, kept by the runtime).
PLAN_COMMAND_CODE = """
import contextlib, sys, time
from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from pmsync.sync.links.report import empty_scores

if sys.argv[2] == "held":
    Runtime.plan_every_target = lambda self, **_: self.plan()
    Runtime.empty_scores = lambda self: empty_scores(self.derive())
hwm = lambda: [x.split()[1] for x in open("/proc/self/status") if "VmHWM" in x][0]
before, started = hwm(), time.perf_counter()
with open(sys.argv[3], "w") as shown, contextlib.redirect_stdout(shown):
    cli.main(["-c", sys.argv[1], "plan", "--json"], standalone_mode=False)
print(time.perf_counter() - started, hwm(), before)
"""


def peak_plan_command(scale: int) -> None:
    """Sync a company of `scale`, then report the peak RSS and time of `pmsync plan --json`,
    streamed (the store's first derivation, so a full one) then held, each in a new process,
    with how many writes and empty scores each showed (the same: the same plan)."""
    size = size_of(scale)
    with tempfile.TemporaryDirectory() as tmp, launch(Path(tmp), size=size, pendo=False) as demo:
        runtime = Runtime.load(str(demo.config_path))
        runtime.run_once()
        runtime.close()
        for way in ("streamed", "held"):
            output = Path(tmp) / f"plan-{way}.json"
            seconds, rss_kib, before_kib = in_fresh_process(
                demo, PLAN_COMMAND_CODE, way, str(output)
            )
            shown = json.loads(output.read_text())
            print(
                f"pmsync plan --json ({way}) of {size.tickets:,} tickets / {size.issues:,} "
                f"issues: {float(seconds):.1f} s, peak RSS {int(rss_kib) / 1024:.0f} MiB "
                f"(at start: {int(before_kib) / 1024:.0f} MiB), {len(shown['writes']):,} "
                f"writes, {len(shown['empty_scores']):,} empty scores"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="*", default=[1, 10])
    parser.add_argument(
        "--peak",
        type=int,
        nargs="*",
        default=[],
        help="Also: peak RSS of a full derive at these scales (two or more: KiB a ticket and "
        "the peak that puts at 1M tickets).",
    )
    parser.add_argument(
        "--peak-plan",
        type=int,
        help="Also: peak RSS of planning every target after a full derive at this scale, "
        "from the whole World and chunk by chunk.",
    )
    parser.add_argument(
        "--peak-apply",
        type=int,
        help="Also: peak RSS of `pmsync apply` at this scale (held back by the guard: it derives "
        "and plans everything, writes nothing), the daemon's way and holding the whole World.",
    )
    parser.add_argument(
        "--peak-plan-command",
        type=int,
        help="Also: peak RSS of `pmsync plan --json` at this scale, the daemon's way and "
        "holding the whole World.",
    )
    parser.add_argument(
        "--streamed",
        action="store_true",
        help="With --peak: then also the peak RSS of a streamed full derive (hold=False).",
    )
    parser.add_argument(
        "--tickets-only",
        action="store_true",
        help="With --peak: only tickets and issues grow (20 tickets an issue).",
    )
    parser.add_argument(
        "--apply-first",
        action="store_true",
        help="Apply the first cycle's writes (slow at 10x); else later plans also hold "
        "figures never written.",
    )
    args = parser.parse_args()
    configure_logging("error")
    columns = [
        "tickets",
        "issues",
        "first_derive_plan_s",
        "quiet_cycle_s",
        "quiet_derive_plan_s",
        "quiet_writes",
        "accounts_changed",
        "change_sync_s",
        "change_derive_s",
        "change_derive_plan_s",
        "change_mode",
        "change_writes",
        "tickets_changed",
        "ticket_change_sync_s",
        "ticket_change_derive_s",
        "ticket_change_derive_plan_s",
        "ticket_change_mode",
        "ticket_change_writes",
        "full_derive_plan_s",
    ]
    for scale in args.scales:
        figures = measure(scale, apply_first=args.apply_first)
        print(f"\nscale {scale}x:")
        for column in columns:
            value = figures[column]
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"  {column:<28} {shown:>10}")
        seconds = {k: v for k, v in figures.items() if isinstance(v, float)}
        quiet, change = seconds["quiet_derive_plan_s"], seconds["change_derive_plan_s"]
        tickets = seconds["ticket_change_derive_plan_s"]
        print(
            f"  quiet derive + plan / target ({QUIET_TARGET_S} s): {quiet / QUIET_TARGET_S:.2f}x "
            f"(with its sync: {seconds['quiet_cycle_s'] / QUIET_TARGET_S:.2f}x); "
            f"1% cycle derive + plan / target ({CHANGE_TARGET_S} s): accounts "
            f"{change / CHANGE_TARGET_S:.2f}x, tickets {tickets / CHANGE_TARGET_S:.2f}x; "
            f"full derive + plan / incremental: accounts "
            f"{seconds['full_derive_plan_s'] / max(change, 1e-9):.1f}x, tickets "
            f"{seconds['full_derive_plan_s'] / max(tickets, 1e-9):.1f}x"
        )
    peaks = [
        peak(scale, streamed=args.streamed, tickets_only=args.tickets_only) for scale in args.peak
    ]
    if len(peaks) > 1:
        project(args.peak, peaks, tickets_only=args.tickets_only)
    if args.peak_plan:
        peak_plan(args.peak_plan)
    if args.peak_apply:
        peak_apply(args.peak_apply)
    if args.peak_plan_command:
        peak_plan_command(args.peak_plan_command)
    print(
        f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB)"
    )


if __name__ == "__main__":
    main()
