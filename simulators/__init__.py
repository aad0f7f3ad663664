"""Local simulators of the SaaS APIs pmsync talks to, for tests, benchmarks and the demo."""
