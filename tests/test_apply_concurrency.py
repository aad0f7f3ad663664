"""An apply writes to each connector at that connector's own pace: a paced Jira does not hold
back Salesforce updates and Zendesk notes (they used to wait in plan order behind it), and
every write still lands and is recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pmsync.app.runtime import Runtime
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import launch

pytestmark = pytest.mark.slow


def test_other_connectors_write_while_jira_waits_for_its_budget(tmp_path: Path) -> None:
    size = CompanySize(accounts=30, contacts=90, users=120, tickets=300, issues=25)
    with launch(tmp_path / "demo", size=size, pendo=False) as demo:
        config = demo.config_path.read_text()
        slow = re.sub(r"(?m)^requests_per_second = \d+$", "requests_per_second = 5", config)
        demo.config_path.write_text(slow)
        runtime = Runtime.load(str(demo.config_path))
        try:
            runtime.run_once()
            plan = runtime.plan()
            assert plan.writes[0].connector == "jira"  # first in plan order
            others = {w.connector for w in plan.writes} - {"jira"}
            assert others
            sims = demo.simulators
            for sim in (sims.jira, sims.salesforce, sims.zendesk):
                sim.reset_log()
            result = runtime.apply(plan, confirm=True)
            jira_writes = [r.at for r in sims.jira.requests if r.method != "GET"]
            other_writes = [
                r.at
                for sim in (sims.salesforce, sims.zendesk)
                for r in sim.requests
                if r.method != "GET"
            ]
        finally:
            runtime.close()
    assert not result.failed
    assert len(result.applied) == len(plan.writes)
    assert len(jira_writes) > 20  # several seconds at 5 requests a second
    # Everything else was written while Jira's writes were still being paced.
    assert max(other_writes) < max(jira_writes)
