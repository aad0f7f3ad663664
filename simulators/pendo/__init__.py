"""Pendo simulator."""

from pmsync.simulators.pendo.app import PendoSimulator
from pmsync.simulators.pendo.data import FEATURES, account_id, generate

__all__ = ["FEATURES", "PendoSimulator", "account_id", "generate"]
