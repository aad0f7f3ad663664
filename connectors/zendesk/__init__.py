"""Zendesk Support connector."""

from pmsync.connectors.zendesk.connector import ZendeskConnector

__all__ = ["ZendeskConnector"]
