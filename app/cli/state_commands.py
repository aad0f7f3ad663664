"""`pmsync state get|set|reset CONNECTOR.STREAM`: look at or move a stream's cursor.

Changing a cursor is an operator's repair (re-read since a date, skip a poisoned page, start
over), so it asks first and is refused while a daemon owns the connector: the daemon would
overwrite the change with its next page, or read from a cursor that moved under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
import orjson

from pmsync.errors import StoreBusy, UsageError

from .context import Context, WholeHelpGroup, handle_errors, pass_context
from .output import age, emit_json, out, when

if TYPE_CHECKING:
    from pmsync.app.runtime import Runtime, StreamJob


@click.group("state", cls=WholeHelpGroup)
def state_group() -> None:
    """Show, set or clear a stream's cursor (where its next read starts)."""


@state_group.command("get")
@click.argument("stream")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def state_get(ctx: Context, stream: str, as_json: bool) -> None:
    """Print STREAM's cursor and schedule. STREAM is connector.stream."""
    from pmsync.app.status import stream_statuses

    runtime = ctx.runtime()
    try:
        job = _job(runtime, stream)
        [row] = stream_statuses(runtime.store, [(job.connector, job.spec.name)])
    finally:
        runtime.close()
    cursor = orjson.loads(row.cursor) if row.cursor else None
    if as_json:
        emit_json({**row.as_dict(), "cursor": cursor})
        return
    lines = [
        (
            "status",
            f"{row.status} ({row.failures} failures in a row)" if row.failures else row.status,
        ),
        ("last success", _moment(row.last_success_at) or "never"),
        ("next attempt", _moment(row.next_attempt_at)),
        ("owner", row.owner or ""),
        ("cursor", _json(cursor) if cursor is not None else "none: the next read starts over"),
    ]
    out.print(row.stream, markup=False)
    for name, value in lines:
        if value:
            out.print(f"  {name:13} {value}", markup=False)


@state_group.command("set")
@click.argument("stream")
@click.argument("cursor")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
@handle_errors
def state_set(ctx: Context, stream: str, cursor: str, yes: bool) -> None:
    """Set STREAM's cursor to CURSOR, a JSON object (`pmsync state get` shows the fields).

    Fields left out take their defaults. The next sync of STREAM starts there; records
    already stored stay.
    """
    runtime = ctx.runtime()
    try:
        job = _job(runtime, stream)
        value = _validated(job, cursor).model_dump_json()
        _change(runtime, job, value, yes, f"set {job.qualified}'s cursor to {value}")
    finally:
        runtime.close()


@state_group.command("reset")
@click.argument("stream")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
@handle_errors
def state_reset(ctx: Context, stream: str, yes: bool) -> None:
    """Clear STREAM's cursor: its next sync reads everything again.

    Records already stored stay (unchanged ones cost no write); to also tombstone what the
    source no longer has, run `pmsync sync --stream STREAM --full-refresh` instead.
    """
    runtime = ctx.runtime()
    try:
        job = _job(runtime, stream)
        _change(runtime, job, None, yes, f"clear {job.qualified}'s cursor (read it all again)")
    finally:
        runtime.close()


def _job(runtime: Runtime, stream: str) -> StreamJob:
    jobs = runtime.jobs([stream], option="STREAM")
    if len(jobs) != 1:
        names = ", ".join(j.qualified for j in jobs)
        raise UsageError("STREAM", f"'{stream}' names {len(jobs)} streams ({names}); name one")
    return jobs[0]


def _validated(job: StreamJob, text: str) -> Any:
    from pydantic import ValidationError

    try:
        return job.spec.cursor_model.model_validate_json(text)
    except ValidationError as exc:
        fields = ", ".join(job.spec.cursor_model.model_fields)
        problems = "; ".join(_problem(error) for error in exc.errors(include_url=False))
        raise UsageError(
            "CURSOR", f"not a cursor of {job.qualified}: {problems} (its fields: {fields})"
        ) from None


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _change(runtime: Runtime, job: StreamJob, cursor: str | None, yes: bool, what: str) -> None:
    """Ask, then write the cursor while holding the connector against a daemon."""
    from pmsync.sync.store.store import update_stream_state, utcnow

    with _held(runtime, job):  # refuse before asking, when a daemon runs the connector
        before = runtime.store.stream_state(job.connector, job.spec.name)
    out.print(f"{job.qualified}: cursor now {before.cursor if before else None}", markup=False)
    if not yes and not click.confirm(f"{what[:1].upper()}{what[1:]}?", default=False):
        raise click.Abort
    with _held(runtime, job), runtime.store.transaction() as connection:
        update_stream_state(
            connection, job.connector, job.spec.name, cursor=cursor, cursor_updated_at=utcnow()
        )
    out.print(f"done: {what}", markup=False)


@contextmanager
def _held(runtime: Runtime, job: StreamJob) -> Iterator[None]:
    """The connector held against a daemon for the length of the block; StoreBusy when a
    daemon owns it."""
    from pmsync.app.daemon.leases import cli_ownership

    with cli_ownership(runtime.store.engine, [job.connector]) as held:
        if job.connector not in held:
            raise StoreBusy(
                f"a running pmsync daemon owns {job.connector}; stop it before changing "
                f"{job.qualified}'s cursor (it would write over the change)"
            )
        yield


def _moment(moment: Any) -> str:
    return f"{when(moment)} ({age(moment)})" if moment else ""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


COMMANDS: tuple[click.Command, ...] = (state_group,)
