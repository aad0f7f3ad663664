"""Pendo simulator."""

from simulators.pendo.app import PendoSimulator
from simulators.pendo.data import FEATURES, account_id, generate

__all__ = ["FEATURES", "PendoSimulator", "account_id", "generate"]
