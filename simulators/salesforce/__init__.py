"""Salesforce REST API simulator."""

from simulators.salesforce.app import SalesforceSimulator
from simulators.salesforce.data import generate, install_schema

__all__ = ["SalesforceSimulator", "generate", "install_schema"]
