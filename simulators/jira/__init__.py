"""Jira REST API simulator (Cloud and Data Center modes)."""

from simulators.jira.app import JiraSimulator
from simulators.jira.data import generate

__all__ = ["JiraSimulator", "generate"]
