"""Jira Cloud and Data Center connector."""

from pmsync.connectors.jira.connector import JiraConnector
from pmsync.connectors.jira.search import IssueCursor
from pmsync.connectors.jira.writes import RemoteLink

__all__ = ["IssueCursor", "JiraConnector", "RemoteLink"]
