"""PostHog query API simulator."""

from pmsync.simulators.posthog.app import PostHogSimulator
from pmsync.simulators.posthog.data import generate

__all__ = ["PostHogSimulator", "generate"]
