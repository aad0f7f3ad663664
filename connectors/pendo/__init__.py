"""Pendo connector."""

from connectors.pendo.connector import PendoConnector

__all__ = ["PendoConnector"]
