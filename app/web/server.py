"""Serve the web view: build the app over a configuration, run it in waitress.

waitress is a production WSGI server (a thread pool, request size limits, slow clients
buffered off the application threads), unlike a development server. `WebServer` runs it in a
background thread, so `pmsync serve` and the daemon start and stop it the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from waitress.server import create_server

from pmsync.app.web.app import WebApp
from pmsync.app.web.keeper import SnapshotKeeper
from pmsync.app.web.links import SourceLinks
from pmsync.app.web.settings import WebSettings
from pmsync.errors import ConfigError, Problem
from pmsync.logs import get_logger

if TYPE_CHECKING:
    from pmsync.app.runtime import Runtime

log = get_logger("pmsync.web")
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def build_app(
    runtime: Runtime, settings: WebSettings, runtime_factory: Callable[[], Runtime]
) -> WebApp:
    """The app over `runtime`'s store; `runtime_factory` loads the configuration afresh for
    each data refresh (so mapping and overrides edits show without a restart)."""
    keeper = SnapshotKeeper(runtime_factory, settings.refresh_interval.total_seconds())

    def slots() -> list[tuple[str, str]]:
        return [(job.connector, job.spec.name) for job in runtime.jobs()]

    links = SourceLinks.from_connectors(runtime.config.connectors)
    return WebApp(settings, keeper, runtime.store, links, slots)


class WebServer:
    """The web view listening on `[web] host:port` until `stop()`."""

    def __init__(self, app: WebApp, settings: WebSettings, owned: Runtime | None = None) -> None:
        self.app = app
        self._owned = owned  # closed on stop
        try:
            self._server: Any = create_server(
                app,
                host=settings.host,
                port=settings.port,
                threads=settings.threads,
                ident="pmsync",
                clear_untrusted_proxy_headers=True,
                max_request_body_size=1024 * 1024,
                channel_timeout=60,
                # Bounded like the health port: a capped number of connections (waitress
                # stops accepting at the cap) and poll(), so descriptors above 1,024 work.
                connection_limit=100,
                asyncore_use_poll=True,
            )
        except OSError as exc:
            if owned is not None:
                owned.close()
            raise ConfigError(
                Problem(
                    None,
                    "web.port",
                    f"cannot listen on {settings.host}:{settings.port} ({exc.strerror})",
                )
            ) from None
        self.host = settings.host
        self.port = int(getattr(self._server, "effective_port", settings.port))
        self._thread = threading.Thread(target=self._server.run, name="pmsync-web", daemon=True)
        if settings.host not in LOCAL_HOSTS and settings.auth == "none":
            log.warning(
                "web_open_to_the_network",
                host=settings.host,
                hint='set [web] auth = "token" or "basic", or bind 127.0.0.1 behind a proxy',
            )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self.app.keeper.start()
        self._thread.start()
        log.info("web_listening", url=self.url, auth=self.app.settings.auth)

    def stop(self) -> None:
        """Close the listening socket and every open connection, then the data thread."""
        server = self._server
        for channel in list(getattr(server, "_map", {}).values()):
            try:
                channel.handle_close()
            except OSError:
                continue
        server.task_dispatcher.shutdown(timeout=5)
        self._thread.join(timeout=5)
        self.app.keeper.stop()
        if self._owned is not None:
            self._owned.close()
