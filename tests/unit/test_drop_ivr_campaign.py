"""A campaign dropped at run time that needs what the daemon prepares only at its start.

Found attacking issue 11: the daemon loads IVR flows and renders text messages
(abandon_text, the AMD machine message) once, when it starts, for the enabled
campaigns it finds then. A campaign that arrives later (dropped in, renamed, or
switched to `enabled: true`) naming a flow was still started: it dialed up to
max_lines customers at once (an IVR campaign is paced by lines alone), and each
answered call found no flow over FastAGI and was hung up on. Such a file is now
a file problem, kept out until the daemon restarts; the last good version runs on.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from ops_fixtures import campaign_yaml, close_daemon, open_daemon, write_config

from dialer.core import records as r
from dialer.daemon.server import Daemon
from dialer.ivr.service import IvrService
from dialer.leads.csv_import import LeadRow

FLOWS = Path(__file__).resolve().parents[2] / "ivr"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    shutil.copytree(FLOWS, tmp_path / "ivr")
    config["ivr"] = {"flow_dir": "ivr", "sounds_dir": "sounds"}
    path.write_text(yaml.safe_dump(config))
    (tmp_path / "campaigns" / "plain.yaml").write_text(campaign_yaml("plain"))
    handle = await open_daemon(tmp_path)
    # As `dialer run` starts: no campaign needed a flow or a rendered text then.
    handle.ivr = await IvrService.prepare(handle.config, [x.campaign for x in handle.runners.values()])
    try:
        yield handle
    finally:
        await close_daemon(handle)


def ivr_campaign(name: str, **extra: object) -> str:
    data = yaml.safe_load(campaign_yaml(name, max_lines=20))
    data.update(extra)
    return yaml.safe_dump(data)


async def originates_of(daemon: Daemon, name: str) -> int:
    """Give `name` a due lead, tick it if it runs, and count its Originates."""
    runner = daemon.runners.get(name)
    if runner is None or runner.paused:
        return 0
    assert daemon.store is not None
    await daemon.store.import_leads(runner.campaign_id, [LeadRow(line=2, phone="+12025550143")])
    runner.board_synced = True
    daemon.board.apply(r.MemberStatus(at=0, queue="sales", interface="PJSIP/agent1", status=1, paused=False,
                                      in_call=False))
    await runner.tick(datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp())
    await runner.wait_sends()
    return sum(1 for a in daemon.ami.sent if a["Action"] == "Originate")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"ivr": "callback-check"}, "ivr"),
        ({"abandon_text": "This was Acme. Call us back on 0800 123 456."}, "abandon_text"),
        ({"amd": {"enabled": True, "on_machine": "leave_message", "message": "Acme here, please call back."}},
         "amd.message"),
    ],
    ids=["flow", "abandon-text", "machine-message"],
)
async def test_a_dropped_campaign_needing_a_start_time_preparation_does_not_dial(
    daemon: Daemon, extra: dict[str, object], field: str
) -> None:
    assert daemon.watcher is not None
    path = daemon.config.campaign_dir / "late.yaml"
    path.write_text(ivr_campaign("late", **extra))
    await daemon.watcher.reload()
    assert await originates_of(daemon, "late") == 0
    (line,) = daemon.watcher.issue_lines()
    assert line.startswith(f"{path}: {field}: ") and "restart the daemon" in line


async def test_an_edit_needing_a_new_flow_keeps_the_last_good_version(daemon: Daemon) -> None:
    assert daemon.watcher is not None
    path = daemon.config.campaign_dir / "plain.yaml"
    path.write_text(ivr_campaign("plain", ivr="callback-check"))
    await daemon.watcher.reload()
    assert daemon.runners["plain"].campaign.ivr is None  # still the queue campaign it was
    assert len(daemon.watcher.issue_lines()) == 1
    # Enabled later, a disabled file's campaign is checked the same way.
    (daemon.config.campaign_dir / "off.yaml").write_text(ivr_campaign("off", ivr="satisfaction", enabled=False))
    await daemon.watcher.reload()
    (daemon.config.campaign_dir / "off.yaml").write_text(ivr_campaign("off", ivr="satisfaction"))
    await daemon.watcher.reload()
    assert await originates_of(daemon, "off") == 0
