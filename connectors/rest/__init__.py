"""The declarative `rest` connector: any JSON API, described in configuration."""

from pmsync.connectors.rest.connector import RestConnector

__all__ = ["RestConnector"]
