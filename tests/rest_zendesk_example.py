"""The worked time-based export of mappings/examples/zendesk_organizations.toml, made runnable.

Tests uncomment the connector block that the example file carries and point it at the Zendesk
simulator, so the example users copy is the one that is tested.
"""

from __future__ import annotations

from pathlib import Path

from pmsync.simulators.zendesk import ZendeskSimulator
from tests.rest_example import uncommented_block

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "mappings" / "examples" / "zendesk_organizations.toml"
BLOCK_START = "# [connectors.zendesk_orgs]"
TOKEN_ENV = "PMSYNC_TEST_ZENDESK_REST_TOKEN"


def example_block() -> str:
    """The commented connector block of the example, uncommented."""
    return uncommented_block(EXAMPLE, BLOCK_START)


def example_config(
    directory: Path,
    sim: ZendeskSimulator,
    *,
    per_page: int | None = None,
    replace: dict[str, str] | None = None,
    extra: str = "",
    mappings: list[Path] | None = None,
) -> Path:
    """A pmsync.toml holding the example, its mapping, and a store in `directory`."""
    block = example_block()
    changes = {
        'base_url = "https://acme.zendesk.com"': f'base_url = "{sim.base_url}"',
        'username = "pmsync@acme.com/token"': f'username = "{sim.email}/token"',
        '{ credential = "zendesk_api_token" }': f'{{ env = "{TOKEN_ENV}" }}',
        # The simulator answers as fast as it can; pacing has tests of its own.
        "requests_per_minute = 400 ": "requests_per_minute = 100000 ",
        "rate_limit_groups = { exports = 10 }": "rate_limit_groups = { exports = 100000 }",
        **(replace or {}),
    }
    if per_page is not None:
        changes["params = { per_page = 1000 }"] = f"params = {{ per_page = {per_page} }}"
    for old, new in changes.items():
        assert old in block, f"the example no longer contains {old!r}"
        block = block.replace(old, new)
    paths = ", ".join(f'"{p}"' for p in [EXAMPLE, *(mappings or [])])
    path = directory / "pmsync.toml"
    path.write_text(
        f"""[store]
url = "sqlite:///{directory / "pmsync.db"}"
[mappings]
paths = [{paths}]
{block}
{extra}"""
    )
    return path
