"""How fast and how often the dialer may dial a trunk (issue 11, items 7 and 14).

- An Originate Asterisk refuses (`Response: Error`, or a Failure before any
  channel existed) is an attempt, `refused`, retried minutes later; the campaign
  goes on with its other leads, and a trunk refused again and again is backed off.
- Originates to one trunk never go faster than its `calls_per_second`, whatever
  the campaigns sharing it want (an IVR campaign with 450 lines, say).

A real SQLite store, the daemon and its runners, the simulated PBX and a virtual clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from dialer.cli.status import render
from dialer.config.loader import ConfigError, load_config
from dialer.config.models import Campaign
from dialer.core import records as r
from dialer.core.attempt import SETTLE_SECONDS
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import SimulatedPbx
from dialer.store.schema import call_attempts, leads
from dialer.store.store import Store

# Monday 2026-06-01 15:00 UTC: 11:00 in New York, inside the default calling hours.
NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC).timestamp()
TOKEN = "trunk-limits-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def ny(i: int) -> str:
    return f"+1212736{i:04d}"


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


def pbx_for(clock: Clock, refuse: Callable[[str], str | None] | None = None) -> SimulatedPbx:
    """The simulated PBX on the test's clock, logged in; it refuses the Originates `refuse` names."""
    pbx = SimulatedPbx(random.Random(0), {}, clock=clock).logged_in()
    pbx.refusal = refuse
    return pbx


def originated(pbx: SimulatedPbx) -> list[tuple[float, str, str]]:
    """(time, number, campaign) of each Originate the daemon sent, refused ones included."""
    return [(o["at"], o["channel"].split("/")[1].split("@")[0], o["variables"]["DIALER_CAMPAIGN"])
            for o in pbx.originated]


def dialed_numbers(pbx: SimulatedPbx) -> list[str]:
    return [number for _, number, _ in originated(pbx)]


def write_config(tmp: Path, trunks: list[dict[str, Any]] | None = None) -> Path:
    (tmp / "campaigns").mkdir(exist_ok=True)
    path = tmp / "dialer.yaml"
    config: dict[str, Any] = {
        "ami": [{"username": "dialer", "secret": "x"}],
        "database": {"url": "sqlite+aiosqlite:///dialer.db"},
        "campaign_dir": "campaigns",
        "agents": [{"id": f"agent{i}", "interface": f"PJSIP/agent{i}", "queues": ["sales"]} for i in range(1, 6)],
        "http": {"port": 0, "token": TOKEN},
    }
    if trunks is not None:
        config["trunks"] = trunks
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[list[Daemon]]:
    """Daemons the test opens (with `open_lab`), closed at the end."""
    daemons: list[Daemon] = []
    try:
        yield daemons
    finally:
        for daemon in daemons:
            assert daemon.store is not None
            await daemon.store.close()


async def open_lab(daemons: list[Daemon], tmp: Path, clock: Clock, ami: SimulatedPbx, **config: Any) -> Daemon:
    loaded = load_config(write_config(tmp, **config))
    daemon = Daemon(loaded, {}, clock=clock)
    daemon.store = await Store.open(loaded.database.url)
    daemon.ami = ami
    daemons.append(daemon)
    # Five agents free in the campaign's queue: a cold campaign dials one call per free agent.
    for agent in loaded.agents:
        daemon.board.apply(
            r.MemberStatus(at=0, queue="sales", interface=agent.interface, status=1, paused=False, in_call=False)
        )
    return daemon


def campaign(name: str, *, ivr: bool = False, max_lines: int = 20, **extra: Any) -> Campaign:
    return Campaign(
        name=name,
        type="survey" if ivr else "telemarketing",
        trunk="PJSIP/{number}@carrier",
        caller_id="+15550100",
        queue="sales",
        dialing={"max_lines": max_lines},
        **({"ivr": "survey"} if ivr else {}),
        **extra,
    )


async def add_campaign(daemon: Daemon, spec: Campaign, numbers: list[str]) -> None:
    assert daemon.store is not None
    runner = await daemon.apply_campaign(spec)
    await daemon.store.import_leads(runner.campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(numbers)])


async def tick_all(daemon: Daemon, clock: Clock) -> None:
    """One turn of the daemon's main loop: every runner ticks at the same moment."""
    for runner in daemon.runners.values():
        await runner.tick(clock.now)
    for runner in daemon.runners.values():
        await runner.wait_sends()


async def lead_row(daemon: Daemon, phone: str) -> dict[str, Any]:
    assert daemon.store is not None
    async with daemon.store.engine.connect() as conn:
        return dict((await conn.execute(select(leads).where(leads.c.phone == phone))).mappings().one())


async def attempt_rows(daemon: Daemon, phone: str) -> list[dict[str, Any]]:
    assert daemon.store is not None
    async with daemon.store.engine.connect() as conn:
        rows = await conn.execute(select(call_attempts).where(call_attempts.c.phone == phone))
        return [dict(row) for row in rows.mappings()]


def naive(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


# -- item 7: a refused Originate ------------------------------------------------------


async def test_a_refused_originate_is_an_attempt_retried_minutes_later_and_the_campaign_dials_on(
    tmp_path: Path, opened: list[Daemon]
) -> None:
    clock = Clock()
    bad = ny(0)
    ami = pbx_for(clock, refuse=lambda n: "Extension does not exist." if n == bad else None)
    daemon = await open_lab(opened, tmp_path, clock, ami)
    # One more lead than free agents: the sixth is dialed only once a line is free for it.
    numbers = [ny(i) for i in range(6)]
    await add_campaign(daemon, campaign("spring"), numbers)

    await tick_all(daemon, clock)
    assert dialed_numbers(ami) == numbers[:5]
    lead = await lead_row(daemon, bad)
    # Nobody was called: the refusal gives the lead its attempt back.
    assert (lead["state"], lead["attempts"], lead["lease_attempt_id"]) == ("pending", 0, None)
    # Minutes away (the default `refused` rule: 15 min), not at once.
    assert lead["next_attempt_at"] == naive(NOW) + timedelta(minutes=15)
    [attempt] = await attempt_rows(daemon, bad)
    assert (attempt["state"], attempt["outcome"]) == ("ended", "refused")
    assert attempt["hangup_cause_text"] == "Extension does not exist."

    # The next turns dial the lead that was waiting, never the refused number again.
    for _ in range(20):
        clock.now += 0.5
        await tick_all(daemon, clock)
    assert dialed_numbers(ami) == numbers[:5] + [numbers[5]]
    assert dialed_numbers(ami).count(bad) == 1
    # The pacing learnt nothing about customers from it.
    assert daemon.runners["spring"].stats.estimates() is None
    assert sum(1 for _ in daemon.runners["spring"].stats._failure_times) == 0

    # The customers said no (SIP 603: no retry); 15 minutes on, the refused lead is due
    # again and dialed once more.
    runner = daemon.runners["spring"]
    for attempt in list(runner.attempts.values()):
        await runner.on_record(r.ChannelCreated(uniqueid=attempt.id, at=clock.now, channel="PJSIP/carrier-1"))
        await runner.on_record(r.ChannelHangup(uniqueid=attempt.id, at=clock.now, cause=21, cause_text="Call Rejected"))
    clock.now = NOW + 15 * 60 + 1
    await tick_all(daemon, clock)
    assert dialed_numbers(ami).count(bad) == 2
    assert (await lead_row(daemon, bad))["attempts"] == 0  # each refusal gave its attempt back


async def test_the_campaign_retries_rule_for_refused_applies_and_its_absence_never_closes_a_lead(
    tmp_path: Path, opened: list[Daemon]
) -> None:
    clock = Clock()
    ami = pbx_for(clock, refuse=lambda n: "Originate failed")
    daemon = await open_lab(opened, tmp_path, clock, ami)
    await add_campaign(
        daemon, campaign("custom", retries={"refused": {"delay_minutes": 3, "max_attempts": 2}}), [ny(1)]
    )
    await add_campaign(daemon, campaign("none", retries={}), [ny(2)])
    await tick_all(daemon, clock)
    assert (await lead_row(daemon, ny(1)))["next_attempt_at"] == naive(NOW) + timedelta(minutes=3)
    # `retries: {}` (never retry a customer's no) still retries a call that reached nobody.
    lead = await lead_row(daemon, ny(2))
    assert (lead["state"], lead["next_attempt_at"]) == ("pending", naive(NOW) + timedelta(minutes=15))
    # The campaign's own rule caps the attempts: the second refusal closes the lead, and says why.
    clock.now = NOW + 3 * 60 + 1
    daemon.trunks.gate("carrier").accepted()  # the trunk's backoff is another test's business
    await tick_all(daemon, clock)
    lead = await lead_row(daemon, ny(1))
    # (refusals count toward their own rule only: the lead used none of its other attempts)
    assert (lead["state"], lead["final_reason"], lead["attempts"]) == ("done", "max_attempts_refused", 0)


async def test_a_trunk_refused_again_and_again_is_backed_off_longer_each_time_until_a_call_goes_through(
    tmp_path: Path, opened: list[Daemon]
) -> None:
    clock = Clock()
    refusing = {"on": True}
    ami = pbx_for(clock, refuse=lambda n: "Originate failed" if refusing["on"] else None)
    daemon = await open_lab(opened, tmp_path, clock, ami)
    # Two campaigns on the one trunk: a backoff holds them both.
    await add_campaign(daemon, campaign("one", max_lines=1), [ny(i) for i in range(0, 40)])
    await add_campaign(daemon, campaign("two", max_lines=1), [ny(i) for i in range(40, 80)])

    sent_at: list[float] = []
    for _ in range(int(200 / 0.5)):
        await tick_all(daemon, clock)
        sent_at.extend(t for t, _, _ in originated(ami)[len(sent_at):])
        clock.now += 0.5
    assert len(sent_at) < 12, f"a hot loop: {len(sent_at)} Originates in 200 s"
    from dialer.core.trunks import BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS, DEFAULT_CALLS_PER_SECOND

    # N refusals (and those already on their way), then one probe per delay, each
    # delay twice the one before (capped at the maximum).
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    long = [g for g in gaps if g >= BACKOFF_FIRST_SECONDS]
    assert gaps.index(long[0]) <= 4, gaps  # three refusals, and one more already on its way
    assert len(long) >= 4 and all(g < 1 for g in gaps[: gaps.index(long[0])]), gaps
    for before, after in zip(long, long[1:]):
        assert min(BACKOFF_MAX_SECONDS, 2 * before) <= after <= min(BACKOFF_MAX_SECONDS, 2 * before) + 0.5, long
    gate = daemon.trunks.gate("carrier")
    view = gate.view(clock.now)
    assert view.backed_off and view.refusals == len(sent_at) and view.last_error == "Originate failed"

    # What ops see: /status, `dialer status` (exit 1) and /metrics.
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as http:
        status = (await http.get("/status", headers=AUTH)).json()
        metrics = (await http.get("/metrics")).text
    [trunk] = status["trunks"]
    assert trunk["name"] == "carrier" and trunk["backed_off"] is True
    assert trunk["calls_per_second"] == DEFAULT_CALLS_PER_SECOND
    assert trunk["refusals"] == len(sent_at) and trunk["consecutive_refusals"] == len(sent_at)
    assert "trunk carrier" in render(status) and "BACKED OFF" in render(status)
    samples = {
        (s.name, s.labels.get("trunk")): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    assert samples[("dialer_trunk_backed_off", "carrier")] == 1
    assert samples[("dialer_trunk_refusals_total", "carrier")] == len(sent_at)

    # The carrier is back: the next probe makes a channel, and the trunk is healthy at once.
    refusing["on"] = False
    clock.now += BACKOFF_MAX_SECONDS
    await tick_all(daemon, clock)
    [(_, number, name)] = originated(ami)[len(sent_at):]
    runner = daemon.runners[name]
    [attempt_id] = [a.id for a in runner.attempts.values() if a.phone == number]
    await runner.on_record(r.ChannelCreated(uniqueid=attempt_id, at=clock.now, channel="PJSIP/carrier-00000001"))
    assert not gate.view(clock.now).backed_off
    clock.now += 0.5
    await tick_all(daemon, clock)
    assert len(ami.originated) == len(sent_at) + 2  # the other campaign's line was free


async def test_a_failure_before_any_channel_is_a_refusal_too(tmp_path: Path, opened: list[Daemon]) -> None:
    # A trunk naming an endpoint Asterisk does not have: `Originate successfully queued`,
    # then OriginateResponse Failure, Reason 0, and no channel ever (seen on Asterisk 22).
    clock = Clock()
    ami = pbx_for(clock)
    daemon = await open_lab(opened, tmp_path, clock, ami)
    await add_campaign(daemon, campaign("ghost"), [ny(i) for i in range(5)])
    await tick_all(daemon, clock)
    runner = daemon.runners["ghost"]
    for attempt in list(runner.attempts.values()):
        await runner.on_record(r.OriginateResult(attempt_id=attempt.id, at=clock.now, success=False, reason=0))
    clock.now += SETTLE_SECONDS
    await tick_all(daemon, clock)
    lead = await lead_row(daemon, ny(0))
    assert [a["outcome"] for a in await attempt_rows(daemon, ny(0))] == ["refused"]
    assert (lead["state"], lead["attempts"]) == ("pending", 0)  # the refusal gave its attempt back
    assert lead["next_attempt_at"] == naive(clock.now) + timedelta(minutes=15)
    assert len(ami.originated) == 5
    assert daemon.trunks.gate("carrier").view(clock.now).backed_off


async def test_a_pbx_shutting_down_takes_no_attempt_from_the_leads_and_is_not_looped_on(
    tmp_path: Path, opened: list[Daemon]
) -> None:
    clock = Clock()
    ami = pbx_for(clock, refuse=lambda n: "Asterisk is shutting down")
    daemon = await open_lab(opened, tmp_path, clock, ami)
    await add_campaign(daemon, campaign("spring"), [ny(i) for i in range(10)])
    for _ in range(40):
        await tick_all(daemon, clock)
        clock.now += 0.5
    # The first tick's five, then one probe per backoff delay: not one a tick for 20 s.
    assert len(ami.originated) <= 5 + 3, len(ami.originated)
    # Nobody was called and the PBX, not the customer, said no: due again, nothing used up.
    for i in range(10):
        lead = await lead_row(daemon, ny(i))
        assert (lead["state"], lead["attempts"], lead["next_attempt_at"]) == ("pending", 0, None)
    assert daemon.trunks.gate("carrier").view(clock.now).last_error == "Asterisk is shutting down"


async def test_a_call_the_gateway_would_not_write_is_refused_without_blaming_the_trunk(
    tmp_path: Path, opened: list[Daemon]
) -> None:
    from dialer.ami.errors import AmiUnsafeValue

    clock = Clock()
    ami = pbx_for(clock)

    async def unsafe(**kwargs: Any) -> None:
        ami.originated.append({"at": clock(), **kwargs})
        raise AmiUnsafeValue("Originate", ["Channel: contains '&'"])

    ami.originate = unsafe  # type: ignore[method-assign]
    daemon = await open_lab(opened, tmp_path, clock, ami)
    await add_campaign(daemon, campaign("spring"), [ny(i) for i in range(5)])
    await tick_all(daemon, clock)
    assert len(ami.originated) == 5
    assert [a["outcome"] for a in await attempt_rows(daemon, ny(0))] == ["refused"]
    assert not daemon.trunks.gate("carrier").view(clock.now).backed_off


# -- item 14: calls per second ----------------------------------------------------------


def assert_never_faster(times: list[float], rate: float, burst: float) -> None:
    """In every window [times[i], times[j]]: no more than rate * length + burst Originates."""
    times = sorted(times)
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= rate * (times[j] - times[i]) + burst + 1e-6, (i, j, times[i], times[j])


async def test_two_450_line_ivr_campaigns_on_one_trunk_never_dial_faster_than_its_cps(
    tmp_path: Path, opened: list[Daemon]
) -> None:
    clock = Clock()
    ami = pbx_for(clock)
    daemon = await open_lab(opened, tmp_path, clock, ami, trunks=[{"name": "carrier", "calls_per_second": 5}])
    await add_campaign(daemon, campaign("survey-a", ivr=True, max_lines=450), [ny(i) for i in range(0, 450)])
    await add_campaign(daemon, campaign("survey-b", ivr=True, max_lines=450), [ny(i) for i in range(450, 900)])
    tick = daemon.config.tick_interval
    seconds = 30.0
    for _ in range(int(seconds / tick)):
        await tick_all(daemon, clock)
        # No lead is leased and left waiting: every lease became an Originate in its tick.
        leased = sum(len(r.attempts) for r in daemon.runners.values())
        assert leased == len(ami.originated)
        clock.now += tick
    times = [t for t, _, _ in originated(ami)]
    from dialer.core.trunks import burst_for

    assert_never_faster(times, 5, burst_for(5, tick))
    # ... and the trunk's rate is used, shared by both campaigns.
    assert len(times) >= 5 * seconds * 0.95
    per_campaign = {name: sum(1 for _, _, c in originated(ami) if c == name) for name in ("survey-a", "survey-b")}
    assert min(per_campaign.values()) >= len(times) * 0.4, per_campaign


async def test_a_450_line_ivr_campaign_leases_no_more_than_the_default_cps_lets_go_in_a_tick(
    tmp_path: Path, opened: list[Daemon]
) -> None:
    clock = Clock()
    ami = pbx_for(clock)
    daemon = await open_lab(opened, tmp_path, clock, ami)
    await add_campaign(daemon, campaign("ivr", ivr=True, max_lines=450), [ny(i) for i in range(450)])
    await tick_all(daemon, clock)
    # A trunk not listed gets 10 calls/s: one tick's worth (0.5 s) at once, and not one
    # lead more is leased (the rest stay pending, with no attempt row).
    assert len(ami.originated) == 5
    assert daemon.store is not None
    async with daemon.store.engine.connect() as conn:
        states = [row.state for row in await conn.execute(select(leads.c.state))]
        attempts = (await conn.execute(select(call_attempts.c.id))).all()
    assert states.count("leased") == 5 and states.count("pending") == 445 and len(attempts) == 5
    for _ in range(10):
        clock.now += daemon.config.tick_interval
        await tick_all(daemon, clock)
    assert len(ami.originated) == 5 + 5 * 10


async def test_the_trunks_known_are_those_in_use_and_those_configured(tmp_path: Path, opened: list[Daemon]) -> None:
    clock = Clock()
    daemon = await open_lab(
        opened, tmp_path, clock, pbx_for(clock), trunks=[{"name": "other", "calls_per_second": 1.5}]
    )
    await add_campaign(daemon, campaign("spring"), [ny(1)])
    await tick_all(daemon, clock)
    assert {t.name: t.calls_per_second for t in daemon.trunks.views(clock.now)} == {"carrier": 10.0, "other": 1.5}


async def test_trunks_config_is_checked_with_file_and_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        trunks=[
            {"name": "carrier", "calls_per_second": 5},
            {"name": "carrier", "calls_per_second": 3},
        ],
    )
    with pytest.raises(ConfigError) as dup:
        load_config(path)
    assert "trunk 'carrier' appears twice" in str(dup.value) and "dialer.yaml:" in str(dup.value)
    for bad in ({"name": "carrier", "calls_per_second": 0}, {"name": "carrier", "calls_per_second": 1001},
                {"name": "car rier\r\nAction: Originate", "calls_per_second": 5}, {"name": "", "calls_per_second": 5},
                {"name": "carrier"}):
        path = write_config(tmp_path, trunks=[bad])
        with pytest.raises(ConfigError):
            load_config(path)
    assert load_config(write_config(tmp_path, trunks=[{"name": "carrier", "calls_per_second": 0.5}])).trunks[
        0
    ].calls_per_second == 0.5


async def test_dialer_status_says_a_backed_off_trunk_is_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ops_fixtures import close_daemon, open_daemon
    from ops_fixtures import write_config as write_ops_config

    from dialer.cli.main import main
    from dialer.http.service import start_http

    write_ops_config(tmp_path)
    daemon = await open_daemon(tmp_path)
    try:
        daemon.http = await start_http(daemon)
        data = yaml.safe_load((tmp_path / "dialer.yaml").read_text())
        data["http"]["port"] = daemon.http.port
        (tmp_path / "dialer.yaml").write_text(yaml.safe_dump(data))
        config = str(tmp_path / "dialer.yaml")

        def status() -> int:
            return main(["status", "--config", config])

        gate = daemon.trunks.gate("carrier")
        assert await asyncio.to_thread(status) == 0
        assert "trunk carrier" in capsys.readouterr().out
        for _ in range(3):
            gate.refused(daemon.clock(), "Originate failed")
        assert await asyncio.to_thread(status) == 1
        assert "BACKED OFF after 3 refusal(s) in a row" in capsys.readouterr().out
        gate.accepted()
        assert await asyncio.to_thread(status) == 0
    finally:
        await close_daemon(daemon)


async def test_a_config_reload_applies_new_trunk_rates(tmp_path: Path) -> None:
    from ops_fixtures import close_daemon, open_daemon
    from ops_fixtures import write_config as write_ops_config

    write_ops_config(tmp_path)
    daemon = await open_daemon(tmp_path)
    try:
        assert daemon.trunks.gate("carrier").bucket.rate == 10.0
        data = yaml.safe_load((tmp_path / "dialer.yaml").read_text())
        data["trunks"] = [{"name": "carrier", "calls_per_second": 3}]
        (tmp_path / "dialer.yaml").write_text(yaml.safe_dump(data))
        daemon.handle_reload()
        await daemon._reload()
        assert daemon.trunks.gate("carrier").bucket.rate == 3.0
    finally:
        await close_daemon(daemon)
