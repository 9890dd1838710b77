"""One intake for every lead: the control API refuses what `dialer leads import` refuses,
reads national numbers in the campaign's region, cleans text the same way, and the
dial-time screen matches do-not-call entries whatever form the stored number has.

The API runs over a daemon with a real store and a fake AMI (ops_fixtures); the
dial-time screen is the campaign runner's own tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
import yaml
from sqlalchemy import func, select

from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.daemon.server import Daemon
from dialer.http.app import build_app
from dialer.leads.csv_import import LeadRow, parse_leads_csv
from dialer.leads.phone_numbers import NumberPolicy
from dialer.store import dnc
from dialer.store.schema import GLOBAL_DNC, customers, leads
from dialer.store.store import Store
from ops_fixtures import TOKEN, FakeAmi, close_daemon, open_daemon, write_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Monday 2026-06-01 15:00 UTC: 11:00 in Washington, inside the default calling window.
NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
LISTED = "+12025550188"
PREMIUM = ("+41900123456", "+8860204123456")


def us_campaign(name: str, **extra: Any) -> str:
    return yaml.safe_dump(
        {
            "name": name,
            "type": "telemarketing",
            "trunk": "PJSIP/{number}@carrier",
            "caller_id": "+15550100",
            "queue": "sales",
            "dialing": {"max_lines": 10},
            "numbers": {"default_region": "US"},
            **extra,
        }
    )


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write_config(tmp_path)
    (tmp_path / "campaigns" / "usa.yaml").write_text(us_campaign("usa"))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as http:
        yield http


def originated(ami: Any) -> list[str]:
    """The numbers the fake AMI was asked to dial."""
    return [str(action.get("channel", action.get("Channel"))) for action in ami.sent if action["Action"] == "Originate"]


async def tick(daemon: Daemon, campaign: str) -> CampaignRunner:
    runner = daemon.runners[campaign]
    for agent in ("PJSIP/agent1", "PJSIP/agent2"):
        daemon.board.apply(r.MemberStatus(at=0, queue="sales", interface=agent, status=1, paused=False, in_call=False))
    await runner.tick(NOW.timestamp())
    await runner.wait_sends()
    return runner


async def test_api_leads_go_through_the_number_rules_and_the_dnc_list(client: httpx.AsyncClient, daemon: Daemon) -> None:
    assert daemon.store is not None
    await dnc.add_numbers(daemon.store, [LISTED], scope=GLOBAL_DNC, source="test", now=NOW)
    for number in PREMIUM:
        refused = await client.post("/campaigns/usa/leads", headers=AUTH, json={"phone": number})
        assert refused.status_code == 422, (number, refused.text)
        assert refused.json()["message"].startswith("phone: ") and "premium-rate" in refused.json()["message"]
        assert refused.json()["errors"][0]["field"] == "body.phone"
    # A national number is read in the campaign's region, as `dialer leads import` reads it.
    national = await client.post("/campaigns/usa/leads", headers=AUTH, json={"phone": "2025550188"})
    assert national.status_code == 201, national.text
    assert national.json()["lead"]["phone"] == LISTED
    assert national.json()["lead"]["timezone"] == "America/New_York"
    fine = await client.post("/campaigns/usa/leads", headers=AUTH, json={"phone": "2025550123"})
    assert fine.status_code == 201
    emergency = await client.post("/campaigns/usa/leads", headers=AUTH, json={"phone": "911"})
    assert emergency.status_code == 422
    runner = await tick(daemon, "usa")
    dialed = originated(daemon.ami)
    assert any("+12025550123" in channel for channel in dialed), dialed
    assert not any(number in channel for channel in dialed for number in (LISTED, "2025550188", *PREMIUM))
    async with daemon.store.engine.connect() as conn:
        stored = dict((await conn.execute(select(leads.c.phone, leads.c.final_reason))).all())
    assert stored == {LISTED: "dnc", "+12025550123": None}
    assert runner.campaign.name == "usa"


async def test_text_fields_are_cleaned_the_same_way_by_the_api_and_the_csv_import(client: httpx.AsyncClient) -> None:
    name = " Ann\x00 Lee\x07\x1b "
    added = await client.post(
        "/campaigns/usa/leads",
        headers=AUTH,
        json={"phone": "+12025550101", "name": name, "customer_id": "C\x001", "data": {"note\x00": "a\x00b"}},
    )
    assert added.status_code == 201, added.text
    lead = added.json()["lead"]
    assert (lead["customer_name"], lead["customer_id"], lead["data"]) == ("Ann Lee", "C1", {"note": "ab"})
    [row] = parse_leads_csv(f'phone,name,customer_id,note\x00\n+12025550101,"{name}",C\x001,a\x00b\n').rows
    assert (row.name, row.customer_id, row.data) == ("Ann Lee", "C1", {"note": "ab"})


async def test_twenty_concurrent_posts_of_one_new_phone_make_one_lead(client: httpx.AsyncClient, daemon: Daemon) -> None:
    body = {"phone": "+12025550177", "name": "Same"}
    answers = await asyncio.gather(*(client.post("/campaigns/usa/leads", headers=AUTH, json=body) for _ in range(20)))
    assert sorted({a.status_code for a in answers}) == [201], [a.text for a in answers if a.status_code != 201]
    assert sum(a.json()["added"] for a in answers) == 1
    assert len({a.json()["lead"]["id"] for a in answers}) == 1
    assert daemon.store is not None
    async with daemon.store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(leads))).scalar() == 1
        assert (await conn.execute(select(func.count()).select_from(customers))).scalar() == 1


# -- dial time: rows stored before the intake existed, or by another path ---------------


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.parametrize("campaign_region, config_region", [("US", None), (None, "US")])
async def test_the_dial_time_screen_reads_stored_numbers_as_the_intake_does(
    store: Store, campaign_region: str | None, config_region: str | None
) -> None:
    numbers = {"default_region": campaign_region} if campaign_region else {}
    campaign = Campaign(
        name="legacy", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
        queue="sales", dialing={"max_lines": 10}, numbers=numbers,
    )
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    stored = ["2025550188", *PREMIUM, "2025550123"]
    await store.import_leads(campaign_id, [LeadRow(line=i, phone=p) for i, p in enumerate(stored, 2)])
    await dnc.add_numbers(store, [LISTED], scope=GLOBAL_DNC, source="test", now=NOW)
    board = AgentBoard({f"agent{i}": f"PJSIP/agent{i}" for i in range(1, 6)})
    for i in range(1, 6):
        board.apply(r.MemberStatus(at=0, queue="sales", interface=f"PJSIP/agent{i}", status=1, paused=False, in_call=False))
    ami = FakeAmi()
    runner = CampaignRunner(campaign, campaign_id, store, ami, board, {}, clock=lambda: NOW.timestamp())  # type: ignore[arg-type]
    runner.tiers.set_ladder(list(DEFAULT_TIERS))
    runner.number_region = config_region
    await runner.tick(NOW.timestamp())
    await runner.wait_sends()
    await runner.tiers.close()
    dialed = originated(ami)
    assert len(dialed) == 1 and "2025550123" in dialed[0], dialed
    async with store.engine.connect() as conn:
        reasons = dict((await conn.execute(select(leads.c.phone, leads.c.final_reason))).all())
    assert reasons == {
        "2025550188": "dnc",
        "+41900123456": "denied_number",
        "+8860204123456": "denied_number",
        "2025550123": None,
    }


def test_a_us_dnc_entry_and_a_national_lead_number_meet_in_one_form() -> None:
    from dialer.leads.intake import dial_forms

    us = NumberPolicy(e164=True, default_region="US")
    assert LISTED in dial_forms("2025550188", us).forms
    assert "2025550188" in dial_forms(LISTED, us).forms
    assert dial_forms("+41900123456", us).never
    assert not dial_forms("1030200007", NumberPolicy(e164=False)).never


# -- the intake's one-pass number reading agrees with libphonenumber's own checks ---------

KNOWN = ["+12025550188", "+12125550123", "+442079460018", "+4930123456", "+33142685300", "+61291234567",
         "+8613912345678", "+80012345678", "+18005550100", "+41900123456", "+447911123456", "+911"]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.sampled_from(KNOWN), st.from_regex(r"\+[1-9][0-9]{5,14}", fullmatch=True)))
def test_read_number_agrees_with_libphonenumbers_validity_type_and_zones(raw: str) -> None:
    import phonenumbers
    from phonenumbers import timezone as zones_of

    from dialer.leads.phone_numbers import NeverDial, NumberError, read_number

    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        number = None
    try:
        e164, zones = read_number(raw, None)
    except NeverDial:
        assert number is not None
        return
    except NumberError:
        assert number is None or not phonenumbers.is_valid_number(number)
        return
    assert number is not None and phonenumbers.is_valid_number(number)
    assert e164 == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert zones == tuple(z for z in zones_of.time_zones_for_number(number) if z != "Etc/Unknown")
