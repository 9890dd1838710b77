"""Several daemons on one database (SQLite and PostgreSQL): a campaign is dialed by the daemon holding its
lease; when that daemon dies, another takes the campaign over once the lease has run out, adopts the calls
still up instead of dialing their numbers again, and finishes the campaign."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dialer.config.loader import load_config
from dialer.config.models import AmiServer, Campaign
from dialer.core.ownership import LeaseTerms
from dialer.daemon.server import Daemon
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store import campaign_owners
from dialer.store.store import Store

T0 = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()  # a Tuesday afternoon in the US
TAKEOVER_AFTER, HEARTBEAT = 3.0, 0.5
CAMPAIGN = Campaign(name="shared", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                    queue="sales", dialing={"max_lines": 3})
AGENTS = {f"PJSIP/agent{n}": 0.05 for n in range(1, 6)}
"""More agents than lines: while the dead daemon's calls are up, agents are free for a daemon that may dial."""


class OneConnectionAtATime(SimulatedPbx):
    """The PBX both daemons reach, one at a time: a killed daemon's connection and reconnect loop die with it."""

    def attach(self, server: AmiServer, clock: Callable[[], float]) -> SimulatedPbx:
        self.events = asyncio.Queue()
        self._on_login = []
        return super().attach(server, clock)

    async def run(self, stopping: asyncio.Event) -> None:
        self.stopping = stopping
        await super().run(stopping)

    def daemon_killed(self) -> None:
        self.stopping.set()
        self.drop_connection()


def write_config(tmp_path: Path, url: str, daemon_id: str) -> Path:
    path = tmp_path / f"{daemon_id}.yaml"
    path.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: '{url}'}}\n"
        "tick_interval: 0.05\n"
        f"daemons: {{id: {daemon_id}, takeover_after: {TAKEOVER_AFTER}, heartbeat: {HEARTBEAT}}}\n"
        "agents:\n"
        + "".join(f"  - {{id: agent{n}, interface: PJSIP/agent{n}, queues: [sales]}}\n" for n in range(1, 6))
    )
    return path


async def import_leads(url: str, phones: list[str]) -> int:
    store = await Store.open(url)
    try:
        campaign_id = await store.sync_campaign(CAMPAIGN.name, CAMPAIGN.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
        return campaign_id
    finally:
        await store.close()


async def kill(daemon: Daemon, task: asyncio.Task[int], pbx: OneConnectionAtATime) -> None:
    """kill -9: no drain, no lease released, no agent logged out; the PBX's calls go on."""

    async def nothing() -> None:
        return None

    daemon.shutdown = nothing  # type: ignore[method-assign]
    pbx.daemon_killed()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await daemon.tasks.cancel_all()
    assert daemon.store is not None
    await daemon.store.close()  # its connections go with the process


async def test_a_dead_daemons_campaign_is_taken_over_within_the_bound_and_its_calls_adopted(
    store_url: str, tmp_path: Path
) -> None:
    phones = [f"+1212555{n:04d}" for n in range(9)]
    # Calls long enough to be up when the first daemon dies and when the second takes over.
    customers = {p: Customer("answer", after=0.2, talk=TAKEOVER_AFTER + 2.0) for p in phones}
    sim = OneConnectionAtATime(random.Random(5), lambda number: customers[number], agents=AGENTS)
    campaign_id = await import_leads(store_url, phones)
    loop = asyncio.get_running_loop()
    started = loop.time()

    def clock() -> float:
        return T0 + loop.time() - started

    first = Daemon(load_config(write_config(tmp_path, store_url, "a")), {"shared": CAMPAIGN}, until_done=True,
                   drain_timeout=5, clock=clock, pbx_factory=sim.attach)
    first_run = asyncio.create_task(first.serve())
    while sum(1 for v in sim.bridged.values() for b in v if b.end is None) < 3:
        assert not first_run.done(), "the first daemon ended before its calls were up"
        await asyncio.sleep(0.02)
    await kill(first, first_run, sim)
    killed_at = clock()
    up_at_kill = {b.attempt_id for v in sim.bridged.values() for b in v if b.end is None}
    dialed_by_first = len(sim.dial_log)

    # The second daemon starts at once, while the dead one's lease has not run out.
    second = Daemon(load_config(write_config(tmp_path, store_url, "b")), {"shared": CAMPAIGN}, until_done=True,
                    drain_timeout=10, clock=clock, pbx_factory=sim.attach)
    store = await Store.open(store_url)
    try:
        lease = await campaign_owners.holder(store, campaign_id)
        assert lease is not None and lease.owner == "a"
        await asyncio.wait_for(second.serve(), 90)
        attempts = await store.attempts(campaign_id)
        leads = await store.leads(campaign_id)
        after = await campaign_owners.holder(store, campaign_id)
    finally:
        await store.close()

    expires_at = lease.expires_at.replace(tzinfo=UTC).timestamp()
    assert expires_at - killed_at <= TAKEOVER_AFTER
    second_dials = sim.dial_log[dialed_by_first:]
    assert second_dials, "the second daemon never dialed"
    # Nothing while the dead daemon's lease held; the first dial within a heartbeat and a reconcile of its end.
    assert second_dials[0].at >= expires_at
    assert second_dials[0].at - killed_at <= TAKEOVER_AFTER + 2 * HEARTBEAT + 1.0, second_dials[0].at - killed_at
    # No number dialed twice: every customer answers, so a second dial could only be a call up being redialed.
    assert sorted(d.number for d in sim.dial_log) == sorted(phones)
    # Every attempt has one final row, the calls up at the kill adopted and followed to their end.
    assert len(attempts) == len(phones) and len({a["id"] for a in attempts}) == len(phones)
    assert {(a["state"], a["outcome"]) for a in attempts} == {("ended", "answered")}
    assert up_at_kill <= {a["id"] for a in attempts}
    assert sorted((lead["phone"], lead["state"]) for lead in leads) == [(p, "done") for p in sorted(phones)]
    assert after is None, "a clean stop gives the lease up"


async def test_a_daemon_never_dials_a_campaign_whose_owner_keeps_its_heartbeat(store_url: str, tmp_path: Path) -> None:
    """The owner here is another daemon's heartbeat only (renewed by the test); when it stops, the campaign moves."""
    phones = [f"+1212555{n:04d}" for n in range(4)]
    sim = OneConnectionAtATime(random.Random(6), lambda number: Customer("answer", after=0.1, talk=0.2), agents=AGENTS)
    campaign_id = await import_leads(store_url, phones)
    loop = asyncio.get_running_loop()
    started = loop.time()

    def clock() -> float:
        return T0 + loop.time() - started

    terms = LeaseTerms(TAKEOVER_AFTER, HEARTBEAT)
    store = await Store.open(store_url)
    try:
        daemon = Daemon(load_config(write_config(tmp_path, store_url, "b")), {"shared": CAMPAIGN}, until_done=True,
                        drain_timeout=5, clock=clock, pbx_factory=sim.attach)
        assert (await campaign_owners.claim(store, campaign_id, "alive", datetime.fromtimestamp(clock(), UTC), terms)).held
        run = asyncio.create_task(daemon.serve())
        for _ in range(int(2 * TAKEOVER_AFTER / HEARTBEAT)):  # two lease lengths, renewed every heartbeat
            await asyncio.sleep(HEARTBEAT)
            renewal = await campaign_owners.claim(store, campaign_id, "alive", datetime.fromtimestamp(clock(), UTC), terms)
            assert renewal.held, renewal
            assert not run.done()
        assert sim.dial_log == [], "dialed a campaign another daemon holds"
        stopped_at = clock()
        await asyncio.wait_for(run, 60)
    finally:
        await store.close()
    assert sorted(d.number for d in sim.dial_log) == sorted(phones)
    assert stopped_at < sim.dial_log[0].at <= stopped_at + TAKEOVER_AFTER + 2 * HEARTBEAT + 1.0
