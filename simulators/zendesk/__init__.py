"""Zendesk Support simulator."""

from pmsync.simulators.zendesk.app import ZendeskSimulator
from pmsync.simulators.zendesk.data import generate

__all__ = ["ZendeskSimulator", "generate"]
