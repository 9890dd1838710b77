"""A burst of AMI events is written in one transaction (dialer.store.event_writes), and the
daemon's event consumer uses it: the columns land as one write per event did, final rows
after them."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from dialer.config.models import AgentConfig, Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import SETTLE_SECONDS
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import SimulatedPbx
from dialer.store import event_writes
from dialer.store.event_writes import EventWrites
from dialer.store.lead_outcomes import FinalRow, finish_many
from dialer.store.schema import agents, call_attempts, leads
from dialer.store.store import Store, StoreError

NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _leased(store: Store, count: int) -> list[str]:
    campaign_id = await store.sync_campaign("burst", "telemarketing")
    await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=f"+1212555{i:04d}") for i in range(count)])
    return [lease.attempt_id for lease in await store.lease_due_leads(campaign_id, count, NOW)]


def _transactions(store: Store) -> list[int]:
    begun: list[int] = []
    event.listen(store.engine.sync_engine, "begin", lambda _conn: begun.append(1))
    return begun


async def test_a_burst_of_columns_and_agent_states_is_one_transaction(store: Store) -> None:
    attempt_ids = await _leased(store, 40)
    await store.sync_agents([AgentConfig(id=f"agent{n}", interface=f"PJSIP/agent{n}", queues=["sales"]) for n in (1, 2)],
                            NOW)
    writes = EventWrites(store)
    for n, attempt_id in enumerate(attempt_ids):
        writes.attempt(attempt_id, channel=f"PJSIP/carrier-{n:08x}", uniqueid=attempt_id)
        writes.attempt(attempt_id, answered_at=NOW)  # another event of the same call
        if n % 2:
            writes.attempt(attempt_id, bridged_at=NOW, agent_id="agent1")  # a third set of columns
    writes.agent_state("agent1", "busy", NOW)
    writes.agent_state("agent2", "ringing", NOW)
    writes.agent_state("agent2", "idle", NOW)  # the latest state wins
    begun = _transactions(store)
    await writes.flush()
    assert len(begun) == 1 and len(writes) == 0
    async with store._read() as conn:
        rows = {r.id: r for r in (await conn.execute(select(call_attempts))).all()}
        states = dict((await conn.execute(select(agents.c.id, agents.c.state))).all())
    for n, attempt_id in enumerate(attempt_ids):
        row = rows[attempt_id]
        assert (row.channel, row.answered_at) == (f"PJSIP/carrier-{n:08x}", NOW.replace(tzinfo=None))
        assert (row.agent_id, row.bridged_at is not None) == (("agent1", True) if n % 2 else (None, False))
    assert states == {"agent1": "busy", "agent2": "idle"}
    begun.clear()
    await writes.flush()  # nothing left: no transaction
    assert begun == []


async def test_text_from_asterisk_is_cut_to_its_column_as_a_single_update_does(store: Store) -> None:
    [attempt_id] = await _leased(store, 1)
    writes = EventWrites(store)
    writes.attempt(attempt_id, hangup_cause_text="x" * 500)
    await writes.flush()
    async with store._read() as conn:
        text = (await conn.execute(select(call_attempts.c.hangup_cause_text))).scalar_one()
    assert text == "x" * call_attempts.c.hangup_cause_text.type.length


# -- the runner's side: an event's columns join the burst, a final row comes after them ------


async def _runner(store: Store, phones: list[str]) -> CampaignRunner:
    campaign = Campaign(name="burst", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
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


async def test_the_runner_puts_an_events_columns_into_the_burst_and_writes_them_before_the_final_row(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/burst.db")
    try:
        runner = await _runner(store, ["+12125550001", "+12125550002", "+12125550003"])
        at = NOW.timestamp() + 1
        writes = EventWrites(store)
        begun = _transactions(store)
        for attempt_id in list(runner.attempts):
            await runner.on_record(r.ChannelCreated(attempt_id, at, f"PJSIP/carrier-{attempt_id[:8]}"), writes)
            await runner.on_record(r.ChannelState(attempt_id, at + 0.5, 6), writes)
        assert begun == [] and len(writes) == 3  # nothing written yet: one burst
        await writes.flush()
        assert len(begun) == 1
        async with store._read() as conn:
            channels = dict((await conn.execute(select(call_attempts.c.id, call_attempts.c.channel))).all())
        assert channels == {a: f"PJSIP/carrier-{a[:8]}" for a in runner.attempts}
        # A hang-up's columns wait in the burst, and so does the answered call's final row (it
        # settles at the hang-up): written after them in the burst's one transaction, not
        # overwritten by them. The attempt stays in memory until then; a tick meanwhile
        # leaves the row to the burst.
        ended = next(iter(runner.attempts))
        await runner.on_record(r.ChannelHangup(ended, at + 5, 16, "Normal Clearing"), writes)
        assert ended in runner.attempts and len(writes) == 2
        await runner.tick(at + 5 + SETTLE_SECONDS + 1)
        assert ended in runner.attempts and len(writes) == 2
        begun.clear()
        await writes.flush()
        assert len(begun) == 1 and ended not in runner.attempts and len(writes) == 0
        async with store._read() as conn:
            row = (await conn.execute(select(call_attempts).where(call_attempts.c.id == ended))).one()
        assert row.hangup_cause == 16 and row.ended_at is not None and row.outcome == "abandoned"  # no agent took it
    finally:
        await store.close()


# -- the final rows of a burst: one transaction, each row once, dropped from memory only after -----


async def _answered_and_hung_up(runner: CampaignRunner, writes: EventWrites, at: float) -> list[str]:
    ended = list(runner.attempts)
    for attempt_id in ended:
        await runner.on_record(r.ChannelCreated(attempt_id, at, f"PJSIP/carrier-{attempt_id[:8]}"), writes)
        await runner.on_record(r.ChannelState(attempt_id, at + 1, 6), writes)
        await runner.on_record(r.ChannelHangup(attempt_id, at + 20, 16, "Normal Clearing"), writes)
    return ended


async def _final_rows(store: Store) -> dict[str, tuple[str, str | None, str]]:
    async with store._read() as conn:
        rows = (
            await conn.execute(
                select(call_attempts.c.id, call_attempts.c.state, call_attempts.c.outcome, leads.c.state).join(
                    leads, leads.c.id == call_attempts.c.lead_id
                )
            )
        ).all()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def test_the_final_rows_of_calls_ending_in_one_burst_are_one_transaction(store: Store) -> None:
    runner = await _runner(store, [f"+1212555{n:04d}" for n in range(3)])
    writes = EventWrites(store)
    ended = await _answered_and_hung_up(runner, writes, NOW.timestamp() + 1)
    assert set(runner.attempts) == set(ended)  # none dropped before its row is stored
    begun = _transactions(store)
    await writes.flush()
    assert len(begun) == 1 and runner.attempts == {} and not runner.busy
    assert await _final_rows(store) == {a: ("ended", "abandoned", "pending") for a in ended}


async def test_a_burst_whose_write_fails_keeps_its_calls_and_the_next_tick_writes_each_row_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await _runner(store, [f"+1212555{n:04d}" for n in range(3)])
    writes = EventWrites(store)
    at = NOW.timestamp() + 1
    ended = await _answered_and_hung_up(runner, writes, at)
    written = event_writes.finish_many
    failures = [StoreError("database is locked")]

    async def locked_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await written(*args, **kwargs)

    monkeypatch.setattr(event_writes, "finish_many", locked_once)
    with pytest.raises(StoreError):
        await writes.flush()
    # Nothing written (the columns went with the failed transaction), nothing forgotten.
    assert set(runner.attempts) == set(ended) and len(writes) == 0
    assert {state for state, _, _ in (await _final_rows(store)).values()} == {"dialing"}
    finals = _count_final_writes(store)
    await runner.tick(at + 30)
    assert runner.attempts == {}
    assert await _final_rows(store) == {a: ("ended", "abandoned", "pending") for a in ended}
    assert len(finals) == len(ended)
    # A late flush of the same batch (or a second writer) rewrites nothing.
    await event_writes.EventWrites(store).flush()
    async with store._write() as conn:
        steps = await finish_many(conn, [FinalRow(a, "busy", NOW, {}, {}) for a in ended])
    assert steps == dict.fromkeys(ended) and await _final_rows(store) == {
        a: ("ended", "abandoned", "pending") for a in ended
    }


def _count_final_writes(store: Store) -> list[str]:
    """Statements that end an attempt (its final row), one entry a row."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE CALL_ATTEMPTS") and "outcome" in statement:
            seen.extend(["row"] * (len(parameters) if executemany else 1))

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    return seen
