"""The WSGI application: routes, templates, CSV exports, charts, sign-in and the review decision.

Every answer goes through `secure_headers`; every page is rendered from the current snapshot
(see keeper.py) with autoescaping templates; nothing here writes to the store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from pmsync import __version__
from pmsync.app.web import charts
from pmsync.app.web.decisions import Decision, DecisionError, decision_comment, is_none
from pmsync.app.web.decisions import write_decision as write_overrides
from pmsync.app.web.detail import account_page, issue_page, usage_table
from pmsync.app.web.keeper import SnapshotKeeper
from pmsync.app.web.links import SourceLinks
from pmsync.app.web.pages import (
    Page,
    areas_page,
    demand_by,
    freshness_page,
    issues_page,
    review_page,
    trend_series,
    week_label,
)
from pmsync.app.web.security import CSRF_COOKIE, SESSION_COOKIE, Guard, Identity, secure_headers
from pmsync.app.web.settings import WebSettings
from pmsync.app.web.snapshot import Snapshot
from pmsync.app.web.tables import show
from pmsync.logs import get_logger

if TYPE_CHECKING:
    from pmsync.sync.store.store import Store

log = get_logger("pmsync.web")
StartResponse = Callable[..., Any]
NAV = (
    ("/", "Issues"),
    ("/areas", "Product areas"),
    ("/review", "Review queue"),
    ("/freshness", "Freshness"),
)
_CHART_CACHE_SIZE = 64


class WebApp:
    """The web view over one store; `keeper` supplies the data, `store` the live stream states."""

    def __init__(
        self,
        settings: WebSettings,
        keeper: SnapshotKeeper,
        store: Store,
        links: SourceLinks,
        slots: Callable[[], list[tuple[str, str]]],
    ) -> None:
        self.settings = settings
        self.keeper = keeper
        self.store = store
        self.links = links
        self.slots = slots
        self.guard = Guard(settings)
        self.templates = Environment(
            loader=PackageLoader("pmsync.app.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["show"] = show
        self.templates.globals["nav"] = NAV
        self.templates.globals["version"] = __version__
        for name in self.templates.list_templates():  # compiled now, not in a first request
            self.templates.get_template(name)
        self.static = {
            entry.name: entry.read_bytes()
            for entry in resources.files("pmsync.app.web").joinpath("static").iterdir()
            if entry.is_file()
        }
        self._charts: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._charts_lock = threading.Lock()
        self.routes = Map(
            [
                Rule("/", endpoint="issues", methods=["GET"]),
                Rule("/issues/<key>", endpoint="issue", methods=["GET"]),
                Rule("/accounts/<path:ref>", endpoint="account", methods=["GET"]),
                Rule("/areas", endpoint="areas", methods=["GET"]),
                Rule("/review", endpoint="review", methods=["GET"]),
                Rule("/review/decide", endpoint="decide", methods=["POST"]),
                Rule("/freshness", endpoint="freshness", methods=["GET"]),
                Rule("/charts/<name>.svg", endpoint="chart", methods=["GET"]),
                Rule("/static/<name>", endpoint="static", methods=["GET"]),
                Rule("/login", endpoint="login", methods=["GET", "POST"]),
                Rule("/logout", endpoint="logout", methods=["POST"]),
            ]
        )

    # ---- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_form_memory_size = 64 * 1024
        response = self.respond(request)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        adapter = self.routes.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            if endpoint == "static":
                return self.static_file(values["name"])
            if endpoint == "login":
                return self.login(request)
            identity = self.guard.identify(request)
            if identity is None:
                return self.sign_in_first(request)
            response = self.dispatch(endpoint, request, identity, values)
        except (NotFound, MethodNotAllowed) as exc:
            response = self.error_page(request, exc.code or 404, exc.description or "")
        except HTTPException as exc:
            response = self.error_page(request, exc.code or 400, exc.description or "")
        except Exception:
            log.exception("web_request_failed", path=request.path)
            response = self.error_page(request, 500, "Something went wrong; it is in the log.")
        return secure_headers(response, chart=endpoint_is_chart(request.path))

    def dispatch(
        self, endpoint: str, request: Request, identity: Identity, values: Mapping[str, str]
    ) -> Response:
        if endpoint == "logout":
            return self.logout(request)
        if endpoint == "freshness":
            return self.freshness(request)
        snapshot = self.keeper.snapshot
        if snapshot is None:
            return self.not_ready(request)
        if endpoint == "decide":
            return self.decide(request, snapshot, identity)
        if endpoint == "chart":
            return self.chart(request, snapshot, values["name"])
        page = self.build_page(endpoint, request, snapshot, values)
        return self.render_page(request, page, snapshot)

    def build_page(
        self, endpoint: str, request: Request, snapshot: Snapshot, values: Mapping[str, str]
    ) -> Page:
        args, size = request.args, self.settings.page_size
        if endpoint == "issues":
            return issues_page(snapshot, args, self.links, size)
        if endpoint == "issue":
            issue = snapshot.issue(values["key"])
            if issue is None:
                raise NotFound(f"No issue {values['key']} in the store.")
            return issue_page(snapshot, issue, args, self.links, size)
        if endpoint == "account":
            account = snapshot.world.accounts.get(values["ref"])
            if account is None:
                raise NotFound(f"No account {values['ref']} in the store.")
            return account_page(snapshot, account, args, self.links, size)
        if endpoint == "areas":
            return areas_page(snapshot, args, size)
        return review_page(snapshot, args, self.links, size)

    # ---- rendering ------------------------------------------------------------------------

    def render_page(
        self, request: Request, page: Page, snapshot: Snapshot | None, status: int = 200
    ) -> Response:
        if request.args.get("format") == "csv":
            return self.csv(request, page)
        seed, new_seed = self.guard.csrf_seed(request)
        html = self.templates.get_template(page.template).render(
            page=page,
            snapshot=snapshot,
            data_error=self.keeper.error,
            request_path=request.path,
            args=request.args,
            url_with=lambda **changes: url_with(request.args, **changes),
            csv_url=lambda table: url_with(request.args, format="csv", table=table),
            csrf=self.guard.csrf_token(seed),
            auth=self.guard.kind,
            **page.context,
        )
        response = Response(html, status=status, mimetype="text/html")
        if new_seed:
            self._set_cookie(request, response, CSRF_COOKIE, seed, None)
        return response

    def csv(self, request: Request, page: Page) -> Response:
        name = request.args.get("table", page.tables[0].name if page.tables else "")
        table = page.table(name)
        if table is None:
            raise NotFound(f"No table '{name}' on this page.")
        filename = f"pmsync-{request.path.strip('/').replace('/', '-') or 'issues'}-{name}.csv"
        response = Response(table.csv(), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="{_safe(filename)}"'
        return response

    def error_page(self, request: Request, status: int, message: str) -> Response:
        page = Page("error.html", f"{status}", {"status": status, "message": message})
        return self.render_page(request, page, self.keeper.snapshot, status)

    def not_ready(self, request: Request) -> Response:
        page = Page("loading.html", "Preparing the data", {})
        response = self.render_page(request, page, None, 503)
        response.headers["Retry-After"] = "2"
        return response

    # ---- pages that are not snapshot tables ---------------------------------------------

    def freshness(self, request: Request) -> Response:
        page = freshness_page(self.slots(), self.store.stream_states(), self.keeper.snapshot)
        return self.render_page(request, page, self.keeper.snapshot)

    def chart(self, request: Request, snapshot: Snapshot, name: str) -> Response:
        key = (id(snapshot), name, tuple(sorted(request.args.items(multi=True))))
        with self._charts_lock:
            svg = self._charts.get(key)
        if svg is None:
            svg = self._draw(request.args, snapshot, name)
            with self._charts_lock:
                self._charts[key] = svg
                while len(self._charts) > _CHART_CACHE_SIZE:
                    self._charts.popitem(last=False)
        return Response(svg, mimetype="image/svg+xml")

    def _draw(self, args: Mapping[str, str], snapshot: Snapshot, name: str) -> bytes:
        if name == "trend":
            labels, counts = trend_series(snapshot, args)
            return charts.bar_chart("New requests per week", labels, counts, "new requests")
        if name == "areas":
            by = "segment" if args.get("by") == "segment" else "area"
            segment = args.get("segment", "") if args.get("segment") in snapshot.segments else ""
            weeks = areas_page(snapshot, args, 1).context["weeks"]
            table = demand_by(snapshot, by, weeks, segment=segment)
            labels = [week_label(str(r["week"])) for r in table.rows]
            series = [(c.key, [int(r[c.key]) for r in table.rows]) for c in table.columns[1:]]
            title = table.title + (f" ({segment})" if segment else "")
            return charts.stacked_chart(title, labels, series)
        if name == "usage":
            account = snapshot.world.accounts.get(args.get("account", ""))
            if account is None:
                raise NotFound("No such account.")
            table = usage_table(snapshot, account)
            labels = [str(r["day"])[5:] for r in table.rows]
            values = [float(r["active_users"]) for r in table.rows]
            return charts.line_chart("Active users per day", labels, [("active users", values)])
        raise NotFound(f"No chart '{name}'.")

    def static_file(self, name: str) -> Response:
        body = self.static.get(name)
        if body is None:
            raise NotFound()
        mimetype = "text/css" if name.endswith(".css") else "image/svg+xml"
        return secure_headers(Response(body, mimetype=mimetype), static=True)

    # ---- the review decision --------------------------------------------------------------

    def decide(self, request: Request, snapshot: Snapshot, identity: Identity) -> Response:
        if not self.guard.csrf_ok(request):
            log.warning("web_csrf_rejected", path=request.path)
            return self.error_page(
                request, 403, "This form expired or came from another site; reload the page."
            )
        try:
            decision = self._decision(request, snapshot, identity)
            if snapshot.overrides_path is None:
                raise DecisionError(
                    "no overrides file is declared: set [links] overrides in a mapping file"
                )
            from pathlib import Path

            write_overrides(Path(snapshot.overrides_path), decision)
        except DecisionError as exc:
            page = review_page(snapshot, request.args, self.links, self.settings.page_size)
            page.context["problem"] = str(exc)
            return self.render_page(request, page, snapshot, 400)
        log.info(
            "review_decided",
            ticket=decision.ticket_ref,
            kind=decision.kind,
            value=decision.value,
            by=identity.name,
            file=snapshot.overrides_path,
        )
        self.keeper.refresh_soon()
        target = "/review?" + urlencode({"decided": decision.ticket_ref})
        return Response(status=303, headers={"Location": target})

    def _decision(self, request: Request, snapshot: Snapshot, identity: Identity) -> Decision:
        ticket_ref = request.form.get("ticket", "")
        kind = request.form.get("kind", "")
        queued = {(u.ticket, u.kind) for u in snapshot.derived.links.unresolved}
        ticket = snapshot.world.tickets.get(ticket_ref)
        if ticket is None or (ticket_ref, kind) not in queued:
            raise DecisionError(f"ticket {ticket_ref} is no longer waiting for this decision")
        typed = request.form.get("other", "").strip()
        choice = typed or request.form.get("choice", "").strip()
        if not choice:
            raise DecisionError(f"ticket {ticket.key}: choose an account, or type one")
        if kind == "ticket_issue":
            return self._issue_decision(snapshot, ticket_ref, ticket.key, choice, identity)
        if is_none(choice):
            label = "no customer account"
            return Decision(
                ticket_ref, ticket.key, kind, "none", decision_comment(label, identity.name)
            )
        account = _find_account(snapshot, choice)
        if account is None:
            raise DecisionError(f"no account '{choice}' in the store (an id, or an exact name)")
        label = str(account.get("name", account.key))
        return Decision(
            ticket_ref, ticket.key, kind, account.key, decision_comment(label, identity.name)
        )

    def _issue_decision(
        self, snapshot: Snapshot, ticket_ref: str, key: str, choice: str, identity: Identity
    ) -> Decision:
        keys = [k.strip().upper() for k in choice.replace(";", ",").split(",") if k.strip()]
        unknown = [k for k in keys if k not in snapshot.issue_by_key]
        if unknown or not keys:
            raise DecisionError(f"no issue {', '.join(unknown) or choice!r} in the store")
        comment = decision_comment(", ".join(keys), identity.name)
        return Decision(ticket_ref, key, "ticket_issue", keys, comment)

    # ---- sign-in ----------------------------------------------------------------------------

    def sign_in_first(self, request: Request) -> Response:
        wants_page = request.method == "GET" and "text/html" in request.headers.get("Accept", "")
        if self.guard.kind == "token" and wants_page:
            target = "/login?" + urlencode({"next": request.full_path.rstrip("?")})
            return secure_headers(Response(status=303, headers={"Location": target}))
        return secure_headers(self.guard.challenge())

    def login(self, request: Request) -> Response:
        if self.guard.kind != "token":
            return secure_headers(Response(status=303, headers={"Location": "/"}))
        next_path = _local_path(request.values.get("next", "/"))
        if request.method == "POST":
            if not self.guard.csrf_ok(request):
                return secure_headers(self.error_page(request, 403, "Reload the sign-in page."))
            if self.guard.token_matches(request.form.get("token", "")):
                response = Response(status=303, headers={"Location": next_path})
                value, lifetime = self.guard.session_cookie()
                self._set_cookie(request, response, SESSION_COOKIE, value, lifetime)
                log.info("web_signed_in")
                return secure_headers(response)
            log.warning("web_sign_in_refused", remote=request.remote_addr)
            page = Page("login.html", "Sign in", {"next": next_path, "refused": True})
            return secure_headers(self.render_page(request, page, None, 401))
        page = Page("login.html", "Sign in", {"next": next_path, "refused": False})
        return secure_headers(self.render_page(request, page, None))

    def logout(self, request: Request) -> Response:
        if not self.guard.csrf_ok(request):
            return self.error_page(request, 403, "Reload the page, then sign out.")
        response = Response(status=303, headers={"Location": "/login"})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @staticmethod
    def _set_cookie(
        request: Request, response: Response, name: str, value: str, max_age: int | None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.scheme == "https",
        )


def endpoint_is_chart(path: str) -> bool:
    return path.startswith("/charts/")


def url_with(args: Mapping[str, str], **changes: Any) -> str:
    """This page's query string with some parameters changed (None or '' removes one)."""
    merged = {k: v for k, v in args.items() if k not in changes}
    merged.update({k: str(v) for k, v in changes.items() if v not in (None, "")})
    return "?" + urlencode(merged) if merged else "?"


def _local_path(value: str) -> str:
    """A redirect target inside this site only."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def _find_account(snapshot: Snapshot, choice: str) -> Any:
    """An account by id, or by exact name when that name is unique (as the overrides read it)."""
    account = snapshot.world.account(choice)
    if account is not None:
        return account
    named = [a for a in snapshot.world.accounts.values() if str(a.get("name", "")) == choice]
    return named[0] if len(named) == 1 else None
