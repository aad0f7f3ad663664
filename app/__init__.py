"""The application: the `pmsync` command, configuration loading, runtime wiring, daemon and demo.

The top floor: it may import the engine, the connectors and the foundation; nothing imports it.
"""
