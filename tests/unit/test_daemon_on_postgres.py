"""`dialer run` on PostgreSQL: the real daemon, on the simulated PBX, takes a campaign to its end
with `database.url: postgresql+asyncpg://...`, and never shows the URL's password."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialer.cli.report import campaign_report
from dialer.config.loader import load_config
from dialer.config.models import Campaign
from dialer.daemon.server import Daemon, StartupError
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store.store import Store
from tests.postgres_server import PostgresServer, free_port

T0 = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()  # a Tuesday afternoon in the US
PASSWORD = "pg-s3cret-word"


def with_password(url: str) -> str:
    # The test cluster trusts local connections; the password is there to be kept out of sight.
    return url.replace("://dialer@", f"://dialer:{PASSWORD}@")


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "dialer.yaml"
    path.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: '{url}'}}\n"
        "tick_interval: 0.05\n"
        "agents:\n"
        "  - {id: agent1, interface: PJSIP/agent1, queues: [sales]}\n"
        "  - {id: agent2, interface: PJSIP/agent2, queues: [sales]}\n"
    )
    return path


CAMPAIGN = Campaign(name="pg", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                    queue="sales", dialing={"max_lines": 3})


async def test_the_daemon_runs_a_campaign_to_the_end_on_postgresql(
    postgres_server: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    talks = [(0.1, 0.2), (0.2, 0.1), (0.1, 0.3), (0.3, 0.1), (0.1, 0.1), (0.2, 0.2)]
    phones = {f"+1212555{n:04d}": Customer("answer", after=after, talk=talk) for n, (after, talk) in enumerate(talks)}
    sim = SimulatedPbx(random.Random(7), lambda number: phones[number], agents={"PJSIP/agent1": 0.05, "PJSIP/agent2": 0.1})
    url = with_password(postgres_server.database_url())
    config_path = write_config(tmp_path, url)
    store = await Store.open(url)  # an empty database: the migrations run first
    try:
        campaign_id = await store.sync_campaign(CAMPAIGN.name, CAMPAIGN.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    finally:
        await store.close()
    started = asyncio.get_running_loop().time()
    daemon = Daemon(load_config(config_path), {"pg": CAMPAIGN}, until_done=True, drain_timeout=5,
                    clock=lambda: T0 + asyncio.get_running_loop().time() - started, pbx_factory=sim.attach)
    await asyncio.wait_for(daemon.serve(), 60)

    store = await Store.open(url)
    try:
        progress = await store.progress(campaign_id)
        attempts = await store.attempts(campaign_id)
        leads = await store.leads(campaign_id)
    finally:
        await store.close()
    assert progress.finished and progress.outcomes == {"answered": 6}, progress
    assert [(a["state"], a["outcome"]) for a in attempts] == [("ended", "answered")] * 6
    assert sorted((lead["phone"], lead["state"], lead["final_outcome"]) for lead in leads) == [
        (phone, "done", "answered") for phone in sorted(phones)
    ]
    assert sorted(d.number for d in sim.dial_log) == sorted(phones), "each number dialled once"
    assert sum(len(v) for v in sim.bridged.values()) == 6 and not sim.abandoned
    report = await campaign_report(url, "pg")  # what `dialer report` reads and prints
    assert (report["leads"], report["outcomes"], report["abandon_rate"]) == (
        {"total": 6, "pending": 0, "in_progress": 0, "done": 6}, {"answered": 6}, 0
    )
    assert sum(report["calls_per_agent"].values()) == 6 and report["mean_talk_seconds"] > 0
    postgres_server.drop(url)
    shown = capsys.readouterr()
    assert "campaign" in shown.out + shown.err, "the daemon's log was not captured"
    assert PASSWORD not in shown.out + shown.err


async def test_an_unreachable_postgresql_stops_the_start_with_the_password_masked(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://dialer:{PASSWORD}@127.0.0.1:{free_port()}/dialer"
    daemon = Daemon(load_config(write_config(tmp_path, url)), {"pg": CAMPAIGN}, until_done=True, drain_timeout=1,
                    pbx_factory=SimulatedPbx(random.Random(1), lambda _number: Customer("busy")).attach)
    with pytest.raises(StartupError) as raised:
        await daemon.serve()
    assert PASSWORD not in str(raised.value) and "dialer:***@127.0.0.1" in str(raised.value), str(raised.value)
