"""The schema of a mapping file; each field's description is the reference product ops reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pmsync.sync.links.models import LinkSettings, RollupSpec, WritebackSpec
from pmsync.sync.links.score_models import ScoreSpec

TransformSpec = str | dict[str, Any]


class FieldSpec(BaseModel):
    """How one unified field is computed from a source record."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None, description="JMESPath into the source record, e.g. 'requester.email'."
    )
    value: Any = Field(default=None, description="A constant instead of a path.")
    transforms: list[TransformSpec] = Field(
        default_factory=list, description="Named transforms applied in order."
    )
    required: bool = Field(
        default=False, description="An empty result sends the record to the dead-letter table."
    )
    description: str = ""


class StreamMapping(BaseModel):
    """How the records of one stream become one unified entity."""

    model_config = ConfigDict(extra="forbid")

    entity: str = Field(description="The unified entity fed: account, person, feedback, ...")
    key: str | None = Field(
        default=None, description="JMESPath of the record's key; default: the stream's own key."
    )
    fields: dict[str, str | FieldSpec] = Field(
        default_factory=dict, description="Unified field name = path, or a field table."
    )
    extra_fields: dict[str, str | FieldSpec] = Field(
        default_factory=dict, description="Free-form fields kept beside the entity's own."
    )
    enabled: bool = True
    description: str = ""


class TaxonomySpec(BaseModel):
    """A table product ops maintains: which tags mean which product area."""

    model_config = ConfigDict(extra="forbid")

    areas: dict[str, list[str]] = Field(description="Area name = list of tags that mean it.")
    default: str | None = Field(default=None, description="Area for records with no known tag.")
    description: str = ""


class MappingFile(BaseModel):
    """One file in mappings/: streams of one connector, and/or taxonomy tables."""

    model_config = ConfigDict(extra="forbid")

    connector: str | None = Field(
        default=None,
        description="Connector instance name (from the config) or connector type the streams "
        "belong to; an instance name wins over a type.",
    )
    description: str = ""
    streams: dict[str, StreamMapping] = Field(default_factory=dict)
    taxonomy: dict[str, TaxonomySpec] = Field(default_factory=dict)
    links: LinkSettings | None = Field(
        default=None, description="How tickets find their account and their issues."
    )
    rollup: dict[str, RollupSpec] = Field(
        default_factory=dict, description="Per-issue rollups of the demand behind each issue."
    )
    writeback: dict[str, WritebackSpec] = Field(
        default_factory=dict, description="Figures written back into the tools, field by field."
    )
    score: dict[str, ScoreSpec] = Field(
        default_factory=dict,
        description="Priority scores per issue (RICE, ICE, weighted, formula), usable as figures.",
    )
