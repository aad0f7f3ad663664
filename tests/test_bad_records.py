"""One bad record never stops a stream (issue 11, item 7).

A ticket whose text is not valid UTF-8 arrives on a page of an otherwise good export: it goes to
dead letters with its bytes and the field, every other ticket is stored, the cursor moves on,
and once the ticket is fixed at the source the next read stores it and closes the dead letter.
"""

from __future__ import annotations

import json
from pathlib import Path

from pmsync.app.runtime import Runtime
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import write_config

MARKER = "BADBYTES-7"


def test_a_ticket_with_invalid_utf8_is_dead_lettered_and_the_rest_syncs(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    ticket = sim._public(sim.tickets.items[40])
    sim.put_ticket(
        {**ticket, "status": "open", "description": f"Na {MARKER} ve"}, at=sim.now() - 90
    )
    # Latin-1 bytes where UTF-8 belongs, as a mail gateway writes them: not JSON a parser takes.
    sim.patch_bodies("/api/v2/incremental/tickets", MARKER.encode(), b"caf\xe9 \xff\xfe")
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url, page_size=100)))
    try:
        [result] = runtime.run_once(["zendesk.tickets"])

        assert result.status == "ok", result.error
        assert result.dead_letters == 1
        live = runtime.store.live_keys("zendesk", "tickets")
        expected = {str(i) for i, t in sim.tickets.items.items() if t["status"] != "deleted"}
        assert live == expected - {"40"}
        [letter] = runtime.store.dead_letter_rows()
        assert letter["record_key"] == "40"
        assert letter["field"] == "description"
        assert "not valid UTF-8" in letter["reason"]
        assert "e9 ff fe" in letter["reason"]
        payload = json.loads(letter["payload"])
        assert (
            payload["description"].encode("utf-8", "surrogateescape") == b"Na caf\xe9 \xff\xfe ve"
        )
        state = runtime.store.stream_state("zendesk", "tickets")
        assert state is not None
        assert state.status == "ok"

        # The next cycle does not stumble on it again, and a fix at the source heals it.
        sim.body_patches.clear()
        sim.put_ticket({**ticket, "status": "open", "description": "fixed"}, at=sim.now() - 61)
        [again] = runtime.run_once(["zendesk.tickets"])
        assert again.status == "ok"
        assert "40" in runtime.store.live_keys("zendesk", "tickets")
        assert runtime.store.dead_letter_rows() == []
    finally:
        runtime.close()
