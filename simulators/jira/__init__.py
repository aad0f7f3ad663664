"""Jira REST API simulator (Cloud and Data Center modes)."""

from pmsync.simulators.jira.app import Deployment, JiraSimulator
from pmsync.simulators.jira.data import generate

__all__ = ["Deployment", "JiraSimulator", "generate"]
