"""The shipped mapping files (data, no code): installed as `pmsync.mappings` so the demo and
`pmsync` find them after any kind of install."""
