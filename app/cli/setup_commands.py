"""Commands that check a configuration before anything is synced: config, connectors, mappings."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from pmsync.errors import ConnectorError
from pmsync.redact import redact

from .context import Context, WholeHelpGroup, handle_errors, pass_context
from .output import emit_json, err, out, shown
from .tables import key, print_table, text

# ---- configuration ------------------------------------------------------------------------


@click.command("check-config")
@pass_context
@handle_errors
def check_config(ctx: Context) -> None:
    """Validate the configuration and every mapping file; list every problem at once."""
    runtime = ctx.runtime()
    streams = len(runtime.jobs())
    out.print(
        f"ok: {runtime.config.path} - {len(runtime.config.connectors)} connector(s), "
        f"{len(runtime.mappings.files)} mapping file(s), {streams} stream(s) to sync",
        markup=False,
    )


@click.group("connectors", cls=WholeHelpGroup)
def connectors_group() -> None:
    """Installed connector types (plugins in the `pmsync.connectors` entry-point group)."""


@connectors_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def connectors_list(as_json: bool) -> None:
    """List installed connector types, their streams, and plugins that failed to load."""
    from pmsync.connectors.registry import load_registry

    registry = load_registry()
    rows = [
        {
            "type": name,
            "origin": registry.origins.get(name, ""),
            "description": cls.description,
            "status": "ok",
        }
        for name, cls in sorted(registry.types.items())
    ]
    rows += [
        {"type": name, "origin": "", "description": reason, "status": "broken"}
        for name, reason in sorted(registry.broken.items())
    ]
    if as_json:
        emit_json(rows)
        return
    print_table(
        out,
        [key("type"), key("status"), text("description"), text("origin", drop=0, min_width=40)],
        [[row["type"], row["status"], row["description"], row["origin"]] for row in rows],
    )


# ---- mappings -----------------------------------------------------------------------------


@click.group("mappings", cls=WholeHelpGroup)
def mappings_group() -> None:
    """Validate and preview the mapping files."""


@mappings_group.command("validate")
@pass_context
@handle_errors
def mappings_validate(ctx: Context) -> None:
    """Check every mapping file against its schema, the entities and the configured connectors."""
    runtime = ctx.runtime()
    for (ref, stream), compiled in sorted(runtime.mappings.streams.items()):
        out.print(
            f"ok  {ref}.{stream} -> {compiled.entity} ({len(compiled.fields)} fields) "
            f"[{compiled.file}]",
            markup=False,
        )
    out.print(
        f"{len(runtime.mappings.streams)} stream mapping(s), "
        f"{len(runtime.mappings.taxonomies)} taxonomy table(s): valid",
        markup=False,
    )


@mappings_group.command("preview")
@click.argument("stream")
@click.option("-n", "--limit", default=3, show_default=True, help="Records to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def mappings_preview(ctx: Context, stream: str, limit: int, as_json: bool) -> None:
    """Fetch a few live records of STREAM and show source -> unified, writing nothing.

    STREAM is `connector.stream`, or a stream name that only one connector has.
    """
    from pmsync.errors import MappingFailure

    runtime = ctx.runtime()
    job = runtime.jobs([stream], option="STREAM")[0]
    connector = runtime.connector(job.connector)
    try:
        from .sampling import sample_records

        raws = sample_records(
            connector,
            job.spec,
            limit,
            fields=job.mapping.source_fields,
            notify=lambda message: err.print(f"[yellow]{escape(message)}[/]", markup=True),
        )
    finally:
        connector.close()
    samples: list[dict[str, Any]] = []
    for raw in raws:
        entry: dict[str, Any] = {"raw": raw, "fields": [], "error": None}
        try:
            record_key, unified = job.mapping.map_record(raw)
            entry["key"] = record_key
        except MappingFailure as exc:
            entry["error"] = str(exc)
            unified = {}
        for spec in job.mapping.fields:
            entry["fields"].append(
                {
                    "field": spec.name,
                    "source": spec.source,
                    "source_value": job.mapping.source_value(spec, raw),
                    "value": unified.get(spec.name),
                }
            )
        samples.append(entry)
    if as_json:
        emit_json([{k: v for k, v in s.items() if k != "raw"} for s in samples])
        return
    if not samples:
        out.print(f"{job.qualified}: the source returned no records", markup=False)
    for sample in samples:
        title = f"{job.qualified} key={sample.get('key', '?')} -> {job.mapping.entity}"
        print_table(
            out,
            [
                key("unified field"),
                text("value"),
                text("source", drop=1),
                text("source value", drop=0),
            ],
            [
                [row["field"], shown(row["value"]), row["source"], shown(row["source_value"])]
                for row in sample["fields"]
            ],
            title=title,
        )
        if sample["error"]:
            out.print(
                f"[red]would go to dead letters:[/] {escape(str(sample['error']))}", markup=True
            )


@mappings_group.command("reference")
def mappings_reference() -> None:
    """Print the entities, their fields, and the transforms a mapping can use."""
    from pmsync.sync.entities import ENTITIES
    from pmsync.sync.mapping.transforms import TRANSFORMS

    for entity, fields in ENTITIES.items():
        out.print(
            f"[bold]{entity}[/]: " + ", ".join(f"{n} ({t})" for n, t in fields.items()), markup=True
        )
    out.print("\n[bold]transforms[/]", markup=True)
    for name, definition in TRANSFORMS.items():
        options = (
            f" [options: {', '.join(sorted(definition.options))}]" if definition.options else ""
        )
        usage = f"{{ {name} = ... }}" if definition.takes_argument else f'"{name}"'
        out.print(f"  {usage:28} {definition.summary}{options}", markup=False)


@click.command("schema")
@click.argument("entity", required=False)
@handle_errors
def schema_command(entity: str | None) -> None:
    """Print the unified entities (or ENTITY) as JSON Schema.

    The records every mapping produces, for code and tools that read the store: one
    definition per entity, every field typed and nullable.
    """
    from pmsync.errors import UsageError
    from pmsync.sync.entities import ENTITIES, SCHEMA_DIALECT, json_schema, json_schemas
    from pmsync.validation import did_you_mean

    if entity is None:
        emit_json(json_schemas())
        return
    if entity not in ENTITIES:
        raise UsageError(
            "ENTITY",
            f"no entity '{entity}'{did_you_mean(entity, ENTITIES)} "
            f"(entities: {', '.join(ENTITIES)})",
        )
    emit_json({"$schema": SCHEMA_DIALECT, **json_schema(entity)})


@click.command("check")
@click.argument("connectors", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def check_command(ctx: Context, connectors: tuple[str, ...], as_json: bool) -> None:
    """Test each connector's credentials and reachability (all, or those named)."""
    runtime = ctx.runtime()
    names = list(connectors) or list(runtime.config.connectors)
    rows = []
    for name in names:
        connector = runtime.connector(name)
        try:
            connector.check()
            rows.append({"connector": name, "ok": True, "error": None})
        except ConnectorError as exc:
            rows.append(
                {"connector": name, "ok": False, "error": f"{exc.kind}: {redact(str(exc))}"}
            )
    runtime.close()
    if as_json:
        emit_json(rows)
    else:
        for row in rows:
            mark = "ok  " if row["ok"] else "FAIL"
            out.print(
                f"{mark} {row['connector']}" + (f"  {row['error']}" if row["error"] else ""),
                markup=False,
            )
    if not all(row["ok"] for row in rows):
        sys.exit(1)


@click.command("discover")
@click.argument("connector")
@click.argument("object_name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def discover_command(ctx: Context, connector: str, object_name: str | None, as_json: bool) -> None:
    """List the objects CONNECTOR can read, or the fields OBJECT has (custom fields included)."""
    runtime = ctx.runtime()
    instance = runtime.connector(connector)
    try:
        if object_name is None:
            objects = list(instance.objects())
            if as_json:
                emit_json(objects)
            else:
                for name in objects:
                    out.print(name, markup=False)
            return
        fields = instance.discover(object_name)
    finally:
        runtime.close()
    if as_json:
        emit_json([f.__dict__ for f in fields])
        return
    print_table(
        out,
        [key("field"), key("type"), text("label", drop=1), key("custom", drop=0)],
        [[f.name, f.type, f.label, "yes" if f.custom else ""] for f in fields],
        title=f"{connector} {object_name}",
    )


COMMANDS: tuple[click.Command, ...] = (
    check_config,
    connectors_group,
    mappings_group,
    schema_command,
    check_command,
    discover_command,
)
