"""A campaign's progress on /status is read again after a write of this daemon, or after
_PROGRESS_REREAD seconds for the writes of other processes (a lead import from the command
line, another daemon). Those seconds are the daemon's wall clock: set back (an NTP step,
an operator fixing the time), the progress stays what it was until the clock catches up."""

from __future__ import annotations

from pathlib import Path

from dialer.config.loader import load_config
from dialer.daemon.server import _PROGRESS_REREAD, Daemon
from dialer.leads.csv_import import LeadRow
from dialer.store.store import Store

T0 = 1_796_000_000.0


async def test_progress_is_read_again_after_the_reread_time_though_the_wall_clock_was_set_back(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/progress.db"
    config = tmp_path / "dialer.yaml"
    config.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: '{url}'}}\n"
        "agents: [{id: agent1, interface: PJSIP/agent1, queues: [sales]}]\n"
    )
    wall, mono = [T0], [1000.0]
    daemon = Daemon(load_config(config), {}, clock=lambda: wall[0], monotonic_clock=lambda: mono[0])
    daemon.store = await Store.open(url)
    cli = await Store.open(url)  # another process's store
    try:
        campaign_id = await daemon.store.sync_campaign("imported", "telemarketing")
        before = await daemon._progress(campaign_id)
        await cli.import_leads(campaign_id, [LeadRow(line=n + 2, phone=f"+1212555{n:04d}") for n in range(5)])
        # The wall clock is set back an hour; then a minute passes.
        wall[0] -= 3600 - 60
        mono[0] += 60
        assert 60 > _PROGRESS_REREAD
        after = await daemon._progress(campaign_id)
        assert after != before, "progress still as read before the import, a minute later"
    finally:
        await cli.close()
        await daemon.store.close()
