"""Deterministic simulation of the whole daemon (issue 12).

The real Daemon (runner, SQLite store, lead intake, reconciliation, campaign
watcher) runs on a virtual clock against the simulated Asterisk with faults
drawn from each seed; the invariants are checked after every step. A failing
seed names the command that replays it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import update

from dialer.dst.seed_run import replay_command, run_seed
from dialer.dst.virtual_loop import VirtualTimeLoop, WouldBlockForever
from dialer.store import dnc
from dialer.store.schema import leads
from dialer.store.store import Store

DAYS = 0.0015
"""Simulated days per seed (about two minutes of a campaign and some eight faults, then the drain)."""
BATCH = 25


@pytest.mark.parametrize("first", range(1, 201, BATCH))
def test_a_few_hundred_seeds_keep_every_invariant(first: int) -> None:
    failures = []
    calls = 0
    for seed in range(first, first + BATCH):
        result = run_seed(seed, DAYS)
        calls += result.calls
        if result.violation is not None:
            failures.append(f"seed {seed}: {result.violation}\n  replay: {replay_command(seed, DAYS)}")
    assert not failures, "\n".join(failures)
    assert calls > 5 * BATCH, "the seeds placed almost no calls: the invariants would hold vacuously"


def test_a_seed_replays_to_the_same_trace() -> None:
    first = run_seed(3, DAYS, keep_trace=True)
    again = run_seed(3, DAYS, keep_trace=True)
    assert first.calls > 0 and first.faults > 0
    assert again.trace == first.trace
    assert again.trace_hash == first.trace_hash
    assert run_seed(4, DAYS).trace_hash != first.trace_hash


def _caught(seeds: range, *invariants: str) -> int:
    """The first seed whose run breaks one of `invariants` (another broken one does not count)."""
    for seed in seeds:
        result = run_seed(seed, DAYS)
        if result.violation is not None and result.violation.invariant in invariants:
            return seed
    raise AssertionError(f"no seed of {seeds} caught the planted bug")


def test_a_lead_dialed_without_its_lease_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    leased = Store.lease_due_leads

    async def lease_then_forget(self: Store, *args: Any, **kwargs: Any) -> Any:
        found = await leased(self, *args, **kwargs)
        if found:
            async with self._write() as conn:
                await conn.execute(
                    update(leads)
                    .where(leads.c.id.in_([lease.lead_id for lease in found]))
                    .values(state="pending", lease_attempt_id=None)
                )
        return found

    monkeypatch.setattr(Store, "lease_due_leads", lease_then_forget)
    assert _caught(range(1, 6), "no number dialed again inside its retry delay", "no lead lost or closed by a fault")


def test_a_do_not_call_number_dialed_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    async def nothing_listed(*_args: Any, **_kwargs: Any) -> set[str]:
        return set()

    monkeypatch.setattr(dnc, "listed", nothing_listed)
    assert _caught(range(1, 41), "no denied or DNC number dialed")


def test_the_virtual_clock_jumps_instead_of_waiting() -> None:
    loop = VirtualTimeLoop()
    try:
        async def day() -> tuple[float, int]:
            await asyncio.sleep(86400.0)
            inline = await asyncio.to_thread(lambda: 7)  # no thread: it runs at once, on the loop
            return asyncio.get_running_loop().time(), inline

        assert loop.run_until_complete(day()) == (86400.0, 7)
        with pytest.raises(WouldBlockForever):
            loop.run_until_complete(loop.create_future())
    finally:
        loop.close()


def test_the_simulation_leaves_aiosqlite_as_it_found_it() -> None:
    before = aiosqlite.Connection.__dict__["_execute"], aiosqlite.Connection.__dict__["__await__"]
    run_seed(1, 0.0005)
    assert (aiosqlite.Connection.__dict__["_execute"], aiosqlite.Connection.__dict__["__await__"]) == before


def test_a_lead_closed_by_its_interrupted_rule_running_out_is_no_violation() -> None:
    # Seed 3 over a longer run: lead 9's third interrupted attempt closes it, as the campaign's
    # `interrupted` rule (max 3) says; the check once read any close after a fault as one.
    result = run_seed(3, 0.02, keep_trace=True)
    assert result.violation is None, replay_command(3, 0.02)
    assert any("closed_unseen" in line and "outcome=interrupted" in line for line in result.trace)


def test_a_lead_closed_by_its_refused_rule_running_out_is_no_violation() -> None:
    # Seed 12 over 0.1 days: lead 110's fifth refusal closes it, as the `refused` rule (max 5,
    # counting refusals: each gives its attempt back) says; a check that counted the lead's
    # attempts in all would miss a lead closed early, one that judged any close after a
    # refusal a violation flagged this one.
    result = run_seed(12, 0.1)
    assert result.violation is None, replay_command(12, 0.1)
    assert "refused" in result.closed_by_rule.values()
