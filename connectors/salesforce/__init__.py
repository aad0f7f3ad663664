"""Salesforce connector."""

from connectors.salesforce.connector import SalesforceConnector

__all__ = ["SalesforceConnector"]
