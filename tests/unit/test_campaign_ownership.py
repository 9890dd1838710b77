"""Several daemons on one database: the campaign lease's pure rules, and claims on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.config.loader import load_config
from dialer.config.yaml_files import ConfigValidationError
from dialer.core.ownership import Holder, LeaseTerms, expired, may_claim, may_dial, renewed, taken_from
from dialer.store import campaign_owners
from dialer.store.store import Store

T0 = datetime(2026, 6, 2, 17, 0)
TERMS = LeaseTerms(takeover_after=15.0, heartbeat=3.0)

daemons = st.sampled_from(["a", "b", "c"])
seconds = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(me=daemons, owner=daemons, renewed_ago=seconds)
def test_a_lease_is_claimed_only_when_free_mine_or_expired(me: str, owner: str, renewed_ago: float) -> None:
    holder = renewed(owner, T0, TERMS)
    now = T0 + timedelta(seconds=renewed_ago)
    assert may_claim(holder, me, now) == (owner == me or renewed_ago >= TERMS.takeover_after)
    assert may_claim(None, me, now)
    assert taken_from(holder, me) == (None if owner == me else owner)


@given(renewed_ago=seconds, other=daemons)
def test_the_owner_stops_dialing_before_anyone_may_take_over(renewed_ago: float, other: str) -> None:
    """However late its renewal, the owner never dials at a moment another daemon may claim the lease."""
    holder = renewed("me", T0, TERMS)
    now = T0 + timedelta(seconds=renewed_ago)
    if may_dial(holder.expires_at, now, TERMS):
        assert not may_claim(holder, "other-" + other, now)
        # A heartbeat to spare: a stalled owner's last Originate is long on the channel list.
        assert not expired(holder, now + timedelta(seconds=TERMS.heartbeat))
    assert not may_dial(None, now, TERMS)


def test_terms_need_several_heartbeats_per_lease() -> None:
    with pytest.raises(ValueError, match="three heartbeats"):
        LeaseTerms(takeover_after=5.0, heartbeat=3.0)


async def _campaign(url: str) -> tuple[Store, int]:
    store = await Store.open(url)
    return store, await store.sync_campaign("shared", "telemarketing")


async def test_one_daemon_holds_a_campaign_and_another_takes_it_over_only_after_expiry(store_url: str) -> None:
    store, campaign_id = await _campaign(store_url)
    try:
        first = await campaign_owners.claim(store, campaign_id, "a", T0, TERMS)
        assert first.held and first.taken_from is None
        refused = await campaign_owners.claim(store, campaign_id, "b", T0 + timedelta(seconds=14.9), TERMS)
        assert not refused.held and refused.holder == Holder("a", T0, T0 + timedelta(seconds=15))
        renewal = await campaign_owners.claim(store, campaign_id, "a", T0 + timedelta(seconds=3), TERMS)
        assert renewal.held and renewal.taken_from is None
        assert not (await campaign_owners.claim(store, campaign_id, "b", T0 + timedelta(seconds=17), TERMS)).held
        takeover = await campaign_owners.claim(store, campaign_id, "b", T0 + timedelta(seconds=18), TERMS)
        assert takeover.held and takeover.taken_from == "a"
        back = await campaign_owners.claim(store, campaign_id, "a", T0 + timedelta(seconds=19), TERMS)
        assert not back.held and back.holder is not None and back.holder.owner == "b"
        await campaign_owners.release(store, campaign_id, "a")  # not a's: nothing changes
        assert (await campaign_owners.holder(store, campaign_id)) == takeover.holder
        await campaign_owners.release(store, campaign_id, "b")
        assert await campaign_owners.holder(store, campaign_id) is None
    finally:
        await store.close()


@pytest.mark.parametrize("expired_before", [False, True])
async def test_daemons_claiming_at_once_leave_one_owner(store_url: str, expired_before: bool) -> None:
    """Each daemon has its own engine (its own connections); they race for a free or an expired lease."""
    store, campaign_id = await _campaign(store_url)
    others = [await Store.open(store_url) for _ in range(6)]
    now = T0 + timedelta(seconds=60)
    try:
        if expired_before:
            await campaign_owners.claim(store, campaign_id, "dead", T0, TERMS)
        claims = await asyncio.gather(
            *(campaign_owners.claim(s, campaign_id, f"d{n}", now, TERMS) for n, s in enumerate(others)),
            return_exceptions=True,
        )
        assert not [c for c in claims if isinstance(c, BaseException)], claims
        won = [c for c in claims if not isinstance(c, BaseException) and c.held]
        assert len(won) == 1, claims
        assert all(c.holder == won[0].holder for c in claims if not isinstance(c, BaseException)), claims
        holder = await campaign_owners.holder(store, campaign_id)
        assert holder is not None and holder == won[0].holder
        assert won[0].taken_from == ("dead" if expired_before else None)
    finally:
        for s in others:
            await s.close()
        await store.close()


def test_the_daemons_section_is_checked_where_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "dialer.yaml"
    path.write_text("ami: [{username: dialer, secret: x}]\ndaemons:\n  takeover_after: 5\n  heartbeat: 3\n")
    with pytest.raises(ConfigValidationError, match=r"dialer.yaml:2: daemons: takeover_after must be at least three"):
        load_config(path)
    path.write_text("ami: [{username: dialer, secret: x}]\ndaemons: {id: 'a b'}\n")
    with pytest.raises(ConfigValidationError, match=r"dialer.yaml:2: daemons.id"):
        load_config(path)
    path.write_text("ami: [{username: dialer, secret: x}]\ndaemons: {}\n")
    shared = load_config(path).daemons
    assert shared is not None and (shared.id, shared.takeover_after, shared.heartbeat) == (None, 15.0, 3.0)
