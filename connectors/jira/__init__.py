"""Jira Cloud and Data Center connector."""

from connectors.jira.connector import JiraConnector
from connectors.jira.search import IssueCursor
from connectors.jira.writes import RemoteLink

__all__ = ["IssueCursor", "JiraConnector", "RemoteLink"]
