"""`dialer tune` (issue 16): on a campaign whose calls are recorded in a test
database, the settings it writes into the campaign file make a simulated day
beat the campaign's current settings; the file keeps its comments and layout;
clear errors for an unknown campaign, too little history and a file it cannot edit."""

from __future__ import annotations

import asyncio
import difflib
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dialer.cli.main import main
from dialer.config.loader import load_campaign_dir
from dialer.config.models import Campaign
from dialer.leads.intake import LeadRow
from dialer.simulation import simulate
from dialer.store.store import Store
from dialer.tuning.campaign_edit import CampaignFileError, apply_changes, edited_text
from dialer.tuning.history import read_history
from dialer.tuning.search import Settings, scenario_for

CAMPAIGN = """\
# Renewals: the spring list.
name: renewals
type: telemarketing
trunk: PJSIP/{number}@carrier
caller_id: "+15550100"
queue: sales   # the general team

dialing:
  # Careful at first: one call per free agent.
  mode: progressive   # until we know the list
  max_lines: 10
  ring_timeout: 25

retries: {}  # none
"""

AGENTS = 5


def write_lab(tmp: Path, campaign: str = CAMPAIGN) -> Path:
    (tmp / "campaigns").mkdir(exist_ok=True)
    (tmp / "campaigns" / "renewals.yaml").write_text(campaign)
    config = tmp / "dialer.yaml"
    config.write_text(yaml.safe_dump({
        "ami": [{"host": "127.0.0.1", "port": 5038, "username": "dialer", "secret": "not-used-here"}],
        "database": {"url": f"sqlite+aiosqlite:///{tmp}/dialer.db"},
        "campaign_dir": str(tmp / "campaigns"),
        "agents": [{"id": f"a{i}", "interface": f"PJSIP/a{i}", "queues": ["sales"]} for i in range(AGENTS)],
    }))
    return config


async def record_history(tmp: Path, calls: int, *, seed: int = 5) -> None:
    """`calls` attempts over the last two days through the store's own write path:
    22 % answered live (after 4-12 s), 10 % busy, the rest ring out; talks ~70 s, wrap-ups ~10 s."""
    rng = random.Random(seed)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp}/dialer.db")
    try:
        campaign_id = await store.sync_campaign("renewals", "telemarketing")
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=f"+1555{i:07d}") for i in range(calls)])
        start = datetime.now(UTC) - timedelta(days=2)
        for n in range(calls):
            at = start + timedelta(seconds=n * 200)
            (lease,) = await store.lease_due_leads(campaign_id, 1, at)
            roll = rng.random()
            if roll < 0.22:
                answered = at + timedelta(seconds=rng.uniform(4, 12))
                talk = rng.lognormvariate(math.log(60), 0.5)
                ended = answered + timedelta(seconds=talk)
                await store.finish_attempt(
                    lease.attempt_id, outcome="answered", lead_state="done", answered_at=answered,
                    bridged_at=answered, ended_at=ended, agent_id=f"a{n % AGENTS}",
                    disposition_at=ended + timedelta(seconds=rng.uniform(5, 15)),
                )
            elif roll < 0.32:
                await store.finish_attempt(lease.attempt_id, outcome="busy", lead_state="done",
                                           ended_at=at + timedelta(seconds=3))
            else:
                await store.finish_attempt(lease.attempt_id, outcome="no_answer", lead_state="done",
                                           ended_at=at + timedelta(seconds=25))
    finally:
        await store.close()


def test_tune_writes_settings_whose_simulated_day_beats_the_current_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_lab(tmp_path)
    asyncio.run(record_history(tmp_path, 600))
    code = main(["tune", "renewals", "--config", str(config), "--apply", "--json", "--hours", "2", "--seeds", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "tune: 1/" in err and "settings simulated" in err  # the progress line
    result = json.loads(out)
    assert result["current"]["mode"] == "progressive"
    assert result["proposed"]["occupancy"] > result["current"]["occupancy"]
    assert result["proposed"]["worst_abandon_rate"] <= 0.025
    assert result["changes"] and result["written"]
    assert any("answered 22%" in line or "answered 2" in line for line in result["why"]), result["why"]

    # Written in place: only the changed values moved, every comment is still there.
    text = (tmp_path / "campaigns" / "renewals.yaml").read_text()
    for comment in ("# Renewals: the spring list.", "# the general team", "# Careful at first",
                    "# until we know the list", "# none"):
        assert comment in text
    diff = list(difflib.ndiff(CAMPAIGN.splitlines(), text.splitlines()))
    removed = [line[2:] for line in diff if line.startswith("- ")]
    added = [line[2:] for line in diff if line.startswith("+ ")]
    # Each changed field is one line: its old line out, its new line in (or just in).
    assert {line.split(":")[0].strip() for line in removed} <= set(result["changes"]), diff
    assert sorted(line.split(":")[0].strip() for line in added) == sorted(result["changes"]), diff
    campaigns, issues = load_campaign_dir(tmp_path / "campaigns")
    assert not issues
    dialing = campaigns["renewals"].dialing
    for field, value in result["changes"].items():
        got = getattr(dialing, field)
        assert (got.value if hasattr(got, "value") else got) == value

    # A fresh simulated day (another seed, longer) of the recorded customers: the
    # written settings beat the old ones, within the legal limit.
    rows = asyncio.run(_rows(tmp_path))
    history = read_history(rows, now=datetime.now(UTC).replace(tzinfo=None), days=14)
    old = Campaign.model_validate(yaml.safe_load(CAMPAIGN)).dialing
    days = {
        name: simulate(scenario_for(history.day, agents=AGENTS, dialing=d, settings=Settings.of(d), hours=4, seed=11))
        for name, d in (("old", old), ("new", dialing))
    }
    assert days["new"].occupancy > days["old"].occupancy + 0.05, days
    assert days["new"].abandon_rate <= 0.03, days


async def _rows(tmp: Path) -> list[dict[str, object]]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp}/dialer.db")
    try:
        return await store.attempts(await store.campaign_id("renewals"))
    finally:
        await store.close()


def test_unknown_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_lab(tmp_path)
    assert main(["tune", "nosuch", "--config", str(config)]) == 2
    assert "unknown campaign 'nosuch'" in capsys.readouterr().err


def test_too_little_history_says_how_much_is_needed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_lab(tmp_path)
    asyncio.run(record_history(tmp_path, 40))
    assert main(["tune", "renewals", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "needs at least 200 finished calls (has 40)" in err, err
    assert "conversations with an agent" in err


def test_a_value_the_tool_cannot_rewrite_is_refused_and_the_file_left_alone(tmp_path: Path) -> None:
    anchored = CAMPAIGN.replace("mode: progressive", "mode: &m progressive")
    path = tmp_path / "renewals.yaml"
    path.write_text(anchored)
    with pytest.raises(CampaignFileError, match=r"renewals.yaml:10: dialing.mode: not a plain value"):
        apply_changes(path, {"mode": "predictive"})
    assert path.read_text() == anchored
    link = tmp_path / "link.yaml"
    link.symlink_to(path)
    with pytest.raises(CampaignFileError, match="symbolic link"):
        apply_changes(link, {"max_lines": 12})
    # A value the campaign model refuses is never written.
    with pytest.raises(CampaignFileError, match="would not be a valid campaign"):
        apply_changes(_plain(tmp_path), {"max_lines": 5000})


def _plain(tmp: Path) -> Path:
    path = tmp / "plain.yaml"
    path.write_text(CAMPAIGN)
    return path


def test_fields_missing_from_the_file_are_added_beside_their_siblings() -> None:
    text = edited_text(CAMPAIGN, Path("c.yaml"), {"abandon_target": 0.02, "mode": "predictive"})
    assert "  mode: predictive   # until we know the list\n" in text
    assert "  ring_timeout: 25\n  abandon_target: 0.02\n\nretries: {}  # none\n" in text
    flow = edited_text("name: x\ndialing: {mode: ratio}  # flow\n", Path("c.yaml"), {"ratio": 2.5})
    assert flow == "name: x\ndialing: {mode: ratio, ratio: 2.5}  # flow\n"
    added = edited_text("name: x\nqueue: sales", Path("c.yaml"), {"mode": "ratio"})
    assert added == "name: x\nqueue: sales\ndialing:\n  mode: ratio\n"


def test_a_broken_or_missing_campaign_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_lab(tmp_path, CAMPAIGN.replace("max_lines: 10", "max_lines: lots"))
    asyncio.run(record_history(tmp_path, 10))
    assert main(["tune", "renewals", "--config", str(config)]) == 2
    assert "renewals.yaml:11: dialing.max_lines:" in capsys.readouterr().err
    (tmp_path / "campaigns" / "renewals.yaml").unlink()
    assert main(["tune", "renewals", "--config", str(config)]) == 2
    assert "no campaign file for it in" in capsys.readouterr().err
