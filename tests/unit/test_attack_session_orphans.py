"""A consumer cut mid-burst leaves final rows in its batch, marked orphaned, for the
runner's next tick to write. A consumer that started since (the supervisor's restart,
or a second AMI server's own consumer) hands the runner its batch with the next event
of the campaign: the orphaned one must still be written, or its leads stay leased
until the daemon restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dialer.core.attempt import SETTLE_SECONDS
from dialer.store.store import Store
from tests.unit.test_pbx_faults import (
    ID_FIELDS,
    NOW,
    PHONES,
    RINGING,
    consume,
    daemon_for,
    lead_rows,
    make_runner,
    simulated_pbx,
    story_for,
    store,  # noqa: F401  (the fixture)
)


async def test_an_orphaned_batch_is_written_though_a_new_consumer_took_over(
    store: Store, tmp_path: Path, ami_story  # noqa: F811
) -> None:
    fourth = "+12125550104"
    runner = await make_runner(store, [*PHONES.values(), fourth])
    fourth_id = next(a.id for a in runner.attempts.values() if a.phone == fourth)
    ami = simulated_pbx()
    daemon = daemon_for(tmp_path, store, runner, ami)
    raw = ami_story("restart.txt")
    # The first consumer sees the restart's hangups and is cut before its burst is written.
    await consume(daemon, ami, story_for(runner, raw), cut_mid_burst=True)
    assert runner._writing, "the cut batch holds final rows"

    # Its successor sees the fourth call ringing (the first events of the ringing call,
    # before Asterisk cut it), then the runner ticks.
    first_cut = next(i for i, (event, _) in enumerate(raw) if event["Event"] == "SoftHangupRequest")
    ringing = [
        (
            {k: fourth_id if k in ID_FIELDS and v == RINGING else v for k, v in event.items()},
            at - raw[0][1] + NOW.timestamp(),
        )
        for event, at in raw[:first_cut]
        if RINGING in event.values()
    ]
    assert ringing
    successor = asyncio.create_task(daemon._consume_events())
    try:
        for item in ringing:
            ami.events.put_nowait(item)
        while not ami.events.empty():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await runner.tick(NOW.timestamp() + 2 + SETTLE_SECONDS)
        await runner.wait_sends()
    finally:
        successor.cancel()
        await asyncio.gather(successor, return_exceptions=True)
    # Ticks later, the successor gone too: still nothing writes the first batch.
    await runner.tick(NOW.timestamp() + 120)
    await runner.wait_sends()

    rows = await lead_rows(store)
    leased = sorted(phone for phone in PHONES.values() if rows[phone]["lease_attempt_id"] is not None)
    assert leased == [], f"cut calls whose leads are still leased: {leased}; stranded: {sorted(runner._writing)}"
