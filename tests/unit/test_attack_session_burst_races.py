"""What the desk or the API writes while a burst's final rows wait in the event consumer's
batch (up to half a second): a disposition that closes the lead, a callback booked
during the call, a do-not-call. The batch is written after them and must neither undo
them nor fail for them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.dispositions import DispositionError, apply_disposition
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import SimulatedPbx
from dialer.store.event_writes import EventWrites
from dialer.store.schema import call_attempts, leads
from dialer.store.store import Store

NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _runner(store: Store, phones: list[str]) -> CampaignRunner:
    campaign = Campaign(name="races", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 10})
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    board = AgentBoard({f"agent{n}": f"PJSIP/agent{n}" for n in range(1, 4)})
    for n in range(1, 4):
        board.apply(r.MemberStatus(at=0, queue="sales", interface=f"PJSIP/agent{n}", status=1, paused=False,
                                   in_call=False))
    pbx = SimulatedPbx(random.Random(0), {}).logged_in([("sales", "PJSIP/agent1", "agent1", 0)])
    runner = CampaignRunner(campaign, campaign_id, store, pbx, board, {"PJSIP/agent1": "agent1"},
                            clock=lambda: NOW.timestamp())
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    await runner.tick(NOW.timestamp())
    await runner.wait_sends()
    assert len(runner.attempts) == len(phones)
    return runner


async def _rows(store: Store) -> dict[str, tuple[str, str | None, str, str | None, bool]]:
    """Per phone: the attempt's state and outcome, the lead's state, final reason, and whether it
    holds a callback."""
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(leads.c.phone, call_attempts.c.state, call_attempts.c.outcome, leads.c.state,
                       leads.c.final_reason, leads.c.callback_id)
                .join(leads, leads.c.id == call_attempts.c.lead_id)
            )
        ).all()
    return {row[0]: (row[1], row[2], row[3], row[4], row[5] is not None) for row in rows}


async def test_dispositions_given_while_the_final_rows_wait_in_the_batch_stand(store: Store) -> None:
    phones = ["+12125550001", "+12125550002", "+12125550003"]
    runner = await _runner(store, phones)
    by_phone = {a.phone: a.id for a in runner.attempts.values()}
    at = NOW.timestamp() + 1
    writes = EventWrites(store)
    for attempt_id in by_phone.values():
        await runner.on_record(r.ChannelCreated(attempt_id, at, f"PJSIP/carrier-{attempt_id[:8]}"), writes)
        await runner.on_record(r.ChannelState(attempt_id, at + 1, 6), writes)
        await runner.on_record(r.AgentConnected(attempt_id, at + 2, "sales", "PJSIP/agent1"), writes)
        await runner.on_record(r.ChannelHangup(attempt_id, at + 60, 16, "Normal Clearing"), writes)
    assert len(runner._writing) == len(phones)  # every final row waits in the batch

    campaigns = {"races": runner.campaign}
    when = NOW + timedelta(seconds=62)
    await apply_disposition(store, campaigns, attempt_id=by_phone[phones[0]], code="sale", now=when)
    await apply_disposition(store, campaigns, attempt_id=by_phone[phones[1]], code="callback", now=when,
                            callback_at=when + timedelta(days=1))
    await apply_disposition(store, campaigns, attempt_id=by_phone[phones[2]], code="dnc", now=when)
    before = await _rows(store)

    await writes.flush()

    after = await _rows(store)
    assert runner.attempts == {} and not runner._writing
    assert {phone: row[:2] for phone, row in after.items()} == dict.fromkeys(phones, ("ended", "answered"))
    for phone in phones:
        # What the dispositions did to the lead stands.
        assert after[phone][2:] == before[phone][2:], phone
    assert after[phones[0]][2:4] == ("done", "sale")
    assert after[phones[1]][4] is True
    assert after[phones[2]][2] == "done"


async def test_a_disposition_racing_the_batch_write_is_either_applied_or_refused_and_the_batch_is_written(
    store: Store,
) -> None:
    phones = ["+12125550001", "+12125550002", "+12125550003"]
    runner = await _runner(store, phones)
    by_phone = {a.phone: a.id for a in runner.attempts.values()}
    at = NOW.timestamp() + 1
    writes = EventWrites(store)
    for attempt_id in by_phone.values():
        await runner.on_record(r.ChannelCreated(attempt_id, at, f"PJSIP/carrier-{attempt_id[:8]}"), writes)
        await runner.on_record(r.ChannelState(attempt_id, at + 1, 6), writes)
        await runner.on_record(r.AgentConnected(attempt_id, at + 2, "sales", "PJSIP/agent1"), writes)
        await runner.on_record(r.ChannelHangup(attempt_id, at + 60, 16, "Normal Clearing"), writes)

    when = NOW + timedelta(seconds=61)
    flushed, disposed = await asyncio.gather(
        writes.flush(),
        apply_disposition(store, {"races": runner.campaign}, attempt_id=by_phone[phones[0]], code="sale", now=when),
        return_exceptions=True,
    )
    assert flushed is None
    after = await _rows(store)
    assert runner.attempts == {} and not runner._writing
    assert {phone: row[:2] for phone, row in after.items()} == dict.fromkeys(phones, ("ended", "answered"))
    if isinstance(disposed, BaseException):
        assert isinstance(disposed, DispositionError), repr(disposed)
    else:
        assert after[phones[0]][2:4] == ("done", "sale")
