"""`pmsync serve`: the web view over the store, in the foreground."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from .context import Context, handle_errors, pass_context
from .output import out


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default: [web] host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: [web] port, 9474).")
@pass_context
@handle_errors
def serve_command(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the web view: issues by revenue at stake, accounts, product areas, review, freshness.

    Read-only over the store; the review queue writes decisions to the overrides file. Runs
    until Ctrl-C or SIGTERM. `pmsync run` serves the same view when `[web] enabled = true`.
    """
    from pmsync.app.runtime import Runtime
    from pmsync.app.web.server import WebServer, build_app

    runtime = ctx.runtime()
    runtime.store  # noqa: B018 - read-only: "no store at ..." now, before listening
    settings = runtime.config.settings.web
    changes: dict[str, Any] = {}
    if host is not None:
        changes["host"] = host
    if port is not None:
        changes["port"] = port
    settings = settings.model_copy(update=changes)
    config_path = str(runtime.config.path)
    app = build_app(runtime, settings, lambda: Runtime.load(config_path, create_store=False))
    server = WebServer(app, settings)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    out.print(f"pmsync web view on {server.url} (Ctrl-C to stop)", markup=False)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        runtime.close()


COMMANDS: tuple[click.Command, ...] = (serve_command,)
