"""Jira REST API simulator (Cloud and Data Center modes)."""

from pmsync.simulators.jira.app import JiraSimulator
from pmsync.simulators.jira.data import generate

__all__ = ["JiraSimulator", "generate"]
