"""Mapping files: declared, validated, compiled once, applied to every record."""

from pmsync.sync.mapping.compiler import CompiledField, CompiledStream
from pmsync.sync.mapping.loader import MappingSet, load_mappings

__all__ = ["CompiledField", "CompiledStream", "MappingSet", "load_mappings"]
