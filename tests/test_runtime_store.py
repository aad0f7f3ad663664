"""The runtime opens its store once, whichever of a daemon's threads asks first."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pmsync.app.runtime import Runtime
from pmsync.sync.store.store import Store

REPO = Path(__file__).resolve().parent.parent


def test_threads_asking_for_the_store_at_once_share_one_opened_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings"}"]\n'
        '[connectors.zendesk]\ntype = "zendesk"\nbase_url = "http://127.0.0.1:9"\n'
        'streams = ["tickets"]\n'
        '[connectors.zendesk.credentials]\nemail = "ops@example.com"\n'
        'api_token = { env = "RUNTIME_STORE_TOKEN" }\n'
    )
    monkeypatch.setenv("RUNTIME_STORE_TOKEN", "x")
    runtime = Runtime.load(str(config))
    start = threading.Barrier(6)
    opened: list[Store] = []
    errors: list[BaseException] = []

    def ask() -> None:
        start.wait()
        try:
            opened.append(runtime.store)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime.close()
    assert errors == []
    assert len(opened) == 6
    assert len({id(store) for store in opened}) == 1  # one store, migrated once
