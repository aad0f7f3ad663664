"""PostHog query API simulator."""

from simulators.posthog.app import PostHogSimulator
from simulators.posthog.data import generate

__all__ = ["PostHogSimulator", "generate"]
