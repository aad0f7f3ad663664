"""A Salesforce REST API simulator, faithful to the documented contract pmsync relies on.

Implemented, after Salesforce's REST API, SOQL, Bulk API 2.0 and OAuth documentation:
  * Login. POST /services/oauth2/token with grant_type `client_credentials` (client id and
    secret in HTTP Basic, the My Domain flow), `password` (client id/secret, username, password)
    and `urn:ietf:params:oauth:grant-type:jwt-bearer` (an RS256 assertion checked against the
    connected app's certificate: iss = client id, sub = username, aud = login or test host,
    exp required). Answers {access_token, instance_url, id, token_type, issued_at, signature};
    refusals are 400 {error, error_description} (invalid_client_id, invalid_client,
    invalid_grant, unsupported_grant_type). POST /services/Soap/u/{version} is the SOAP login
    (username, password + security token) answering serverUrl and sessionId, or a SOAP fault
    with sf:exceptionCode INVALID_LOGIN.
  * Sessions live `session_ttl` seconds; afterwards (or after `expire_sessions()`) every call
    answers 401 [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}].
  * Daily API allocation: every authenticated call under /services/data/vXX.X/ counts (login
    calls and the versions list do not) and every answer carries
    `Sforce-Limit-Info: api-usage=used/total`. Once used reaches the allocation, calls answer
    403 [{"errorCode": "REQUEST_LIMIT_EXCEEDED"}] (a 403, never a 429, with no Retry-After).
    The real window is a rolling 24 hours; tests move it with `roll_quota()`.
    GET /limits reports DailyApiRequests {Max, Remaining}.
  * GET /query?q= and /queryAll?q= run the SOQL subset of `simulators.salesforce.soql`.
    `query` leaves out Recycle Bin rows; `queryAll` returns them with IsDeleted = true. Answers
    {totalSize, done, records, nextRecordsUrl?}; records carry attributes {type, url};
    relationship fields (Owner.Name) come as nested records. Batch size follows
    `Sforce-Query-Options: batchSize=N` (200 to 2,000, default 2,000). nextRecordsUrl
    (/services/data/vXX.X/query/01g...-2000) pages on; a locator idle longer than
    `locator_ttl`, or beyond the 10 most recent per user, answers 400 INVALID_QUERY_LOCATOR.
    Unknown objects answer 400 INVALID_TYPE, unknown fields 400 INVALID_FIELD, bad SOQL
    400 MALFORMED_QUERY.
  * Describe: GET /sobjects (global) and /sobjects/{S}/describe with name, type, label,
    custom, calculated (formula fields, with calculatedFormula), updateable, nillable,
    referenceTo and relationshipName. A formula field is computed when read and never moves
    the row's SystemModstamp (Account.Owner_Region__c follows the owner's region).
  * GET /sobjects/{S}/updated/?start=&end= ({ids, latestDateCovered}, seconds dropped, at
    most 30 days back) and /sobjects/{S}/deleted/?start=&end= ({deletedRecords [{id,
    deletedDate}], earliestDateAvailable, latestDateCovered}, at most 15 days back); older
    starts answer 400 INVALID_REPLICATION_DATE. GET /sobjects/{S}/{id} reads one record.
  * Bulk API 2.0 query jobs: POST /jobs/query {operation: query|queryAll, query}, GET
    /jobs/query/{id} (UploadComplete -> InProgress -> JobComplete after `bulk_polls` polls, or
    Failed with an errorMessage while a test sets `bulk_failure`),
    GET /jobs/query/{id}/results?locator=&maxRecords= (CSV with every value quoted, nulls
    empty, datetimes as ...000Z, relationship columns as Owner.Name; headers Sforce-Locator,
    the literal "null" on the last page, and Sforce-NumberOfRecords), PATCH {state: Aborted},
    DELETE. Results before completion answer 400 INVALIDJOBSTATE; a deleted job 404.
  * sObject Collections: PATCH /composite/sobjects {allOrNone, records: [{attributes: {type},
    id, field: value}]} with at most 200 records (more: 400 EXCEEDED_ID_LIMIT). Answers 200
    with one result per record, in order: {id, success: true, errors: []} or {success: false,
    errors: [{statusCode, message, fields}]} (INVALID_FIELD, INVALID_FIELD_FOR_INSERT_UPDATE
    for formula and system fields, INVALID_CROSS_REFERENCE_KEY, ENTITY_IS_DELETED,
    UNABLE_TO_LOCK_ROW for rows a test locks, ALL_OR_NONE_OPERATION_ROLLED_BACK). An update
    moves SystemModstamp and LastModifiedDate.
  * Errors are JSON arrays of {message, errorCode, fields?}, as the REST API answers.

Not simulated: the concurrent long-running-call limit, per-app usage in Sforce-Limit-Info,
If-Modified-Since on describe, aggregate/TYPEOF/semi-join SOQL, relationship paths deeper than
one level, Bulk ingest jobs, and query locators as snapshots (pages are read from current
data). Stamps follow `clock` (the wall clock by default); the HTTP Date header always carries
the wall clock, so tests that fake the clock should not depend on server time.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
import orjson
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from pmsync.simulators.base import Simulator, json_response
from pmsync.simulators.salesforce import soql
from pmsync.simulators.salesforce.model import (
    NUMERIC_TYPES,
    FieldDef,
    SObjectTable,
    csv_datetime,
    rest_datetime,
    salesforce_id,
)

ORG_ID = "00D000000000001EAA"
USER_ID = "005000000000001AAA"
MIN_BATCH, MAX_BATCH, DEFAULT_BATCH = 200, 2000, 2000
MAX_LOCATORS = 10
COLLECTION_LIMIT = 200
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
UPDATED_WINDOW = 30 * 86400
DELETED_WINDOW = 15 * 86400
API_VERSIONS = ("57.0", "58.0", "59.0", "60.0", "61.0", "62.0")
INVALID_FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)


def sf_error(status: int, code: str, message: str, fields: Sequence[str] = ()) -> Response:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        body["fields"] = list(fields)
    return json_response([body], status)


@dataclass
class _Locator:
    ident: str
    table: str
    fields: list[str]
    ids: list[str]
    batch: int
    last_used: float


@dataclass
class _BulkJob:
    ident: str
    operation: str
    table: str
    columns: list[str]
    rows: list[list[str]]
    created: int
    polls: int = 0
    state: str = "UploadComplete"
    error: str | None = None

    def info(self, version: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.ident,
            "operation": self.operation,
            "object": self.table,
            "createdById": USER_ID,
            "createdDate": rest_datetime(self.created),
            "systemModstamp": rest_datetime(self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if self.state == "JobComplete":
            body.update(numberRecordsProcessed=len(self.rows), retries=0, totalProcessingTime=42)
        if self.error:
            body["errorMessage"] = self.error
        return body


class SalesforceSimulator(Simulator):
    """In-memory Salesforce org; tests change its data through the Python methods below."""

    name = "salesforce-simulator"

    def __init__(
        self,
        *,
        client_id: str = "sim-consumer-key",
        client_secret: str = "sim-consumer-secret",
        username: str = "integration@acme.example",
        password: str = "sim-password",
        security_token: str = "sim-security-token",
        jwt_public_key: str | None = None,
        api_allocation: int = 100_000,
        api_used: int = 0,
        session_ttl: float = 7200.0,
        locator_ttl: float = 900.0,
        bulk_polls: int = 1,
        clock: Any = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.security_token = security_token
        self.jwt_public_key = jwt_public_key
        self.api_allocation = api_allocation
        self.api_used = api_used
        self.session_ttl = session_ttl
        self.locator_ttl = locator_ttl
        self.bulk_polls = bulk_polls
        self._clock = clock
        self.tables: dict[str, SObjectTable] = {}
        self.sessions: dict[str, float] = {}
        self.issued_tokens: list[str] = []
        self.reject_sessions = False
        self.locked_ids: set[str] = set()
        self.bulk_failure: str | None = None
        self._locators: OrderedDict[str, _Locator] = OrderedDict()
        self._jobs: dict[str, _BulkJob] = {}
        self._serial = 1
        super().__init__()

    def clock(self) -> float:
        return float(self._clock()) if self._clock else super().clock()

    def now(self) -> int:
        return int(self.clock())

    def rules(self) -> Iterable[Rule]:
        data = "/services/data/v<version>"
        return [
            Rule("/services/oauth2/token", endpoint="token", methods=["POST"]),
            Rule("/services/Soap/u/<version>", endpoint="soap_login", methods=["POST"]),
            Rule("/services/data", endpoint="versions"),
            Rule(f"{data}/limits", endpoint="limits"),
            Rule(f"{data}/sobjects", endpoint="global_describe"),
            Rule(f"{data}/sobjects/<name>/describe", endpoint="describe"),
            Rule(f"{data}/sobjects/<name>/updated", endpoint="get_updated"),
            Rule(f"{data}/sobjects/<name>/deleted", endpoint="get_deleted"),
            Rule(f"{data}/sobjects/<name>/<record_id>", endpoint="get_record"),
            Rule(f"{data}/query", endpoint="query"),
            Rule(f"{data}/queryAll", endpoint="query_all"),
            Rule(f"{data}/query/<locator>", endpoint="query_more"),
            Rule(f"{data}/queryAll/<locator>", endpoint="query_more"),
            Rule(f"{data}/jobs/query", endpoint="bulk_create", methods=["POST"]),
            Rule(
                f"{data}/jobs/query/<job_id>",
                endpoint="bulk_job",
                methods=["GET", "PATCH", "DELETE"],
            ),
            Rule(f"{data}/jobs/query/<job_id>/results", endpoint="bulk_results"),
            Rule(f"{data}/composite/sobjects", endpoint="collections", methods=["PATCH"]),
        ]

    # ---- data, for tests and generators ------------------------------------------------------

    def add_object(self, table: SObjectTable) -> SObjectTable:
        with self.lock:
            self.tables[table.name] = table
        return table

    def table(self, name: str) -> SObjectTable:
        return self.tables[name]

    def insert(self, object_name: str, values: dict[str, Any], *, at: int | None = None) -> str:
        """Create a record; `at` backdates it (epoch seconds)."""
        stamp = self.now() if at is None else at
        with self.lock:
            table = self.tables[object_name]
            ident = str(values.get("Id") or table.new_id())
            row: dict[str, Any] = {n: None for n, f in table.fields.items() if not f.calculated}
            row.update(values)
            row.update(
                Id=ident,
                IsDeleted=False,
                CreatedDate=values.get("CreatedDate", stamp),
                LastModifiedDate=stamp,
                SystemModstamp=stamp,
            )
            table.rows[ident] = row
        return ident

    def update(
        self, object_name: str, ident: str, values: dict[str, Any], *, at: int | None = None
    ) -> None:
        """Change fields of a record, moving its SystemModstamp (to `at` if given)."""
        stamp = self.now() if at is None else at
        with self.lock:
            row = self.tables[object_name].rows[ident]
            row.update(values)
            row.update(LastModifiedDate=stamp, SystemModstamp=stamp)

    def touch(self, object_name: str, idents: Iterable[str], *, at: int) -> None:
        """Give many records one SystemModstamp, as a mass update or a data load does."""
        with self.lock:
            rows = self.tables[object_name].rows
            for ident in idents:
                rows[ident].update(LastModifiedDate=at, SystemModstamp=at)

    def set_silently(self, object_name: str, ident: str, values: dict[str, Any]) -> None:
        """Change stored values without moving SystemModstamp (what no API change can do;
        used to stand in for changes a formula reflects)."""
        with self.lock:
            self.tables[object_name].rows[ident].update(values)

    def soft_delete(self, object_name: str, ident: str, *, at: int | None = None) -> None:
        """Delete to the Recycle Bin: queryAll shows IsDeleted = true; getDeleted lists it."""
        stamp = self.now() if at is None else at
        with self.lock:
            table = self.tables[object_name]
            table.rows[ident].update(IsDeleted=True, SystemModstamp=stamp)
            table.delete_log[ident] = stamp

    def undelete(self, object_name: str, ident: str, *, at: int | None = None) -> None:
        stamp = self.now() if at is None else at
        with self.lock:
            table = self.tables[object_name]
            table.rows[ident].update(IsDeleted=False, SystemModstamp=stamp)
            table.delete_log.pop(ident, None)

    def hard_delete(self, object_name: str, ident: str, *, at: int | None = None) -> None:
        """Delete for good (hard delete, or the Recycle Bin emptied): gone from queryAll too."""
        stamp = self.now() if at is None else at
        with self.lock:
            table = self.tables[object_name]
            table.rows.pop(ident, None)
            table.delete_log.setdefault(ident, stamp)

    def live_ids(self, object_name: str) -> set[str]:
        with self.lock:
            rows = self.tables[object_name].rows
            return {i for i, r in rows.items() if not r["IsDeleted"]}

    def roll_quota(self, used: int = 0) -> None:
        """Move the rolling 24-hour window: the org has used `used` calls now."""
        with self.lock:
            self.api_used = used

    def expire_sessions(self) -> None:
        """Every session issued so far ends, as when the org's session timeout passes."""
        with self.lock:
            self.sessions.clear()

    # ---- HTTP plumbing -------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        request.get_data()  # cached, so form parsing and the request log both see the body
        if not request.path.startswith("/services/data/v"):
            return super()._dispatch(request)
        if not self._authorised(request):
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        with self.lock:
            if self.api_used >= self.api_allocation:
                response = sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                response.headers["Sforce-Limit-Info"] = self._usage()
                return response
            self.api_used += 1
            usage = self._usage()
        response = super()._dispatch(request)
        response.headers["Sforce-Limit-Info"] = usage
        return response

    def _usage(self) -> str:
        return f"api-usage={self.api_used}/{self.api_allocation}"

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or self.reject_sessions:
            return False
        with self.lock:
            expiry = self.sessions.get(header[7:])
        return expiry is not None and expiry > self.clock()

    def not_found(self, request: Request) -> Response:
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    def fault_response(self, fault: Any) -> Response:
        body = fault.body
        if body is None:
            body = [{"errorCode": "UNKNOWN_EXCEPTION", "message": f"injected {fault.status}"}]
        return json_response(body, fault.status, fault.headers)

    def _base_path(self, version: str) -> str:
        return f"/services/data/v{version}"

    def _issue_session(self) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(32)}"
        with self.lock:
            self.sessions[token] = self.clock() + self.session_ttl
            self.issued_tokens.append(token)
        return token

    def _next_serial(self) -> int:
        with self.lock:
            self._serial += 1
            return self._serial

    # ---- login ---------------------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            client_id, secret = _basic_credentials(request)
            client_id = client_id or form.get("client_id", "")
            secret = secret or form.get("client_secret", "")
            refused = self._check_client(client_id, secret)
        elif grant == "password":
            refused = self._check_client(form.get("client_id", ""), form.get("client_secret", ""))
            if refused is None and (
                form.get("username") != self.username
                or form.get("password") not in (self.password, self.password + self.security_token)
            ):
                refused = _oauth_error("invalid_grant", "authentication failure")
        elif grant == JWT_GRANT:
            refused = self._check_assertion(form.get("assertion", ""))
        else:
            refused = _oauth_error("unsupported_grant_type", "grant type not supported")
        if refused is not None:
            return refused
        token = self._issue_session()
        return json_response(
            {
                "access_token": token,
                "instance_url": self.base_url,
                "id": f"{self.base_url}/id/{ORG_ID}/{USER_ID}",
                "token_type": "Bearer",
                "issued_at": str(int(self.clock() * 1000)),
                "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            }
        )

    def _check_client(self, client_id: str, secret: str) -> Response | None:
        if client_id != self.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if secret != self.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        return None

    def _check_assertion(self, assertion: str) -> Response | None:
        if self.jwt_public_key is None:
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                self.jwt_public_key,
                algorithms=["RS256"],
                audience=list(JWT_AUDIENCES),
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidTokenError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.username:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return None

    def soap_login(self, request: Request, version: str) -> Response:
        body = request.get_data(as_text=True)
        username = _xml_value(body, "username")
        password = _xml_value(body, "password")
        if username != self.username or password != self.password + self.security_token:
            return Response(_SOAP_FAULT, status=500, content_type="text/xml; charset=utf-8")
        token = self._issue_session()
        server_url = f"{self.base_url}/services/Soap/u/{version}/{ORG_ID[:15]}"
        answer = _SOAP_LOGIN.format(
            server_url=html.escape(server_url), session=html.escape(token), user=USER_ID
        )
        return Response(answer, status=200, content_type="text/xml; charset=utf-8")

    # ---- REST: metadata ------------------------------------------------------------------------

    def versions(self, request: Request) -> Response:
        return json_response(
            [{"label": f"v{v}", "url": self._base_path(v), "version": v} for v in API_VERSIONS]
        )

    def limits(self, request: Request, version: str) -> Response:
        with self.lock:
            remaining = max(0, self.api_allocation - self.api_used)
            jobs = len(self._jobs)
        return json_response(
            {
                "DailyApiRequests": {"Max": self.api_allocation, "Remaining": remaining},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - jobs},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            }
        )

    def global_describe(self, request: Request, version: str) -> Response:
        base = self._base_path(version)
        with self.lock:
            objects = [t.summary(base) for t in self.tables.values()]
        return json_response({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects})

    def describe(self, request: Request, version: str, name: str) -> Response:
        table = self.tables.get(name)
        if table is None:
            return sf_error(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
        with self.lock:
            return json_response(table.describe(self._base_path(version)))

    def get_record(self, request: Request, version: str, name: str, record_id: str) -> Response:
        table = self.tables.get(name)
        with self.lock:
            row = table.rows.get(record_id) if table else None
            if table is None or row is None or row["IsDeleted"]:
                return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            wanted = request.args.get("fields")
            names = wanted.split(",") if wanted else list(table.fields)
            return json_response(self._project(table, row, names, version))

    def get_updated(self, request: Request, version: str, name: str) -> Response:
        window = self._replication_window(request, name, UPDATED_WINDOW)
        if isinstance(window, Response):
            return window
        table, start, end = window
        with self.lock:
            ids = sorted(
                i
                for i, row in table.rows.items()
                if not row["IsDeleted"] and start <= row["SystemModstamp"] < end
            )
        return json_response({"ids": ids, "latestDateCovered": rest_datetime(end)})

    def get_deleted(self, request: Request, version: str, name: str) -> Response:
        window = self._replication_window(request, name, DELETED_WINDOW)
        if isinstance(window, Response):
            return window
        table, start, end = window
        with self.lock:
            gone = sorted((i, t) for i, t in table.delete_log.items() if start <= t < end)
        return json_response(
            {
                "deletedRecords": [{"id": i, "deletedDate": rest_datetime(t)} for i, t in gone],
                "earliestDateAvailable": rest_datetime(_minute(self.now() - DELETED_WINDOW)),
                "latestDateCovered": rest_datetime(end),
            }
        )

    def _replication_window(
        self, request: Request, name: str, reach: int
    ) -> Response | tuple[SObjectTable, int, int]:
        table = self.tables.get(name)
        if table is None:
            return sf_error(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
        try:
            start = _minute(_parse_instant(request.args["start"]))
            end = _minute(_parse_instant(request.args["end"]))
        except (KeyError, ValueError):
            return sf_error(400, "MALFORMED_QUERY", "start and end must be ISO 8601 date-times")
        if end <= start:
            return sf_error(400, "INVALID_REPLICATION_DATE", "end must be after start")
        if start < self.now() - reach:
            days = reach // 86400
            return sf_error(
                400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago"
            )
        return table, start, end

    # ---- REST: queries -------------------------------------------------------------------------

    def query(self, request: Request, version: str) -> Response:
        return self._start_query(request, version, include_deleted=False, kind="query")

    def query_all(self, request: Request, version: str) -> Response:
        return self._start_query(request, version, include_deleted=True, kind="queryAll")

    def _start_query(
        self, request: Request, version: str, *, include_deleted: bool, kind: str
    ) -> Response:
        prepared = self._prepare(request.args.get("q", ""))
        if isinstance(prepared, Response):
            return prepared
        table, parsed = prepared
        with self.lock:
            ids = self._select(table, parsed, include_deleted=include_deleted)
            locator = _Locator(
                ident=salesforce_id("01g", self._next_serial())[:15],
                table=table.name,
                fields=parsed.fields,
                ids=ids,
                batch=_batch_size(request, DEFAULT_BATCH),
                last_used=self.clock(),
            )
            self._locators[locator.ident] = locator
            while len(self._locators) > MAX_LOCATORS:
                self._locators.popitem(last=False)
            return self._page(locator, 0, version, kind, locator.batch)

    def query_more(self, request: Request, version: str, locator: str) -> Response:
        ident, _, offset_text = locator.rpartition("-")
        kind = "queryAll" if "/queryAll/" in request.path else "query"
        with self.lock:
            state = self._locators.get(ident)
            expired = state is None or state.last_used + self.locator_ttl < self.clock()
            if expired or not offset_text.isdigit():
                self._locators.pop(ident, None)
                return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            assert state is not None
            state.last_used = self.clock()
            self._locators.move_to_end(ident)
            return self._page(state, int(offset_text), version, kind, _batch_size(request, 0))

    def _page(self, state: _Locator, offset: int, version: str, kind: str, batch: int) -> Response:
        size = batch or state.batch
        table = self.tables[state.table]
        chunk = state.ids[offset : offset + size]
        records = [
            self._project(table, table.rows[i], state.fields, version)
            for i in chunk
            if i in table.rows
        ]
        end = offset + len(chunk)
        body: dict[str, Any] = {"totalSize": len(state.ids), "done": end >= len(state.ids)}
        if body["done"]:
            self._locators.pop(state.ident, None)
        else:
            body["nextRecordsUrl"] = f"{self._base_path(version)}/{kind}/{state.ident}-{end}"
        body["records"] = records
        return json_response(body)

    def _prepare(self, text: str) -> Response | tuple[SObjectTable, soql.Query]:
        try:
            parsed = soql.parse(text)
        except soql.SoqlError as exc:
            return sf_error(400, "MALFORMED_QUERY", str(exc))
        table = self.tables.get(parsed.object_name)
        if table is None:
            return sf_error(
                400,
                "INVALID_TYPE",
                f"sObject type '{parsed.object_name}' is not supported. {INVALID_FIELD_HINT}",
            )
        for path in sorted(parsed.referenced_fields()):
            if not self._resolvable(table, path):
                return sf_error(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{path}' on entity '{table.name}'. {INVALID_FIELD_HINT}",
                )
        return table, parsed

    def _resolvable(self, table: SObjectTable, path: str) -> bool:
        if "." not in path:
            return path in table.fields
        relation, _, sub = path.partition(".")
        definition = table.relationship(relation)
        if definition is None or "." in sub:
            return False
        return all(
            sub in self.tables[target].fields
            for target in definition.reference_to
            if target in self.tables
        )

    def _select(
        self, table: SObjectTable, parsed: soql.Query, *, include_deleted: bool
    ) -> list[str]:
        def getter(row: dict[str, Any]) -> soql.Row:
            return lambda path: soql.comparable(self._raw_value(table, row, path))

        ids = [
            ident
            for ident, row in table.rows.items()
            if (include_deleted or not row["IsDeleted"])
            and (parsed.where is None or soql.evaluate(parsed.where, getter(row)))
        ]
        for key in reversed(parsed.order_by):
            nulls_last = key.descending if key.nulls_last is None else key.nulls_last
            null_rank = 0 if nulls_last == key.descending else 2

            def sort_key(ident: str, path: str = key.field, rank: int = null_rank) -> Any:
                value = soql.comparable(self._raw_value(table, table.rows[ident], path))
                return (rank, "") if value is None else (1, value)

            ids.sort(key=sort_key, reverse=key.descending)
        return ids if parsed.limit is None else ids[: parsed.limit]

    def _related(self, table: SObjectTable, row: dict[str, Any], relation: str) -> Any:
        definition = table.relationship(relation)
        target_id = row.get(definition.name) if definition else None
        if not target_id or definition is None:
            return None, None
        for target in definition.reference_to:
            target_table = self.tables.get(target)
            if target_table and target_id in target_table.rows:
                return target_table, target_table.rows[target_id]
        return None, None

    def _raw_value(self, table: SObjectTable, row: dict[str, Any], path: str) -> Any:
        if "." in path:
            relation, _, sub = path.partition(".")
            target_table, target_row = self._related(table, row, relation)
            return None if target_row is None else self._raw_value(target_table, target_row, sub)
        definition = table.fields[path]
        if definition.formula is not None:
            return definition.formula(self, row)
        return row.get(path)  # datetimes are epoch seconds, as soql.comparable makes literals

    def _render(self, table: SObjectTable, row: dict[str, Any], name: str) -> Any:
        definition = table.fields[name]
        value = definition.formula(self, row) if definition.formula else row.get(name)
        if definition.type == "datetime" and isinstance(value, int):
            return rest_datetime(value)
        return value

    def _project(
        self, table: SObjectTable, row: dict[str, Any], fields: Sequence[str], version: str
    ) -> dict[str, Any]:
        base = self._base_path(version)
        out: dict[str, Any] = {
            "attributes": {"type": table.name, "url": f"{base}/sobjects/{table.name}/{row['Id']}"}
        }
        for path in fields:
            if "." not in path:
                out[path] = self._render(table, row, path)
                continue
            relation, _, sub = path.partition(".")
            target_table, target_row = self._related(table, row, relation)
            if target_row is None:
                out[relation] = None
                continue
            nested = out.get(relation) or {
                "attributes": {
                    "type": target_table.name,
                    "url": f"{base}/sobjects/{target_table.name}/{target_row['Id']}",
                }
            }
            nested[sub] = self._render(target_table, target_row, sub)
            out[relation] = nested
        return out

    # ---- Bulk API 2.0 --------------------------------------------------------------------------

    def bulk_create(self, request: Request, version: str) -> Response:
        try:
            body = orjson.loads(request.get_data())
        except orjson.JSONDecodeError:
            return sf_error(400, "JSON_PARSER_ERROR", "the request body is not JSON")
        operation = body.get("operation") if isinstance(body, dict) else None
        if operation not in ("query", "queryAll"):
            return sf_error(400, "INVALIDJOB", "operation must be query or queryAll")
        prepared = self._prepare(str(body.get("query", "")))
        if isinstance(prepared, Response):
            return prepared
        table, parsed = prepared
        with self.lock:
            ids = self._select(table, parsed, include_deleted=operation == "queryAll")
            rows = [self._csv_row(table, table.rows[i], parsed.fields) for i in ids]
            job = _BulkJob(
                ident=salesforce_id("750", self._next_serial()),
                operation=str(operation),
                table=table.name,
                columns=list(parsed.fields),
                rows=rows,
                created=self.now(),
            )
            self._jobs[job.ident] = job
            return json_response(job.info(version))

    def bulk_job(self, request: Request, version: str, job_id: str) -> Response:
        with self.lock:
            job = self._jobs.get(job_id)
            if job is None:
                return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            if request.method == "DELETE":
                del self._jobs[job_id]
                return Response(status=204)
            if request.method == "PATCH":
                job.state = "Aborted"
                return json_response(job.info(version))
            if job.state not in ("JobComplete", "Aborted", "Failed"):
                job.polls += 1
                job.state = "JobComplete" if job.polls >= self.bulk_polls else "InProgress"
                if self.bulk_failure is not None:
                    job.state, job.error = "Failed", self.bulk_failure
            return json_response(job.info(version))

    def bulk_results(self, request: Request, version: str, job_id: str) -> Response:
        with self.lock:
            job = self._jobs.get(job_id)
            if job is None:
                return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            if job.state != "JobComplete":
                return sf_error(400, "INVALIDJOBSTATE", f"job {job_id} is not complete")
            try:
                offset = _decode_locator(request.args.get("locator", ""))
                size = int(request.args.get("maxRecords", "10000"))
            except ValueError:
                return sf_error(400, "INVALID_LOCATOR", "invalid locator or maxRecords")
            chunk = job.rows[offset : offset + max(1, size)]
            end = offset + len(chunk)
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
            writer.writerow(job.columns)
            writer.writerows(chunk)
            more = end < len(job.rows)
        return Response(
            buffer.getvalue(),
            status=200,
            content_type="text/csv",
            headers={
                "Sforce-Locator": _encode_locator(end) if more else "null",
                "Sforce-NumberOfRecords": str(len(chunk)),
            },
        )

    def _csv_row(
        self, table: SObjectTable, row: dict[str, Any], fields: Sequence[str]
    ) -> list[str]:
        values: list[str] = []
        for path in fields:
            if "." in path:
                relation, _, sub = path.partition(".")
                target_table, target_row = self._related(table, row, relation)
                value = (
                    None if target_row is None else self._csv_value(target_table, target_row, sub)
                )
            else:
                value = self._csv_value(table, row, path)
            values.append("" if value is None else value)
        return values

    def _csv_value(self, table: SObjectTable, row: dict[str, Any], name: str) -> str | None:
        definition = table.fields[name]
        value = definition.formula(self, row) if definition.formula else row.get(name)
        if value is None:
            return None
        if definition.type == "datetime":
            return csv_datetime(int(value))
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    # ---- sObject Collections -------------------------------------------------------------------

    def collections(self, request: Request, version: str) -> Response:
        try:
            body = orjson.loads(request.get_data())
        except orjson.JSONDecodeError:
            return sf_error(400, "JSON_PARSER_ERROR", "the request body is not JSON")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return sf_error(400, "JSON_PARSER_ERROR", "records must be a non-empty list")
        if len(records) > COLLECTION_LIMIT:
            return sf_error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records "
                "into this call",
            )
        all_or_none = bool(body.get("allOrNone", False))
        with self.lock:
            checked = [self._check_update(record) for record in records]
            failed = any(isinstance(c, dict) for c in checked)
            results: list[dict[str, Any]] = []
            for record, outcome in zip(records, checked, strict=True):
                if isinstance(outcome, dict):
                    results.append({"success": False, "errors": [outcome]})
                elif all_or_none and failed:
                    results.append({"success": False, "errors": [_ROLLED_BACK]})
                else:
                    table, ident, changes = outcome
                    self.update(table.name, ident, changes)
                    results.append({"id": record.get("id"), "success": True, "errors": []})
        return json_response(results)

    def _check_update(
        self, record: Any
    ) -> dict[str, Any] | tuple[SObjectTable, str, dict[str, Any]]:
        """The change a record asks for, or the per-record error Salesforce would give."""
        found = self._target(record)
        if isinstance(found, dict):
            return found
        table, ident = found
        changes = {k: v for k, v in record.items() if k not in ("attributes", "id", "Id")}
        for name, value in changes.items():
            problem = _field_problem(table, name, value)
            if problem is not None:
                return problem
        return table, ident, changes

    def _target(self, record: Any) -> dict[str, Any] | tuple[SObjectTable, str]:
        if not isinstance(record, dict):
            return _record_error("JSON_PARSER_ERROR", "a record must be an object")
        kind = (record.get("attributes") or {}).get("type")
        table = self.tables.get(str(kind))
        if table is None:
            return _record_error("INVALID_TYPE", f"sObject type '{kind}' is not supported")
        ident = str(record.get("id") or record.get("Id") or "")
        row = table.rows.get(ident)
        if not ident:
            error = _record_error("MISSING_ARGUMENT", "id not specified in an update call", ["Id"])
        elif row is None:
            error = _record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        elif row["IsDeleted"]:
            error = _record_error("ENTITY_IS_DELETED", "entity is deleted")
        elif ident in self.locked_ids:
            error = _record_error(
                "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
            )
        else:
            return table, ident
        return error


def _field_problem(table: SObjectTable, name: str, value: Any) -> dict[str, Any] | None:
    definition: FieldDef | None = table.fields.get(name)
    if definition is None:
        return _record_error(
            "INVALID_FIELD", f"No such column '{name}' on sobject of type {table.name}", [name]
        )
    if not definition.updateable or definition.calculated:
        return _record_error(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {name}. Please check the security settings of "
            "this field and verify that it is read/write for your profile or permission set.",
            [name],
        )
    numeric = definition.type in NUMERIC_TYPES
    if value is not None and numeric and (isinstance(value, bool) or not _is_number(value)):
        return _record_error(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{definition.label or name}: value not of required type: {value}",
            [name],
        )
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


def _record_error(code: str, message: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": list(fields)}


_ROLLED_BACK = _record_error(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)


def _oauth_error(code: str, description: str) -> Response:
    return json_response({"error": code, "error_description": description}, 400)


def _basic_credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return "", ""
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except (ValueError, UnicodeDecodeError):
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _batch_size(request: Request, default: int) -> int:
    header = request.headers.get("Sforce-Query-Options", "")
    match = re.search(r"batchSize\s*=\s*(\d+)", header)
    if not match:
        return default
    return max(MIN_BATCH, min(MAX_BATCH, int(match.group(1))))


def _encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(text: str) -> int:
    if not text or text == "null":
        return 0
    padded = text + "=" * (-len(text) % 4)
    return int(base64.b64decode(padded).decode())


def _parse_instant(text: str) -> int:
    value = datetime.fromisoformat(text.strip().replace(" ", "+").replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a time zone is required")
    return int(value.timestamp())


def _minute(epoch: int) -> int:
    return epoch - epoch % 60


def _xml_value(body: str, element: str) -> str | None:
    match = re.search(rf"<(?:\w+:)?{element}>(.*?)</(?:\w+:)?{element}>", body, re.DOTALL)
    return html.unescape(match.group(1)) if match else None


_SOAP_LOGIN = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>\
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
<serverUrl>{server_url}</serverUrl><sessionId>{session}</sessionId><userId>{user}</userId>\
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""

_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\
<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>\
<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.\
</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault">\
<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, \
password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail>\
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
