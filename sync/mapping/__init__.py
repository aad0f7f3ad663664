"""Mapping files: declared, validated, compiled once, applied to every record.

The loader is `pmsync.sync.mapping.loader`; this package imports nothing itself, so that
`pmsync status` can read which streams are mapped (`slots`) without the loader's models.
"""
