"""Salesforce connector."""

from pmsync.connectors.salesforce.connector import SalesforceConnector

__all__ = ["SalesforceConnector"]
