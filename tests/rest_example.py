"""The PostHog example of config.example.toml, uncommented and pointed at a simulator.

Tests load the shipped example itself, so the example users copy is the one that is tested.
"""

from __future__ import annotations

from pathlib import Path

from pmsync.simulators.posthog import PostHogSimulator

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_START = "# [connectors.posthog]"
TOKEN_ENV = "PMSYNC_TEST_POSTHOG_KEY"


def posthog_example() -> str:
    """The commented [connectors.posthog] block of config.example.toml, uncommented."""
    return uncommented_block(REPO / "config.example.toml", EXAMPLE_START)


def uncommented_block(path: Path, first_line: str) -> str:
    """The run of comment lines of `path` that starts at `first_line`, uncommented."""
    lines = path.read_text().splitlines()
    start = lines.index(first_line)
    block: list[str] = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(block) + "\n"


def example_config(
    directory: Path,
    sim: PostHogSimulator,
    *,
    initial_value: str | None = None,
    limit: int | None = None,
    extra: str = "",
) -> Path:
    """A pmsync.toml holding the example, its mapping, and a store in `directory`."""
    example = posthog_example()
    example = example.replace('base_url = "https://us.posthog.com"', f'base_url = "{sim.base_url}"')
    example = example.replace("/api/projects/12345/", f"/api/projects/{sim.project_id}/")
    example = example.replace(
        '{ credential = "posthog_personal_api_key" }', f'{{ env = "{TOKEN_ENV}" }}'
    )
    example = example.replace("requests_per_minute = 2 ", "requests_per_minute = 100000 ")
    if initial_value is not None:
        example = example.replace(
            'initial_value = "2024-01-01"', f'initial_value = "{initial_value}"'
        )
    if limit is not None:
        example = example.replace("limit = 1000", f"limit = {limit}")
    path = directory / "pmsync.toml"
    path.write_text(
        f"""[store]
url = "sqlite:///{directory / "pmsync.db"}"
[mappings]
paths = ["{REPO / "mappings" / "examples" / "posthog.toml"}"]
{example}
{extra}"""
    )
    return path
