"""Old keys of moved issues, so that tickets naming them still link.

A Jira issue moved to another project gets a new key; the old one keeps working in Jira
(`GET issue/MOB-91` answers with PLAT-1011), and people keep writing it in tickets for years.
The world indexes issues by their current key, so an old key needs an alias:
  * for free, from the links of Zendesk's Jira integration: a link keeps the key the issue had
    when it was linked, beside the issue's immutable id;
  * otherwise by asking the issue tracker once per key (`KeyLookup`), remembered in the store
    (`issue_key_aliases`), a key that names nothing included, so it is not asked again.
Only keys a ticket names are looked up: values of the issue-key field, keys in the text whose
project is one the store knows (so ISO-9001 or UTF-8 never cost a request), and override keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import sqlalchemy as sa

from pmsync.errors import PmsyncError
from pmsync.logs import get_logger
from pmsync.sync.links.world import Entity, World
from pmsync.sync.store.schema import issue_key_aliases
from pmsync.sync.store.store import Store, utcnow

log = get_logger("pmsync.links")

#: keys -> the issue id each names now (None: no such issue, or not visible to the API user).
#: A key left out of the answer (its look-up failed) is asked again next time.
KeyLookup = Callable[[Sequence[str]], Mapping[str, str | None]]


def project_of(key: str) -> str:
    return key.partition("-")[0].upper()


def known_projects(world: World, extra: Iterable[str] = ()) -> set[str]:
    """Projects the store knows: of its issues' keys, of integration links' keys (held, or
    learnt from links it does not hold: `learn_from_links`), configured."""
    projects = {project_of(k) for k in world.by_issue_key}
    projects |= {project_of(str(link.get("issue_key"))) for link in world.issue_links.values()}
    projects |= world.link_projects
    projects |= {p.upper() for p in extra}
    projects.discard("")
    return projects


def add_aliases(
    store: Store,
    world: World,
    wanted: Iterable[str],
    lookups: Mapping[str, KeyLookup],
) -> None:
    """Index `world` by the old keys among `wanted` (upper-case keys tickets name)."""
    unknown = {k for k in wanted if k not in world.by_issue_key}
    _from_links(world)
    unknown -= set(world.by_issue_key)
    if not unknown:
        return
    cached = _cached(store)
    issues_of = _issues_by_connector(world)
    for connector, lookup in lookups.items():
        if connector not in issues_of:
            continue  # this tracker holds no issue pmsync has: nothing of it to link to
        known = cached.get(connector, {})
        ask = sorted(k for k in unknown if k not in known)
        if ask:
            try:
                answers = dict(lookup(ask))
            except PmsyncError as exc:  # the tracker is down: these keys wait for next time
                log.warning("issue_key_lookup_failed", connector=connector, error=str(exc))
                answers = {}
            _remember(store, connector, answers)
            known = {**known, **answers}
            log.info("issue_keys_looked_up", connector=connector, keys=len(answers))
        for key in sorted(unknown):
            issue = issues_of[connector].get(str(known.get(key)))
            if issue is not None:
                world.alias(key, issue)
        unknown -= set(world.by_issue_key)


def learn_from_links(world: World, links: Iterable[Entity]) -> None:
    """What `world` needs of integration links it does not hold (a full derivation keeps them
    on disk, `spilled_links.py`): the projects their keys name and the aliases they give, as
    if it held them. Call it before any other alias is added (as `add_aliases` would)."""
    for link in links:
        world.link_projects.add(project_of(str(link.get("issue_key"))))
        _alias_from_link(world, link)


def _from_links(world: World) -> None:
    for link in world.issue_links.values():
        _alias_from_link(world, link)


def _alias_from_link(world: World, link: Entity) -> None:
    """A link keyed on an issue id also names the key the issue had: an alias for free."""
    key = str(link.get("issue_key") or "").upper()
    issue = world.by_issue_id.get(str(link.get("issue_id")))
    if key and issue is not None and key not in world.by_issue_key:
        world.alias(key, issue)


def _issues_by_connector(world: World) -> dict[str, dict[str, Entity]]:
    found: dict[str, dict[str, Entity]] = {}
    for issue in world.issues.values():
        found.setdefault(issue.connector, {})[str(issue.get("id", issue.key))] = issue
    return found


def _cached(store: Store) -> dict[str, dict[str, str | None]]:
    found: dict[str, dict[str, str | None]] = {}
    with store.engine.connect() as connection:
        for row in connection.execute(sa.select(issue_key_aliases)):
            found.setdefault(row.connector, {})[row.key] = row.issue_id
    return found


def _remember(store: Store, connector: str, answers: Mapping[str, str | None]) -> None:
    now = utcnow()
    with store.transaction() as connection:
        for key, issue_id in answers.items():
            connection.execute(
                sa.delete(issue_key_aliases).where(
                    issue_key_aliases.c.connector == connector, issue_key_aliases.c.key == key
                )
            )
            connection.execute(
                sa.insert(issue_key_aliases).values(
                    connector=connector, key=key, issue_id=issue_id, checked_at=now
                )
            )
