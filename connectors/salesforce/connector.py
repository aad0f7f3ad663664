"""Salesforce: any sObject a mapping names (Account and Contact by default), read incrementally.

Each stream reads the fields its mapping uses, plus Id, SystemModstamp and IsDeleted, ordered
by (SystemModstamp, Id); `cursor.py` explains the cursor and why ties and late rows are safe.
Incremental reads use queryAll, so Recycle Bin rows arrive with IsDeleted = true and become
tombstones; hard deletes never appear there, so a periodic Id-only census sweep finds them
(getDeleted reaches back only 15 days). A first sync of more than `bulk_threshold` rows goes
through Bulk API 2.0. Formula fields never move SystemModstamp, so a stream whose mapping reads
one re-reads the object every `formula_refresh_interval`. Every call passes the quota guard.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from simple_salesforce.api import Salesforce

from pmsync.connectors.base import (
    Connector,
    FieldInfo,
    FieldWrite,
    Page,
    Record,
    StreamSpec,
    SweepPage,
    WriteOutcome,
)
from pmsync.connectors.salesforce import records as rec
from pmsync.connectors.salesforce import soql
from pmsync.connectors.salesforce.client import SalesforceClient, SchemaChanged
from pmsync.connectors.salesforce.cursor import SObjectCursor
from pmsync.connectors.salesforce.quota import QuotaGuard
from pmsync.connectors.salesforce.settings import SalesforceSettings
from pmsync.errors import FatalError, RetriableError
from pmsync.logs import get_logger
from pmsync.redact import register_secret

log = get_logger("pmsync.salesforce")

SOBJECT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
DEFAULT_STREAMS = ("Account", "Contact")
ENTITY_HINTS = {"Account": "account", "Contact": "person", "Lead": "person"}
COLLECTION_LIMIT = 200
MISSING_OBJECT = "pmsync_missing"  # a describe answered NOT_FOUND, kept like any other answer
# Objects only some orgs have: CurrencyType exists in multi-currency orgs only. A mapping of
# one reads nothing (and says so once) in an org without it, instead of failing every cycle.
OPTIONAL_OBJECTS = frozenset({"CurrencyType", "DatedConversionRate"})
RETRIABLE_RECORD_ERRORS = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG"})
ORDER = "SystemModstamp, Id"
Pages = Generator[Page, None, SObjectCursor]


@dataclass(frozen=True)
class ReadPlan:
    """What one read of an object selects, and what describe says about it."""

    object_name: str
    fields: tuple[str, ...]
    types: Mapping[str, str]
    formula_fields: frozenset[str]

    def select(self, where: str | None = None, order_by: str | None = ORDER) -> str:
        return soql.select(self.fields, self.object_name, where=where, order_by=order_by)


class SalesforceConnector(Connector):
    """Reads sObjects through simple-salesforce (REST and Bulk API 2.0); writes fields back."""

    type_name = "salesforce"
    description = "Salesforce: any sObject (Account, Contact, custom objects) via simple-salesforce"
    settings_model = SalesforceSettings
    open_streams = True

    def __init__(self, name: str, settings: SalesforceSettings) -> None:
        super().__init__(name, settings)
        self.settings: SalesforceSettings = settings
        self.sleep: Callable[[float], None] = time.sleep
        self.guard = QuotaGuard(
            name,
            reserve_percent=settings.quota_reserve_percent,
            recheck_seconds=settings.quota_recheck_interval.total_seconds(),
        )
        self._client: SalesforceClient | None = None
        self._warned: set[tuple[str, frozenset[str]]] = set()
        self._absent_logged: set[str] = set()
        for secret in _secrets(settings):
            register_secret(secret)

    @property
    def client(self) -> SalesforceClient:
        if self._client is None:
            self._client = SalesforceClient(self.name, self.settings, self.guard)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    # ---- streams and schema --------------------------------------------------------------------

    def streams(self) -> Sequence[StreamSpec]:
        return [self.stream(name) for name in DEFAULT_STREAMS]

    def stream(self, name: str) -> StreamSpec:
        if not SOBJECT_NAME.match(name):
            raise FatalError(
                f"'{name}' is not an sObject API name (e.g. Account, Invoice__c)",
                connector=self.name,
            )
        return StreamSpec(
            name,
            "Id",
            SObjectCursor,
            f"Salesforce {name} records (incremental on SystemModstamp)",
            object_name=name,
            sweep="census",
            entity_hint=ENTITY_HINTS.get(name),
        )

    def check(self) -> None:
        self.guard.begin()
        self.client.call("GET limits", lambda sf: sf.limits())

    def objects(self) -> Sequence[str]:
        self.guard.begin()
        body = self.client.call("GET sobjects", lambda sf: sf.describe())
        return sorted(
            str(o["name"]) for o in (body or {}).get("sobjects", []) if o.get("queryable", True)
        )

    def discover(self, object_name: str) -> Sequence[FieldInfo]:
        self.guard.begin()
        described = self._describe(self.stream(object_name).name, fresh=True)
        found: list[FieldInfo] = []
        for f in described.get("fields", []):
            extra = {
                "calculated": bool(f.get("calculated")),
                "formula": f.get("calculatedFormula"),
                "updateable": bool(f.get("updateable")),
                "reference_to": f.get("referenceTo") or [],
            }
            found.append(
                FieldInfo(
                    str(f["name"]),
                    str(f.get("type", "")),
                    label=str(f.get("label", "")),
                    custom=bool(f.get("custom")),
                    extra=extra,
                )
            )
            relation = f.get("relationshipName")
            if relation:
                found.append(
                    FieldInfo(
                        f"{relation}.Name",
                        "string",
                        label=f"the {relation} record's name (via {f['name']})",
                        custom=bool(f.get("custom")),
                        extra={"relationship": relation},
                    )
                )
        return found

    def _describe(self, object_name: str, *, fresh: bool = False) -> dict[str, Any]:
        """The object's describe, shared with other processes through the discovery cache."""
        path = f"sobjects/{object_name}/describe"

        def fetch() -> dict[str, Any]:
            try:
                body = self.client.call(f"describe {object_name}", lambda sf: sf.restful(path))
            except FatalError as exc:
                if "NOT_FOUND" in str(exc):
                    return {MISSING_OBJECT: True}
                raise
            if not isinstance(body, dict) or not isinstance(body.get("fields"), list):
                raise FatalError(f"describe {object_name}: unexpected answer", connector=self.name)
            return body

        body = self.cached(f"describe/{object_name}", fetch, fresh=fresh)
        if body.get(MISSING_OBJECT):
            raise FatalError(
                f"no sObject '{object_name}' in this org (`pmsync discover {self.name}` "
                "lists the objects)",
                connector=self.name,
            )
        return body

    def _missing(self, object_name: str) -> bool:
        found = self.discovery.get(
            self.name, f"describe/{object_name}", self.settings.discovery_cache
        )
        return bool(found and found.get(MISSING_OBJECT))

    def plan(self, object_name: str, wanted: frozenset[str]) -> ReadPlan:
        """The select list: the mapping's fields the object has, plus Id and the cursor fields.

        A root that names a relationship (Owner) reads the related record's Name. Fields the
        org does not have are left out with a warning, so a mapping can offer fallbacks such
        as `ARR__c || AnnualRevenue`.
        """
        described = self._describe(object_name)
        by_name = {str(f["name"]): f for f in described["fields"]}
        relations = {
            str(f["relationshipName"]) for f in by_name.values() if f.get("relationshipName")
        }
        if "SystemModstamp" not in by_name:
            raise FatalError(
                f"{object_name} has no SystemModstamp, so it cannot be read incrementally",
                connector=self.name,
            )
        fields: list[str] = [f for f in ("Id", "SystemModstamp", "IsDeleted") if f in by_name]
        missing: list[str] = []
        for name in sorted(wanted):
            if name in fields:
                continue
            if name in by_name:
                fields.append(name)
            elif name in relations:
                fields.append(f"{name}.Name")
            else:
                missing.append(name)
        if missing and (object_name, frozenset(missing)) not in self._warned:
            self._warned.add((object_name, frozenset(missing)))
            log.warning(
                "salesforce_fields_missing",
                object=object_name,
                fields=missing,
                hint=f"read as empty; `pmsync discover {self.name} {object_name}` lists fields",
            )
        types = {f: str(by_name[f].get("type", "")) for f in fields if f in by_name}
        formulas = frozenset(f for f in fields if f in by_name and by_name[f].get("calculated"))
        return ReadPlan(object_name, tuple(fields), types, formulas)

    # ---- reading -------------------------------------------------------------------------------

    def read(
        self,
        stream: StreamSpec,
        cursor: BaseModel | None,
        *,
        fields: frozenset[str] = frozenset(),
    ) -> Iterator[Page]:
        state = cursor if isinstance(cursor, SObjectCursor) else None
        return self._read(stream.object_name or stream.name, state, fields)

    def _read(
        self, object_name: str, state: SObjectCursor | None, fields: frozenset[str]
    ) -> Iterator[Page]:
        self.guard.begin()
        try:
            plan = self.plan(object_name, fields)
        except FatalError:
            if object_name in OPTIONAL_OBJECTS and self._missing(object_name):
                if object_name not in self._absent_logged:
                    self._absent_logged.add(object_name)
                    log.info("salesforce_object_absent", object=object_name, reads="nothing")
                return
            raise
        try:
            if state is None or state == SObjectCursor():  # empty: start over
                final = yield from self._first_read(plan)
            elif state.bulk_job is not None:
                final = yield from self._bulk_results(plan, state)
            else:
                final = yield from self._incremental(plan, state)
            if plan.formula_fields and self._refresh_due(final):
                yield from self._refresh(plan, final)
        except SchemaChanged:
            self.discovery.forget(self.name, f"describe/{object_name}")  # the retry describes
            raise

    def _first_read(self, plan: ReadPlan) -> Pages:
        start = self.settings.start_date
        where = f"SystemModstamp >= {soql.datetime_literal(start)}" if start else None
        body = self._query(plan, plan.select(where), include_deleted=False)
        started = self.client.now()
        threshold = self.settings.bulk_threshold
        if threshold is not None and int(body.get("totalSize", 0)) > threshold:
            log.info("salesforce_bulk_first_sync", object=plan.object_name, rows=body["totalSize"])
            # Keep the rows already fetched; the empty cursor means "first sync not done yet".
            live = [rec.clean(r) for r in body.get("records", []) if isinstance(r, dict)]
            yield Page(records=live, cursor=SObjectCursor())
            return (yield from self._bulk_start(plan, where))
        base = SObjectCursor(since=started - self.overlap, refreshed_at=started)
        return (yield from self._pages(plan, body, base, final_since=started - self.overlap))

    def _incremental(self, plan: ReadPlan, state: SObjectCursor) -> Pages:
        body = self._query(plan, plan.select(state.incremental_condition()), include_deleted=True)
        started = self.client.now()
        return (yield from self._pages(plan, body, state, final_since=started - self.overlap))

    def _pages(
        self, plan: ReadPlan, body: dict[str, Any], base: SObjectCursor, *, final_since: datetime
    ) -> Pages:
        """Follow nextRecordsUrl; each page's cursor sits after its last row."""
        cursor = base
        while True:
            rows = body.get("records")
            if not isinstance(rows, list):
                raise FatalError(
                    f"query {plan.object_name}: answer lacks records", connector=self.name
                )
            live, deleted = _split([rec.clean(r) for r in rows if isinstance(r, dict)])
            if rows:
                cursor = cursor.after(rec.clean(rows[-1]))
            done = bool(body.get("done", True))
            if done:
                cursor = cursor.model_copy(update={"since": final_since})
            yield Page(records=live, deleted=deleted, cursor=cursor)
            if done:
                return cursor
            body = self._query_more(f"queryMore {plan.object_name}", body)

    def _query(self, plan: ReadPlan, statement: str, *, include_deleted: bool) -> dict[str, Any]:
        log.debug("salesforce_query", object=plan.object_name, soql=statement)
        body = self.client.call(
            f"{'queryAll' if include_deleted else 'query'} {plan.object_name}",
            lambda sf: sf.query(statement, include_deleted=include_deleted, headers=self._batch),
        )
        if not isinstance(body, dict):
            raise FatalError(f"query {plan.object_name}: unexpected answer", connector=self.name)
        return body

    def _query_more(self, what: str, body: dict[str, Any]) -> dict[str, Any]:
        url = str(body.get("nextRecordsUrl", ""))

        def more(sf: Salesforce) -> Any:
            return sf.query_more(url, identifier_is_url=True, headers=self._batch)

        answer = self.client.call(what, more)
        if not isinstance(answer, dict):
            raise FatalError(f"{what}: unexpected answer", connector=self.name)
        return answer

    @property
    def _batch(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self.settings.batch_size}"}

    @property
    def overlap(self) -> timedelta:
        return self.settings.overlap

    # ---- Bulk API 2.0 first sync ---------------------------------------------------------------

    def _bulk_start(self, plan: ReadPlan, where: str | None) -> Pages:
        payload = {"operation": "query", "query": plan.select(where, order_by=None)}
        job = self.client.call(
            f"create bulk query job {plan.object_name}",
            lambda sf: sf.restful("jobs/query", method="POST", json=payload),
        )
        if not isinstance(job, dict) or not job.get("id"):
            raise FatalError("bulk query job: no job id in the answer", connector=self.name)
        started = self.client.now()
        cursor = SObjectCursor(
            bulk_job=str(job["id"]), bulk_locator="", bulk_started=started, refreshed_at=started
        )
        log.info("salesforce_bulk_job", object=plan.object_name, job=cursor.bulk_job)
        yield Page(records=[], cursor=cursor)  # a crash from here on resumes this job
        return (yield from self._bulk_results(plan, cursor))

    def _bulk_results(self, plan: ReadPlan, cursor: SObjectCursor) -> Pages:
        job_id = str(cursor.bulk_job)
        if not self._bulk_wait(job_id):
            yield Page(records=[], cursor=SObjectCursor())  # start over next time
            raise FatalError(
                f"bulk query job {job_id} failed; the next sync starts the first read again",
                connector=self.name,
            )
        started = cursor.bulk_started or self.client.now()
        locator = cursor.bulk_locator or ""
        while True:
            params: dict[str, Any] = {"maxRecords": self.settings.bulk_page_size}
            if locator:
                params["locator"] = locator
            response = self.client.get_text(
                f"bulk query results {plan.object_name}", f"jobs/query/{job_id}/results", params
            )
            rows = list(rec.csv_records(response.content.decode("utf-8"), plan.types))
            following = response.headers.get("Sforce-Locator", "null")
            if following and following != "null":
                cursor = cursor.model_copy(update={"bulk_locator": following})
                yield Page(records=rows, cursor=cursor)
                locator = following
                continue
            final = SObjectCursor(since=started - self.overlap, refreshed_at=cursor.refreshed_at)
            yield Page(records=rows, cursor=final)
            return final

    def _bulk_wait(self, job_id: str) -> bool:
        """Poll the job until it completes (True) or fails (False); RetriableError on timeout."""
        deadline = time.monotonic() + self.settings.bulk_timeout.total_seconds()
        interval = self.settings.bulk_poll_interval.total_seconds()
        while True:
            try:
                info = self.client.call(
                    f"bulk query job {job_id}", lambda sf: sf.restful(f"jobs/query/{job_id}")
                )
            except FatalError as exc:
                if "NOT_FOUND" in str(exc):
                    log.warning("salesforce_bulk_job_gone", job=job_id)
                    return False
                raise
            info = info if isinstance(info, dict) else {}
            state = str(info.get("state", ""))
            if state == "JobComplete":
                return True
            if state in ("Failed", "Aborted"):
                log.warning(
                    "salesforce_bulk_job_failed",
                    job=job_id,
                    state=state,
                    error=info.get("errorMessage"),
                )
                return False
            if time.monotonic() >= deadline:
                raise RetriableError(
                    f"bulk query job {job_id} still {state} after "
                    f"{self.settings.bulk_timeout}; resuming it later",
                    connector=self.name,
                )
            self.sleep(interval)

    # ---- formula fields ------------------------------------------------------------------------

    def _refresh_due(self, cursor: SObjectCursor) -> bool:
        if cursor.refresh_after is not None or cursor.refreshed_at is None:
            return True
        return self.client.now() - cursor.refreshed_at >= self.settings.formula_refresh_interval

    def _refresh(self, plan: ReadPlan, cursor: SObjectCursor) -> Iterator[Page]:
        """Re-read every live row in Id order: formula values change without SystemModstamp."""
        after = cursor.refresh_after
        where = f"Id > {soql.string(after)}" if after else None
        body = self._query(plan, plan.select(where, order_by="Id"), include_deleted=False)
        if after is None:
            cursor = cursor.model_copy(update={"refreshed_at": self.client.now()})
            log.info(
                "salesforce_formula_refresh", object=plan.object_name, rows=body.get("totalSize")
            )
        while True:
            rows = [rec.clean(r) for r in body.get("records", []) if isinstance(r, dict)]
            done = bool(body.get("done", True))
            last = rows[-1]["Id"] if rows else cursor.refresh_after
            cursor = cursor.model_copy(update={"refresh_after": None if done else last})
            yield Page(records=rows, cursor=cursor)
            if done:
                return
            body = self._query_more(f"queryMore {plan.object_name}", body)

    # ---- deletes -------------------------------------------------------------------------------

    def sweep(self, stream: StreamSpec) -> Iterator[SweepPage]:
        """Every live Id of the object (query leaves the Recycle Bin out)."""
        object_name = stream.object_name or stream.name
        self.guard.begin()
        if object_name in OPTIONAL_OBJECTS:
            try:
                self._describe(object_name)
            except FatalError:
                if self._missing(object_name):
                    return  # the org has no such object: nothing to reconcile
                raise
        statement = soql.select(["Id"], object_name)
        body: dict[str, Any] = self.client.call(
            f"query {object_name} ids",
            lambda sf: sf.query(statement, headers=self._batch),
        )
        while True:
            ids = [{"Id": r["Id"]} for r in body.get("records", []) if isinstance(r, dict)]
            yield SweepPage(present=ids)
            if body.get("done", True):
                return
            body = self._query_more(f"queryMore {object_name} ids", body)

    # ---- writing -------------------------------------------------------------------------------

    def write(self, writes: Sequence[FieldWrite]) -> list[WriteOutcome]:
        """Update fields through sObject Collections, 200 records a call; one outcome per write."""
        self.guard.begin()
        outcomes: list[WriteOutcome | None] = [None] * len(writes)
        for index, item in enumerate(writes):
            if not item.fields:
                outcomes[index] = WriteOutcome(item.key, False, "nothing to write")
            elif not SOBJECT_NAME.match(item.object_name):
                outcomes[index] = WriteOutcome(
                    item.key, False, f"'{item.object_name}' is not an sObject API name"
                )
        pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
        for chunk in _chunks(writes, pending):
            for index, outcome in zip(
                chunk, self._write_chunk([writes[i] for i in chunk]), strict=True
            ):
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def read_fields(
        self, object_name: str, key: str, fields: Sequence[str]
    ) -> dict[str, Any] | None:
        """The record's current values of `fields`; None when it does not exist any more."""
        if not SOBJECT_NAME.match(object_name):
            return None
        self.guard.begin()
        path = f"sobjects/{object_name}/{key}"
        try:
            body = self.client.call(
                f"GET {object_name} {key}",
                lambda sf: sf.restful(path, params={"fields": ",".join(fields)}),
            )
        except FatalError as exc:
            if "NOT_FOUND" in str(exc) or "ENTITY_IS_DELETED" in str(exc):
                return None
            raise
        return {name: body.get(name) for name in fields} if isinstance(body, dict) else None

    def _write_chunk(self, chunk: Sequence[FieldWrite]) -> list[WriteOutcome]:
        payload = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": w.object_name}, "id": w.key, **dict(w.fields)}
                for w in chunk
            ],
        }

        def send(sf: Salesforce) -> Any:
            return sf.restful("composite/sobjects", method="PATCH", json=payload)

        results = self.client.call("PATCH composite/sobjects", send)
        if not isinstance(results, list) or len(results) != len(chunk):
            raise FatalError(
                "PATCH composite/sobjects: the answer does not have one result per record",
                connector=self.name,
            )
        return [_outcome(w, r) for w, r in zip(chunk, results, strict=True)]


def _split(rows: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    live = [r for r in rows if not r.get("IsDeleted")]
    deleted = [r for r in rows if r.get("IsDeleted")]
    return live, deleted


def _chunks(writes: Sequence[FieldWrite], indices: Sequence[int]) -> Iterator[list[int]]:
    """Indices grouped by object (few type switches per call), at most 200 per call and each
    record at most once per call (Salesforce refuses duplicates in one request)."""
    by_object: dict[str, list[int]] = {}
    for index in indices:
        by_object.setdefault(writes[index].object_name, []).append(index)
    for group in by_object.values():
        chunk: list[int] = []
        keys: set[str] = set()
        for index in group:
            key = writes[index].key
            if len(chunk) == COLLECTION_LIMIT or key in keys:
                yield chunk
                chunk, keys = [], set()
            chunk.append(index)
            keys.add(key)
        if chunk:
            yield chunk


def _outcome(write: FieldWrite, result: Any) -> WriteOutcome:
    if isinstance(result, dict) and result.get("success"):
        return WriteOutcome(write.key, True)
    errors = result.get("errors", []) if isinstance(result, dict) else []
    texts: list[str] = []
    codes: set[str] = set()
    for error in errors if isinstance(errors, list) else []:
        code = str(error.get("statusCode", ""))
        codes.add(code)
        fields = error.get("fields") or []
        where = f" (fields: {', '.join(map(str, fields))})" if fields else ""
        texts.append(f"{code}: {error.get('message', '')}{where}")
    message = "; ".join(texts) or "Salesforce reported a failure without details"
    return WriteOutcome(
        write.key,
        False,
        f"{write.object_name} {write.key}: {message}",
        retriable=bool(codes & RETRIABLE_RECORD_ERRORS),
        gone="ENTITY_IS_DELETED" in codes,
    )


def _secrets(settings: SalesforceSettings) -> list[str]:
    creds = settings.credentials
    values = [creds.client_secret, creds.password, creds.security_token, creds.private_key]
    return [v.get_secret_value() for v in values if v is not None]
