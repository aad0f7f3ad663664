"""Pendo: account metadata, per-account daily usage and NPS answers, through the aggregation API.

Pendo's aggregation endpoint has no pagination and is not meant for bulk export, so:
  * accounts are read in keyset pages ordered by (metadata.auto.lastupdated, accountId), which
    makes the read incremental and safe across many accounts sharing one timestamp;
  * usage is read in slices of whole days (in the subscription's time zone). A slice's page
    carries the cursor "last finished day", so a crash resumes at the next slice. A read also
    re-reads the last `reread_days` finished days, because Pendo processes events late; a
    usage record is keyed by account and day, so a re-read replaces a day, never adds to it.
    A cycle that finds no newly finished day re-reads them only every `reread_interval` (the
    cursor keeps when it last did): in between, a caught-up cycle asks Pendo nothing.
Feature usage is read for the features the mapping names as source fields `feature:<name>`
(a feature name from the catalog, or a feature id): one featureEvents request per slice covers
every named feature, and the catalog is kept in the discovery cache, so a re-read of a
caught-up stream costs one request per source (events, featureEvents).
NPS answers (`nps_responses`) are read from `pollEvents` in the same day slices as usage (with
the same re-read window); the guide catalog, which says which poll is an NPS rating, is kept in
the discovery cache and read again when an answer names a poll it lacks (see polls.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
from pydantic import BaseModel

from pmsync.connectors.attribution import claim
from pmsync.connectors.base import Connector, FieldInfo, Page, Record, StreamSpec, SweepPage
from pmsync.connectors.budget import BudgetRule, RequestBudget
from pmsync.connectors.http import make_session, request_json
from pmsync.connectors.pendo import aggregation as agg
from pmsync.connectors.pendo import polls
from pmsync.connectors.pendo.settings import PendoSettings
from pmsync.errors import FatalError
from pmsync.logs import get_logger
from pmsync.validation import did_you_mean

log = get_logger("pmsync.connectors.pendo")

FEATURE_PREFIX = "feature:"
KEY_HEADER = "x-pendo-integration-key"


class AccountsCursor(BaseModel):
    """The last account read, in (lastupdated, accountId) order; exclusive."""

    lastupdated: int = 0
    account_id: str = ""


class UsageCursor(BaseModel):
    """Every day up to and including `last_day` has been read and stored; the re-read window
    was last read at `reread_ms` (epoch ms; None: never, or by a version that did not say)."""

    last_day: date | None = None
    reread_ms: int | None = None


ACCOUNT_FIELDS = frozenset(["accountId", "metadata"])
USAGE_FIELDS = (
    ("id", "string", "accountId:day, the record key"),
    ("accountId", "string", "Pendo account id"),
    ("day", "date", "the day, in the subscription's time zone"),
    ("dayStart", "integer", "the day's start, epoch milliseconds"),
    ("numEvents", "integer", "events that day"),
    ("numMinutes", "integer", "minutes active that day"),
    ("activeVisitors", "integer", "distinct visitors active that day"),
    ("features", "object", "feature name -> {numEvents, numMinutes, visitors}"),
)


class PendoConnector(Connector):
    """Reads Pendo accounts and usage with requests, one session per instance."""

    type_name = "pendo"
    description = "Pendo: account metadata and daily usage per account (aggregation API)"
    settings_model = PendoSettings

    def __init__(self, name: str, settings: PendoSettings) -> None:
        super().__init__(name, settings)
        self.settings: PendoSettings = settings
        self.days = agg.Days(ZoneInfo(settings.timezone))
        self.clock: Callable[[], float] = time.time
        self._session: requests.Session | None = None
        self._polls: dict[str, polls.Poll] = {}

    # ---- plumbing ---------------------------------------------------------------------

    def session(self) -> requests.Session:
        if self._session is None:
            budget = RequestBudget(
                [BudgetRule("pendo", r"/api/v1/", per_minute=self.settings.requests_per_minute)]
            )
            self._session, adapter = make_session(
                ca_bundle=self.settings.ca_bundle, timeout=self.settings.timeout, budget=budget
            )
            claim(adapter, self.name)
            self._session.headers[KEY_HEADER] = self.settings.integration_key.get_secret_value()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None

    def _call(self, method: str, path: str, *, payload: Any = None) -> Any:
        """One request; every failure becomes an error of the taxonomy, never with the key."""
        url = f"{self.settings.api_root()}{path}"
        _response, body = request_json(
            self.session(), method, url, json=payload, connector=self.name, what=f"{method} {path}"
        )
        return body

    def _aggregate(self, name: str, pipeline: list[agg.Stage]) -> list[Any]:
        answer = self._call("POST", "/api/v1/aggregation", payload=agg.body(name, pipeline))
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise FatalError(f"aggregation '{name}': answer lacks results", connector=self.name)
        return results

    # ---- interface --------------------------------------------------------------------

    def streams(self) -> Sequence[StreamSpec]:
        return (
            StreamSpec(
                "accounts",
                "accountId",
                AccountsCursor,
                "Account metadata (auto, agent, custom), incremental on lastupdated",
                object_name="accounts",
                known_fields=ACCOUNT_FIELDS,
                sweep="census",
                entity_hint="organization",
            ),
            StreamSpec(
                "usage",
                "id",
                UsageCursor,
                "Usage per account and day: events, minutes, active visitors, named features",
                object_name="usage",
                # No static field list: `feature:<name>` fields depend on the feature catalog.
                known_fields=frozenset(),
                sweep="census" if self.settings.start_date else "none",
                entity_hint="usage",
            ),
            StreamSpec(
                "nps_responses",
                "id",
                UsageCursor,
                "NPS answers (rating and reason) per visitor, from poll events by day",
                object_name="nps_responses",
                known_fields=frozenset(name for name, _kind, _label in polls.FIELDS),
                entity_hint="survey_response",
            ),
        )

    def check(self) -> None:
        self._call("GET", "/api/v1/metadata/schema/account")

    def objects(self) -> Sequence[str]:
        return ["accounts", "usage", "nps_responses"]

    def discover(self, object_name: str) -> Sequence[FieldInfo]:
        spec = self.stream(object_name)
        if spec.name == "accounts":
            schema = self._call("GET", "/api/v1/metadata/schema/account")
            fields = [FieldInfo("accountId", "string", label="Account id")]
            for group in ("auto", "agent", "custom"):
                for key, meta in sorted(((schema or {}).get(group) or {}).items()):
                    info = meta if isinstance(meta, dict) else {}
                    fields.append(
                        FieldInfo(
                            f"metadata.{group}.{key}",
                            str(info.get("Type", "")),
                            label=str(info.get("DisplayName", "")),
                            custom=group == "custom",
                        )
                    )
            return fields
        if spec.name == "nps_responses":
            return [FieldInfo(name, kind, label=label) for name, kind, label in polls.FIELDS]
        standard = [FieldInfo(name, kind, label=label) for name, kind, label in USAGE_FIELDS]
        features = [
            FieldInfo(
                f"{FEATURE_PREFIX}{f['name']}",
                "object",
                label=f"featureId {f['id']}: numEvents, numMinutes, visitors",
                custom=True,
                extra={"featureId": f["id"], "path": f'"{FEATURE_PREFIX}{f["name"]}".numEvents'},
            )
            for f in self._feature_catalog(fresh=True)
        ]
        return standard + features

    def read(
        self,
        stream: StreamSpec,
        cursor: BaseModel | None,
        *,
        fields: frozenset[str] = frozenset(),
    ) -> Iterator[Page]:
        if stream.name == "accounts":
            start = cursor if isinstance(cursor, AccountsCursor) else AccountsCursor()
            return self._read_accounts(start)
        if stream.name == "usage":
            at = cursor if isinstance(cursor, UsageCursor) else UsageCursor()
            return self._read_usage(at, fields)
        if stream.name == "nps_responses":
            at = cursor if isinstance(cursor, UsageCursor) else UsageCursor()
            return self._read_days(at, self._nps_slice)
        raise FatalError(f"no stream '{stream.name}'", connector=self.name)

    def sweep(self, stream: StreamSpec) -> Iterator[SweepPage]:
        if stream.name == "accounts":
            rows = self._aggregate("pmsync-account-census", agg.account_ids_pipeline())
            return iter([SweepPage(present=[r for r in rows if isinstance(r, dict)])])
        if stream.name == "usage" and self.settings.start_date is not None:
            return self._usage_census(self.settings.start_date)
        return super().sweep(stream)

    # ---- accounts -----------------------------------------------------------------------

    def _read_accounts(self, after: AccountsCursor) -> Iterator[Page]:
        size = self.settings.page_size
        while True:
            pipeline = agg.accounts_pipeline(after.lastupdated, after.account_id, size)
            rows = self._aggregate("pmsync-accounts", pipeline)
            if not rows:
                return
            last = rows[-1] if isinstance(rows[-1], dict) else {}
            stamp = ((last.get("metadata") or {}).get("auto") or {}).get("lastupdated")
            following = AccountsCursor(
                lastupdated=int(stamp or 0), account_id=str(last.get("accountId", ""))
            )
            yield Page(records=[_record(r) for r in rows], cursor=following)
            if len(rows) < size:
                return
            if following == after:
                raise FatalError("accounts: the keyset did not advance", connector=self.name)
            after = following

    # ---- usage --------------------------------------------------------------------------

    def _yesterday(self) -> date:
        return self.days.today(self.clock()) - timedelta(days=1)

    def usage_range(self, last_day: date | None) -> tuple[date, date] | None:
        """The finished days a read covers: after the cursor, plus the re-read window."""
        yesterday = self._yesterday()
        settings = self.settings
        if last_day is None:
            first = settings.start_date or yesterday - timedelta(days=settings.backfill_days - 1)
        elif last_day > yesterday:
            return None
        else:
            first = min(
                last_day + timedelta(days=1), yesterday - timedelta(days=settings.reread_days - 1)
            )
            if settings.start_date is not None:
                first = max(first, settings.start_date)
        return (first, yesterday) if first <= yesterday else None

    def due_range(self, cursor: UsageCursor) -> tuple[date, date] | None:
        """What a read covers now: `usage_range`, except that a caught-up cursor (no newly
        finished day) re-reads its window only once `reread_interval` has passed since it last
        did, so an idle poll asks nothing between re-reads."""
        span = self.usage_range(cursor.last_day)
        if span is None or cursor.last_day is None or cursor.last_day < span[1]:
            return span
        interval_ms = self.settings.reread_interval.total_seconds() * 1000
        if cursor.reread_ms is not None and self._now_ms() - cursor.reread_ms < interval_ms:
            return None
        return span

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _read_usage(self, cursor: UsageCursor, fields: frozenset[str]) -> Iterator[Page]:
        features = self._wanted_features(fields) if self.due_range(cursor) else {}

        def read_slice(first: date, last: date) -> tuple[list[Record], int]:
            return self._usage_slice(first, last, features), 1 + bool(features)

        yield from self._read_days(cursor, read_slice)

    def _read_days(
        self,
        cursor: UsageCursor,
        read_slice: Callable[[date, date], tuple[list[Record], int]],
    ) -> Iterator[Page]:
        """Pages of whole-day slices after the cursor (and the re-read window, when due)."""
        span = self.due_range(cursor)
        if span is None:
            return
        last_day = cursor.last_day
        read_at = self._now_ms()
        first, last = span
        step = timedelta(days=self.settings.slice_days)
        # The re-read window is one slice: a caught-up cycle costs one request per source.
        window = last - timedelta(days=self.settings.reread_days - 1)
        start = first
        while start <= last:
            end = last if start >= window else min(start + step - timedelta(days=1), last)
            records, requests_made = read_slice(start, end)
            done = end if last_day is None else max(last_day, end)
            log.debug("day_slice", first=start.isoformat(), last=end.isoformat())
            following = UsageCursor(last_day=done, reread_ms=read_at)
            yield Page(records=records, cursor=following, requests=requests_made)
            start = end + timedelta(days=1)

    def _usage_slice(self, first: date, last: date, features: dict[str, str]) -> list[Record]:
        count = (last - first).days + 1
        first_ms = self.days.start_ms(first)
        rows = self._aggregate(
            f"pmsync-usage-{first.isoformat()}",
            agg.usage_pipeline(first_ms, count, self.settings.app_id),
        )
        records: dict[str, Record] = {}
        malformed: list[Record] = []
        for row in rows:
            placed = self._place(row, first, last)
            if placed is None:
                malformed.append({"_malformed": row})
                continue
            key, day, account = placed
            if key is None:
                continue  # outside the slice: Pendo rounds ranges to whole days
            records[key] = _usage_record(key, account, day, self.days.start_ms(day), row)
            _add_feature_slots(records[key], features)
        if features:
            labels = {feature_id: label for label, feature_id in features.items()}
            feature_rows = self._aggregate(
                f"pmsync-features-{first.isoformat()}",
                agg.feature_pipeline(list(labels), first_ms, count),
            )
            for row in feature_rows:
                label = labels.get(str(row.get("featureId"))) if isinstance(row, dict) else None
                placed = self._place(row, first, last)
                if label is None or placed is None or placed[0] is None:
                    continue
                key, day, account = placed
                assert key is not None
                if key not in records:
                    records[key] = _usage_record(key, account, day, self.days.start_ms(day), {})
                    _add_feature_slots(records[key], features)
                usage = {
                    "featureId": features[label],
                    "numEvents": row.get("numEvents") or 0,
                    "numMinutes": row.get("numMinutes") or 0,
                    "visitors": row.get("visitors") or 0,
                }
                records[key][f"{FEATURE_PREFIX}{label}"] = usage
                records[key]["features"][label] = usage
        return [*records.values(), *malformed]

    def _place(self, row: Any, first: date, last: date) -> tuple[str | None, date, str] | None:
        """(key or None when outside the slice, day, account) of an aggregation row."""
        if not isinstance(row, dict):
            return None
        account, stamp = row.get("accountId"), row.get("day")
        if not isinstance(account, str) or not account or not isinstance(stamp, int):
            return None
        day = self.days.of(stamp)
        if not first <= day <= last:
            return None, day, account
        return f"{account}:{day.isoformat()}", day, account

    def _nps_slice(self, first: date, last: date) -> tuple[list[Record], int]:
        """NPS rating answers of whole days, each with its reason."""
        rows = self._aggregate(
            f"pmsync-polls-{first.isoformat()}",
            agg.poll_events_pipeline(
                self.days.start_ms(first), (last - first).days + 1, self.settings.app_id
            ),
        )
        requests_made = 1
        inside: list[dict[str, Any]] = []
        malformed: list[Record] = []
        for row in rows:
            if not isinstance(row, dict) or not row.get("visitorId") or not row.get("pollId"):
                malformed.append({"_malformed": row})
                continue
            stamp = row.get("day")
            if isinstance(stamp, int) and first <= self.days.of(stamp) <= last:
                inside.append(row)
        answered = {str(r["pollId"]) for r in inside}
        if not answered <= set(self._polls):
            requests_made += self._load_polls(answered)
        return [*polls.nps_records(inside, self._polls), *malformed], requests_made

    def _load_polls(self, answered: set[str]) -> int:
        """The guide catalog (which poll is an NPS rating), from the discovery cache unless it
        lacks a poll answered since; returns the requests it made."""
        fetched = 0

        def fetch() -> list[Any]:
            nonlocal fetched
            fetched += 1
            return list(self._aggregate("pmsync-guides", agg.guides_pipeline()))

        self._polls = polls.catalog(self.cached("guides", fetch))
        if not fetched and not answered <= set(self._polls):
            self._polls = polls.catalog(self.cached("guides", fetch, fresh=True))
        return fetched

    def _usage_census(self, floor: date) -> Iterator[SweepPage]:
        last = self._yesterday()
        step = timedelta(days=self.settings.census_slice_days)
        start = floor
        while start <= last:
            end = min(start + step - timedelta(days=1), last)
            rows = self._aggregate(
                f"pmsync-usage-census-{start.isoformat()}",
                agg.census_pipeline(
                    self.days.start_ms(start), (end - start).days + 1, self.settings.app_id
                ),
            )
            present = [
                {"id": placed[0]}
                for row in rows
                if (placed := self._place(row, start, end)) is not None and placed[0]
            ]
            yield SweepPage(present=present)
            start = end + timedelta(days=1)

    # ---- features -----------------------------------------------------------------------

    def _feature_catalog(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """GET /api/v1/feature (id and name of each), kept in the discovery cache."""

        def fetch() -> list[dict[str, Any]]:
            catalog = self._call("GET", "/api/v1/feature")
            if not isinstance(catalog, list):
                raise FatalError("GET /api/v1/feature: expected a list", connector=self.name)
            return [
                {"id": f["id"], "name": f["name"]}
                for f in catalog
                if isinstance(f, dict) and "id" in f and "name" in f
            ]

        return self.cached("feature", fetch, fresh=fresh)

    def _wanted_features(self, fields: frozenset[str]) -> dict[str, str]:
        """Feature label (as the mapping writes it) -> feature id, for `feature:<label>` fields."""
        labels = sorted(f[len(FEATURE_PREFIX) :] for f in fields if f.startswith(FEATURE_PREFIX))
        if not labels:
            return {}
        catalog = self._feature_catalog()
        by_name = {str(f["name"]): str(f["id"]) for f in catalog}
        ids = {str(f["id"]) for f in catalog}
        if any(label not in ids and label not in by_name for label in labels):
            catalog = self._feature_catalog(fresh=True)  # a feature created since
            by_name = {str(f["name"]): str(f["id"]) for f in catalog}
            ids = {str(f["id"]) for f in catalog}
        wanted: dict[str, str] = {}
        for label in labels:
            if label in ids:
                wanted[label] = label
            elif label in by_name:
                wanted[label] = by_name[label]
            else:
                raise FatalError(
                    f"the mapping names feature '{label}' ({FEATURE_PREFIX}{label}), which "
                    f"Pendo does not have{did_you_mean(label, by_name)}; "
                    f"see `pmsync discover {self.name} usage`",
                    connector=self.name,
                )
        return wanted


def _record(row: Any) -> Record:
    return row if isinstance(row, dict) else {"_malformed": row}


def _usage_record(key: str, account: str, day: date, start_ms: int, row: dict[str, Any]) -> Record:
    return {
        "id": key,
        "accountId": account,
        "day": day.isoformat(),
        "dayStart": start_ms,
        "numEvents": row.get("numEvents") or 0,
        "numMinutes": row.get("numMinutes") or 0,
        "activeVisitors": row.get("activeVisitors") or 0,
        "features": {},
    }


def _add_feature_slots(record: Record, features: dict[str, str]) -> None:
    """Zero usage for every requested feature, so a quiet day maps to 0 rather than null."""
    for label, feature_id in features.items():
        empty = {"featureId": feature_id, "numEvents": 0, "numMinutes": 0, "visitors": 0}
        record[f"{FEATURE_PREFIX}{label}"] = empty
        record["features"][label] = dict(empty)
