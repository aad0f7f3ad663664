"""Salesforce REST API simulator."""

from pmsync.simulators.salesforce.app import SalesforceSimulator
from pmsync.simulators.salesforce.data import generate, install_schema

__all__ = ["SalesforceSimulator", "generate", "install_schema"]
