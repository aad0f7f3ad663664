"""Zendesk Support simulator."""

from simulators.zendesk.app import ZendeskSimulator
from simulators.zendesk.data import generate

__all__ = ["ZendeskSimulator", "generate"]
