"""Load every mapping file, validate it, and compile it; report all problems at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pmsync.errors import ConfigError, Problem
from pmsync.sync.entities import ENTITIES, FieldType
from pmsync.sync.links.models import (
    DEFAULT_ROLLUPS,
    FIGURES,
    LinkSettings,
    RollupSpec,
    WritebackSpec,
)
from pmsync.sync.links.score_checks import check_score
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.mapping.compiler import (
    CompiledField,
    CompiledStream,
    PathError,
    compile_path,
    make_field,
)
from pmsync.sync.mapping.models import FieldSpec, MappingFile, StreamMapping, TaxonomySpec
from pmsync.sync.mapping.slots import for_connector
from pmsync.sync.mapping.transforms import (
    Fn,
    Taxonomy,
    TransformContext,
    TransformError,
    build_transform,
)
from pmsync.tomlfile import read_toml
from pmsync.validation import did_you_mean, pydantic_problems


@dataclass
class MappingSet:
    """Every compiled stream mapping, by (connector reference, stream)."""

    streams: dict[tuple[str, str], CompiledStream] = field(default_factory=dict)
    taxonomies: dict[str, Taxonomy] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: LinkSettings = field(default_factory=LinkSettings)
    overrides_path: Path | None = None
    rollups: dict[str, RollupSpec] = field(default_factory=dict)
    writebacks: dict[str, tuple[str, WritebackSpec]] = field(default_factory=dict)
    scores: dict[str, tuple[str, ScoreSpec]] = field(default_factory=dict)

    def score_specs(self) -> dict[str, ScoreSpec]:
        return {name: spec for name, (_file, spec) in self.scores.items()}

    def for_connector(self, instance: str, type_name: str) -> dict[str, CompiledStream]:
        """Stream mappings for one connector instance: instance-specific ones win over type ones."""
        return for_connector(self.streams, instance, type_name)


def load_mappings(paths: Sequence[Path]) -> MappingSet:
    """Parse, validate and compile mapping files; ConfigError lists every problem found."""
    problems: list[Problem] = []
    parsed: list[tuple[Path, MappingFile]] = []
    result = MappingSet(files=list(paths))
    for path in paths:
        try:
            raw = read_toml(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        result.documents[str(path)] = raw
        parsed.append((path, _validate_file(path, raw, problems)))
    for path, document in parsed:
        for name, spec in document.taxonomy.items():
            if name in result.taxonomies:
                problems.append(Problem(str(path), f"taxonomy.{name}", "defined in two files"))
            result.taxonomies[name] = Taxonomy(
                areas={area: tuple(tags) for area, tags in spec.areas.items()},
                default=spec.default,
            )
    _collect_links_and_rollups(parsed, result, problems)
    context = TransformContext(taxonomies=result.taxonomies)
    for path, document in parsed:
        if document.streams and not document.connector:
            problems.append(Problem(str(path), "connector", "required when the file maps streams"))
            continue
        for stream_name, stream in document.streams.items():
            if not stream.enabled:
                continue
            compiled = _compile_stream(
                str(path), str(document.connector), stream_name, stream, context, problems
            )
            if compiled is None:
                continue
            slot = (compiled.connector, stream_name)
            if slot in result.streams:
                other = result.streams[slot].file
                problems.append(
                    Problem(str(path), f"streams.{stream_name}", f"also mapped in {other}")
                )
            result.streams[slot] = compiled
    problems.extend(score_problems(result))
    ConfigError.collect(problems)
    return result


def _collect_links_and_rollups(
    parsed: list[tuple[Path, MappingFile]], result: MappingSet, problems: list[Problem]
) -> None:
    links_file: Path | None = None
    for path, document in parsed:
        if document.links is not None:
            if links_file is not None:
                problems.append(Problem(str(path), "links", f"also declared in {links_file}"))
                continue
            links_file = path
            result.links = document.links
            if document.links.overrides:
                result.overrides_path = (path.parent / document.links.overrides).resolve()
        for name, spec in document.rollup.items():
            if name in result.rollups:
                problems.append(Problem(str(path), f"rollup.{name}", "defined in two files"))
            result.rollups[name] = spec
        for name, writeback in document.writeback.items():
            if name in result.writebacks:
                problems.append(Problem(str(path), f"writeback.{name}", "defined in two files"))
            result.writebacks[name] = (str(path), writeback)
        for name, score in document.score.items():
            if name in result.scores:
                problems.append(Problem(str(path), f"score.{name}", "defined in two files"))
            result.scores[name] = (str(path), score)
    for name, (file, writeback) in result.writebacks.items():
        problems.extend(
            _writeback_problems(name, file, writeback, result.rollups, result.score_specs())
        )


def _writeback_problems(
    name: str,
    file: str,
    writeback: WritebackSpec,
    rollups: Mapping[str, RollupSpec],
    scores: Mapping[str, ScoreSpec] | None = None,
) -> list[Problem]:
    """A write-back's rollup and figures must exist: a typo fails here, not at `plan`."""
    where = f"writeback.{name}"
    problems: list[Problem] = []
    if writeback.target == "issue" and writeback.rollup not in (rollups or DEFAULT_ROLLUPS):
        problems.append(
            Problem(
                file,
                f"{where}.rollup",
                f"no rollup '{writeback.rollup}'{did_you_mean(writeback.rollup, rollups)}",
            )
        )
    available = FIGURES[writeback.target]
    if writeback.target == "issue":
        available = (*available, *(scores or {}))
    for declared, figure in writeback.fields.items():
        score = (scores or {}).get(figure) if writeback.target == "issue" else None
        if score is not None and score.rollup != writeback.rollup:
            problems.append(
                Problem(
                    file,
                    f'{where}.fields."{declared}"',
                    f"score '{figure}' is computed on rollup '{score.rollup}', this write-back "
                    f"writes rollup '{writeback.rollup}'",
                )
            )
        if figure not in available:
            problems.append(
                Problem(
                    file,
                    f'{where}.fields."{declared}"',
                    f"no figure '{figure}' for {writeback.target} targets"
                    f"{did_you_mean(figure, available)} (figures: {', '.join(available)})",
                )
            )
    return problems


def score_problems(mappings: MappingSet) -> list[Problem]:
    """Declared scores against what exists: rollups, figures, issue fields, link rules."""
    issue_fields = set(ENTITIES["issue"])
    for compiled in mappings.streams.values():
        if compiled.entity == "issue":
            issue_fields |= {f.name for f in compiled.fields}
    problems: list[Problem] = []
    for name, (file, spec) in mappings.scores.items():
        rollups = list(mappings.rollups or DEFAULT_ROLLUPS)
        problems.extend(check_score(name, file, spec, rollups, issue_fields))
    return problems


def _validate_file(path: Path, raw: dict[str, Any], problems: list[Problem]) -> MappingFile:
    """Validate section by section, so one bad stream does not hide the others' problems."""
    file = str(path)
    sections: dict[str, tuple[type[BaseModel], dict[str, Any]]] = {
        "streams": (StreamMapping, {}),
        "taxonomy": (TaxonomySpec, {}),
        "rollup": (RollupSpec, {}),
        "writeback": (WritebackSpec, {}),
        "score": (ScoreSpec, {}),
    }
    shell: dict[str, Any] = {k: v for k, v in raw.items() if k not in sections}
    for name, (model, valid) in sections.items():
        shell[name] = valid
        tables = raw.get(name, {})
        if not isinstance(tables, dict):
            problems.append(Problem(file, name, "must be a table"))
            continue
        for key, table in tables.items():
            try:
                valid[key] = model.model_validate(table)
            except ValidationError as exc:
                problems.extend(
                    pydantic_problems(exc, file=file, model=model, prefix=f"{name}.{key}")
                )
    try:
        return MappingFile.model_validate(shell)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, file=file, model=MappingFile))
    # Keep what is valid (the connector, the links), so one wrong key hides nothing else.
    kept: dict[str, Any] = {}
    for key, value in shell.items():
        try:
            MappingFile.model_validate({key: value})
        except ValidationError:
            continue
        kept[key] = value
    return MappingFile.model_validate(kept)


def _compile_stream(
    file: str,
    connector: str,
    name: str,
    stream: StreamMapping,
    context: TransformContext,
    problems: list[Problem],
) -> CompiledStream | None:
    where = f"streams.{name}"
    if stream.entity not in ENTITIES:
        hint = did_you_mean(stream.entity, ENTITIES)
        problems.append(
            Problem(
                file,
                f"{where}.entity",
                f"unknown entity '{stream.entity}'{hint} (entities: {', '.join(sorted(ENTITIES))})",
            )
        )
        return None
    entity_fields = ENTITIES[stream.entity]
    before = len(problems)
    compiled: list[CompiledField] = []
    roots: set[str] = set()
    for field_name, spec in stream.fields.items():
        if field_name not in entity_fields:
            hint = did_you_mean(field_name, entity_fields)
            problems.append(
                Problem(
                    file,
                    f"{where}.fields.{field_name}",
                    f"entity '{stream.entity}' has no field '{field_name}'{hint}; "
                    "put free-form fields under extra_fields",
                )
            )
            continue
        built = _compile_field(
            file,
            f"{where}.fields.{field_name}",
            field_name,
            spec,
            entity_fields[field_name],
            context,
            problems,
        )
        if built:
            compiled.append(built[0])
            roots |= built[1]
    for field_name, spec in stream.extra_fields.items():
        if field_name in entity_fields:
            problems.append(
                Problem(
                    file,
                    f"{where}.extra_fields.{field_name}",
                    f"'{field_name}' is an entity field; map it under fields",
                )
            )
            continue
        built = _compile_field(
            file, f"{where}.extra_fields.{field_name}", field_name, spec, "json", context, problems
        )
        if built:
            compiled.append(built[0])
            roots |= built[1]
    if stream.key is not None:
        try:
            compile_path(stream.key)
        except PathError as exc:
            problems.append(Problem(file, f"{where}.key", str(exc)))
    if len(problems) > before:
        return None
    return CompiledStream(
        connector=connector,
        stream=name,
        entity=stream.entity,
        file=file,
        key_path=stream.key,
        fields=tuple(compiled),
        source_fields=frozenset(roots),
    )


def _compile_field(
    file: str,
    where: str,
    name: str,
    spec: str | FieldSpec,
    field_type: FieldType,
    context: TransformContext,
    problems: list[Problem],
) -> tuple[CompiledField, frozenset[str]] | None:
    path_at = where if isinstance(spec, str) else f"{where}.path"  # where the path was written
    if isinstance(spec, str):
        spec = FieldSpec(path=spec)
    has_value = "value" in spec.model_fields_set
    if (spec.path is None) == (not has_value):
        problems.append(Problem(file, where, "set exactly one of path or value"))
        return None
    transforms: list[Fn] = []
    ok = True
    for index, transform in enumerate(spec.transforms):
        try:
            transforms.append(build_transform(transform, context))
        except TransformError as exc:
            problems.append(Problem(file, f"{where}.transforms[{index}]", str(exc)))
            ok = False
    if not ok:
        return None
    try:
        return make_field(
            name,
            path=spec.path,
            constant=spec.value,
            transforms=tuple(transforms),
            field_type=field_type,
            required=spec.required,
        )
    except PathError as exc:
        problems.append(Problem(file, path_at, str(exc)))
        return None


def check_against_connectors(
    mappings: MappingSet,
    instances: Mapping[str, str],
    stream_names: Mapping[str, Iterable[str] | None],
    known_fields: Mapping[tuple[str, str], frozenset[str]] | None = None,
    installed_types: Iterable[str] = (),
) -> list[Problem]:
    """Problems where a mapping names a connector or stream the configuration does not have.

    `instances` maps instance name -> type; `stream_names` maps instance -> its stream names
    (None when the connector accepts any stream name, as Salesforce does for sObjects).
    A mapping for an installed connector type that no instance uses is simply unused: the
    shipped mappings/ directory holds one file per connector type.
    """
    problems: list[Problem] = _writeback_connector_problems(mappings, instances)
    types = set(instances.values())
    unused = set(installed_types) - types
    reported: set[tuple[str, str]] = set()
    for (ref, stream), compiled in mappings.streams.items():
        if ref in unused and ref not in instances:
            continue
        if ref not in instances and ref not in types:
            if ref in unused or (compiled.file, ref) in reported:
                continue
            reported.add((compiled.file, ref))
            hint = did_you_mean(ref, [*instances, *types])
            problems.append(
                Problem(
                    compiled.file,
                    "connector",
                    f"no connector instance or type '{ref}' in the configuration{hint}",
                )
            )
            continue
        owners = [name for name, kind in instances.items() if ref in (name, kind)]
        for owner in owners:
            names = stream_names.get(owner)
            if names is None:
                continue
            names = list(names)
            if stream not in names:
                hint = did_you_mean(stream, names)
                problems.append(
                    Problem(
                        compiled.file,
                        f"streams.{stream}",
                        f"connector '{owner}' has no stream '{stream}'{hint} "
                        f"(streams: {', '.join(sorted(names))})",
                    )
                )
                break
            fields = (known_fields or {}).get((owner, stream))
            if fields:
                for root in sorted(compiled.source_fields - fields):
                    hint = did_you_mean(root, fields)
                    if hint:
                        problems.append(
                            Problem(
                                compiled.file,
                                f"streams.{stream}",
                                f"source field '{root}' is not a field of {stream}{hint}",
                            )
                        )
    return problems


def _writeback_connector_problems(
    mappings: MappingSet, instances: Mapping[str, str]
) -> list[Problem]:
    """Each write-back names a configured connector instance or type."""
    known = [*instances, *sorted(set(instances.values()))]
    return [
        Problem(
            file,
            f"writeback.{name}.connector",
            f"no connector instance or type '{spec.connector}' in the configuration"
            f"{did_you_mean(spec.connector, known)} (connectors: {', '.join(known) or 'none'})",
        )
        for name, (file, spec) in mappings.writebacks.items()
        if spec.connector not in known
    ]
