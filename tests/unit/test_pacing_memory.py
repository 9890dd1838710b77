"""The daemon's pacing memory: what a campaign runner learns from finished attempts,
and what it restores from the store after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from dialer.config.models import Campaign, DialingConfig
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.leads.csv_import import LeadRow
from dialer.store.schema import call_attempts
from dialer.store.store import Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def campaign(**dialing: object) -> Campaign:
    return Campaign(
        name="memory",
        type="telemarketing",
        trunk="PJSIP/{number}@carrier",
        caller_id="+15550100",
        queue="sales",
        dialing=DialingConfig(**dialing),
    )


def test_abandon_limit_over_three_percent_needs_an_explicit_override() -> None:
    with pytest.raises(ValidationError, match="override_ceiling"):
        DialingConfig(abandon_limit=0.05)
    assert DialingConfig(abandon_limit=0.05, override_ceiling=True).abandon_limit == 0.05
    with pytest.raises(ValidationError, match="over abandon_limit"):
        DialingConfig(abandon_target=0.03, abandon_limit=0.02)


def test_short_rings_need_an_explicit_override() -> None:
    with pytest.raises(ValidationError, match="under 15 s"):
        DialingConfig(ring_timeout=10)
    assert DialingConfig(ring_timeout=10, allow_short_ring=True).ring_timeout == 10


def make_runner(store: Store, campaign_id: int, **dialing: object) -> CampaignRunner:
    return CampaignRunner(campaign(**dialing), campaign_id, store, ami=None, board=AgentBoard({}), agent_ids={})  # type: ignore[arg-type]


def test_learning_counts_live_answers_in_the_abandon_window() -> None:
    runner = make_runner(None, 1)  # type: ignore[arg-type]
    t = NOW.timestamp()
    runner.learn("answered", t, t + 3, t + 4, t + 30)
    runner.learn("abandoned", t, t + 2, None, t + 6)
    runner.learn("busy", t, None, None, t + 2)
    runner.learn("interrupted", t, None, None, t + 2)  # teaches nothing
    state = runner.abandon_window.state(t + 60, 0.03)
    assert (state.answered, state.abandoned) == (2, 1)
    assert runner.stats.attempts_seen == 3
    assert runner.stats.talks_seen == 1


async def test_memory_is_restored_from_stored_attempts_within_the_window(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        campaign_id = await store.sync_campaign("memory", "telemarketing")
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=f"+1555000{i:04d}") for i in range(4)])
        # Two live answers (one abandoned) today, one abandon 2 days ago: the 24 h window drops it.
        stories = [
            ("answered", NOW - timedelta(hours=1), True, True),
            ("abandoned", NOW - timedelta(hours=2), True, False),
            ("abandoned", NOW - timedelta(days=2), True, False),
            ("no_answer", NOW - timedelta(hours=3), False, False),
        ]
        leases = await store.lease_due_leads(campaign_id, 4, NOW - timedelta(days=3))
        for lease, (outcome, ended, answered, bridged) in zip(leases, stories):
            await store.finish_attempt(lease.attempt_id, outcome=outcome, lead_state="done", ended_at=ended)
            async with store.engine.begin() as conn:
                await conn.execute(
                    update(call_attempts)
                    .where(call_attempts.c.id == lease.attempt_id)
                    .values(
                        dialed_at=(ended - timedelta(seconds=40)).replace(tzinfo=None),
                        answered_at=(ended - timedelta(seconds=30)).replace(tzinfo=None) if answered else None,
                        bridged_at=(ended - timedelta(seconds=29)).replace(tzinfo=None) if bridged else None,
                    )
                )
        runner = make_runner(store, campaign_id, abandon_window="24h")
        await runner.restore_memory(NOW.timestamp())
        state = runner.abandon_window.state(NOW.timestamp(), 0.03)
        assert (state.answered, state.abandoned) == (2, 1)
        assert runner.stats.attempts_seen == 3
        assert runner.stats.talks_seen == 1
    finally:
        await store.close()
