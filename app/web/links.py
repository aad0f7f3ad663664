"""Links out of pmsync: the Jira issue, the Zendesk ticket, the Salesforce account.

Built from each connector's configured site (its `base_url`, or Salesforce's `my_domain`), by
connector type; a connector pmsync does not know how to link to gets no link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from pmsync.connectors.base import ConnectorSettings


@dataclass(frozen=True)
class SourceLinks:
    """Where each connector instance's records open in the tool's own interface."""

    sites: Mapping[str, tuple[str, str]]  # connector name -> (type, site root)

    @classmethod
    def from_connectors(cls, connectors: Mapping[str, ConnectorSettings]) -> SourceLinks:
        sites: dict[str, tuple[str, str]] = {}
        for name, settings in connectors.items():
            root = _site(settings)
            if root:
                sites[name] = (settings.type, root.rstrip("/"))
        return cls(sites)

    def issue(self, connector: str, key: str) -> str | None:
        kind, root = self.sites.get(connector, ("", ""))
        return f"{root}/browse/{quote(key)}" if kind == "jira" else None

    def ticket(self, connector: str, key: str) -> str | None:
        kind, root = self.sites.get(connector, ("", ""))
        return f"{root}/agent/tickets/{quote(key)}" if kind == "zendesk" else None

    def account(self, connector: str, key: str) -> str | None:
        kind, root = self.sites.get(connector, ("", ""))
        return f"{root}/lightning/r/Account/{quote(key)}/view" if kind == "salesforce" else None


def _site(settings: ConnectorSettings) -> str | None:
    my_domain = getattr(settings, "my_domain", None)
    if isinstance(my_domain, str) and my_domain and settings.base_url is None:
        return f"https://{my_domain}"
    url = settings.base_url
    if url and url.startswith(("https://", "http://")):
        return url
    return None
