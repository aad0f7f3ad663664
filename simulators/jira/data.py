"""Generate a plausible Jira site: projects, versions, components and issues.

Deterministic for a seed. Issues carry status (with its category), resolution and resolution
date for done work, fix versions (released or not), components, labels, a priority, an assignee,
a description of a few hundred words and Story Points, so a page weighs what a real one does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from pmsync.simulators.jira.app import JiraSimulator
from pmsync.simulators.jira.fields import STORY_POINTS

CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {
        "id": 4,
        "key": "indeterminate",
        "colorName": "yellow",
        "name": "In Progress",
    },
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = {
    "To Do": ("10000", "new"),
    "In Progress": ("3", "indeterminate"),
    "In Review": ("10001", "indeterminate"),
    "Done": ("10002", "done"),
}
PRIORITIES = [("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low")]
ISSUE_TYPES = [("10001", "Story"), ("10002", "Bug"), ("10003", "Task")]
LABELS = ["customer-request", "tech-debt", "performance", "ux", "security", "billing", "api"]
COMPONENTS = ["Backend", "Frontend", "Mobile", "Integrations", "Reporting"]
VERSIONS = [("2025.1", True), ("2025.2", True), ("2026.1", False), ("2026.2", False)]
WORDS = [
    "customer",
    "export",
    "dashboard",
    "invoice",
    "login",
    "error",
    "slow",
    "sync",
    "report",
    "chart",
    "filter",
    "permission",
    "mobile",
    "crash",
    "webhook",
    "api",
    "timeout",
    "billing",
    "seat",
    "license",
    "admin",
    "role",
    "integration",
    "salesforce",
    "calendar",
    "reminder",
    "notification",
    "email",
    "template",
    "import",
    "csv",
    "upload",
    "limit",
    "retry",
    "search",
    "index",
]
PEOPLE = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov", "Ken Thompson"]


def status(name: str) -> dict[str, Any]:
    """A status object with its category, as Jira embeds it in an issue."""
    status_id, category = STATUSES[name]
    return {
        "self": f"/rest/api/2/status/{status_id}",
        "description": "",
        "name": name,
        "id": status_id,
        "statusCategory": dict(CATEGORIES[category]),
    }


def person(name: str, cloud: bool) -> dict[str, Any]:
    handle = name.lower().replace(" ", ".")
    if cloud:
        return {
            "accountId": f"5b10{abs(hash(handle)) % 10**12:012d}",
            "displayName": name,
            "active": True,
            "timeZone": "UTC",
        }
    return {"name": handle, "key": handle, "displayName": name, "active": True}


def add_projects(
    sim: JiraSimulator, keys: Sequence[str] = ("CORE", "MOBILE", "DATA")
) -> list[dict[str, Any]]:
    return [
        sim.add_project(key, f"{key.title()} team", versions=VERSIONS, components=COMPONENTS)
        for key in keys
        if key not in sim.projects
    ]


def issue_fields(
    sim: JiraSimulator, project_key: str, rng: random.Random, created_ms: int, updated_ms: int
) -> dict[str, Any]:
    """Field values of one generated issue."""
    project = sim.projects[project_key]
    state = rng.choices(list(STATUSES), weights=[4, 2, 1, 3])[0]
    done = STATUSES[state][1] == "done"
    cloud = sim.deployment == "cloud"
    versions = rng.sample(project["versions"], k=rng.choice([0, 1, 1, 2]))
    words = rng.choices(WORDS, k=rng.randint(60, 260))
    priority = rng.choice(PRIORITIES)
    kind = rng.choice(ISSUE_TYPES)
    return {
        "summary": " ".join(rng.choices(WORDS, k=rng.randint(4, 9))).capitalize(),
        "description": " ".join(words).capitalize() + ".",
        "status": status(state),
        "resolution": {"id": "10000", "name": "Done"} if done else None,
        "resolutiondate": updated_ms if done else None,
        "fixVersions": versions,
        "components": rng.sample(project["components"], k=rng.choice([0, 1, 1, 2])),
        "labels": sorted(rng.sample(LABELS, k=rng.choice([0, 1, 2, 3]))),
        "issuetype": {"id": kind[0], "name": kind[1], "subtask": False},
        "priority": {"id": priority[0], "name": priority[1]},
        "assignee": person(rng.choice(PEOPLE), cloud) if rng.random() < 0.8 else None,
        "reporter": person(rng.choice(PEOPLE), cloud),
        STORY_POINTS: rng.choice([None, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0]),
        "created": created_ms,
    }


def generate(
    sim: JiraSimulator,
    *,
    issues: int,
    seed: int = 7,
    projects: Sequence[str] = ("CORE", "MOBILE", "DATA"),
    start: float | None = None,
    end: float | None = None,
) -> list[dict[str, Any]]:
    """Create projects and `issues` issues updated between `start` and `end` (epoch seconds).

    Defaults: the 180 days up to ten minutes before the simulator's clock, so every issue is
    settled for a reader that lags the present.
    """
    rng = random.Random(seed)
    add_projects(sim, projects)
    end = sim.clock() - 600 if end is None else end
    start = end - 180 * 86_400 if start is None else start
    created: list[dict[str, Any]] = []
    for _ in range(issues):
        born = rng.uniform(start, end)
        touched = rng.uniform(born, end)
        project_key = rng.choice(list(projects))
        fields = issue_fields(sim, project_key, rng, int(born * 1000), int(touched * 1000))
        created.append(sim.create_issue(project_key, fields, at=touched))
    return created
