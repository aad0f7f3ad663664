"""Pendo connector."""

from pmsync.connectors.pendo.connector import PendoConnector

__all__ = ["PendoConnector"]
