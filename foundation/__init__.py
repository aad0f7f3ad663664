"""pmsync: links customer feedback, revenue and engineering work across tools."""

__version__ = "0.1.0"
