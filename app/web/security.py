"""Who may read the web view, which requests may write, and the headers every answer carries.

* Authentication (`[web] auth`): none (the default, bound to 127.0.0.1), a token (sent as
  `Authorization: Bearer`, or typed once into the sign-in form, which sets a cookie holding an
  expiry signed with the token: never the token itself, and rotating the token signs everyone
  out), or HTTP basic. Secrets are compared in constant time.
* CSRF: the only write (a review decision) is a POST that must carry a token bound to a
  random cookie of this browser (signed with a key of this process) and come from this origin.
* Headers: a Content-Security-Policy that allows no script at all and nothing from elsewhere,
  no framing, no sniffing, no referrer across origins, and no caching of pages with figures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from pmsync.app.web.settings import WebSettings

SESSION_COOKIE = "pmsync_session"
CSRF_COOKIE = "pmsync_csrf"
CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# An SVG chart is its own document when opened directly: its inline style may apply, nothing
# else (a chart shown through <img> never runs scripts in any case).
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def secure_headers(response: Response, *, chart: bool = False, static: bool = False) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    if chart:
        response.headers["Content-Security-Policy"] = CHART_CSP
    if static:
        response.headers["Cache-Control"] = "public, max-age=3600"
    else:
        response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True)
class Identity:
    """Who is asking: a name for the audit log (the basic user, 'token', or 'local')."""

    name: str


class Guard:
    """Authentication and CSRF for one running web view."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self._csrf_key = secrets.token_bytes(32)  # new per process: forms expire on restart
        self._token = settings.token.get_secret_value().encode() if settings.token else b""
        self._password = settings.password.get_secret_value().encode() if settings.password else b""

    @property
    def kind(self) -> str:
        return self.settings.auth

    # ---- authentication -------------------------------------------------------------------

    def identify(self, request: Request) -> Identity | None:
        """The caller, or None when credentials are missing or wrong."""
        if self.kind == "none":
            return Identity("local")
        if self.kind == "basic":
            return self._basic(request)
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer ") and self.token_matches(header[7:].strip()):
            return Identity("token")
        if self._session_valid(request.cookies.get(SESSION_COOKIE, "")):
            return Identity("token")
        return None

    def _basic(self, request: Request) -> Identity | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        expected_user = (self.settings.username or "").encode()
        same_user = hmac.compare_digest(user.encode(), expected_user)
        same_password = hmac.compare_digest(password.encode(), self._password)
        return Identity(user) if same_user and same_password else None

    def token_matches(self, candidate: str) -> bool:
        return bool(self._token) and hmac.compare_digest(candidate.encode(), self._token)

    def session_cookie(self) -> tuple[str, int]:
        """A sign-in cookie value and its lifetime in seconds."""
        lifetime = int(self.settings.session_lifetime.total_seconds())
        expires = int(time.time()) + lifetime
        return f"{expires}.{self._sign_session(expires)}", lifetime

    def _sign_session(self, expires: int) -> str:
        message = f"pmsync-web-session:{expires}".encode()
        return hmac.new(self._token, message, hashlib.sha256).hexdigest()

    def _session_valid(self, value: str) -> bool:
        expires_text, _, signature = value.partition(".")
        if not expires_text.isdigit() or not self._token:
            return False
        expires = int(expires_text)
        if expires < time.time():
            return False
        return hmac.compare_digest(signature, self._sign_session(expires))

    def challenge(self) -> Response:
        """What an unauthenticated caller gets (token auth sends browsers to the sign-in form)."""
        response = Response("Sign in to see pmsync's web view.\n", status=401)
        if self.kind == "basic":
            response.headers["WWW-Authenticate"] = 'Basic realm="pmsync", charset="UTF-8"'
        else:
            response.headers["WWW-Authenticate"] = 'Bearer realm="pmsync"'
        return response

    # ---- CSRF -----------------------------------------------------------------------------

    def csrf_seed(self, request: Request) -> tuple[str, bool]:
        """This browser's CSRF cookie value, and whether it is new (to be set)."""
        seed = request.cookies.get(CSRF_COOKIE, "")
        if len(seed) == 43 and seed.replace("-", "").replace("_", "").isalnum():
            return seed, False
        return secrets.token_urlsafe(32), True

    def csrf_token(self, seed: str) -> str:
        return hmac.new(self._csrf_key, seed.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request) -> bool:
        """A POST carries the token of this browser's cookie and comes from this origin."""
        seed = request.cookies.get(CSRF_COOKIE, "")
        sent = request.form.get("csrf", "")
        if not seed or not sent or not hmac.compare_digest(sent, self.csrf_token(seed)):
            return False
        return same_origin(request)


def same_origin(request: Request) -> bool:
    """The Origin (or, lacking it, the Referer) names the host the request was sent to."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return True  # non-browser clients send neither; the token above still had to match
    parts = urlsplit(source)
    return parts.netloc == request.host and parts.scheme in ("http", "https")
