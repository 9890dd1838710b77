"""Customers calling back (issue 15): recognition and the routing decision (pure), the
campaign's `inbound:` section, and the FastAGI routes against a real store with a
fake AGI line: hostile caller IDs, a slow database, the callback keypress."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ops_fixtures import TOKEN, close_daemon, open_daemon, write_config
from pydantic import ValidationError

from dialer.config.loader import ConfigError, load_campaign
from dialer.config.models import Campaign
from dialer.core import records as r
from dialer.core.inbound import UNKNOWN, inbound_route
from dialer.core.reconcile import LiveChannel
from dialer.core.routing import QueueAgents, TierRoute
from dialer.daemon.server import Daemon
from dialer.dispositions import apply_disposition
from dialer.http.app import build_app
from dialer.inbound import service as inbound_service
from dialer.inbound.recognition import DidIndex, caller_forms, caller_number, did_key
from dialer.inbound.service import InboundService
from dialer.leads.phone_numbers import NumberPolicy
from dialer.store import inbound_calls

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_CALLER_IDS = [
    None,
    "",
    "anonymous",
    "unknown",  # what Asterisk puts in agi_callerid when there is none
    "+12025550176\r\nAction: Originate",
    '"Bob" <+12025550176>',
    "12025550176'; DROP TABLE leads;--",
    "9" * 500,
    "+",
]


# -- recognition (pure) ------------------------------------------------------------


def test_a_caller_id_is_a_number_or_the_caller_is_unknown() -> None:
    assert caller_number("+1 (202) 555-0176") == "+12025550176"
    assert caller_number(" 1030200007 ") == "1030200007"
    for raw in HOSTILE_CALLER_IDS:
        assert caller_number(raw) is None, raw


def test_a_number_is_looked_up_in_every_form_a_lead_may_hold() -> None:
    forms = caller_forms("2025550176", NumberPolicy(e164=True, default_region="US"))
    assert {"2025550176", "+12025550176"} <= set(forms)
    assert "+12025550176" in caller_forms("12025550176", NumberPolicy(e164=True))  # E.164 without its +
    assert caller_forms("1030200007", NumberPolicy(e164=False)) == ("1030200007",)


def campaign(name: str, caller_id: str = "+15550100", **inbound: Any) -> Campaign:
    return Campaign.model_validate({
        "name": name, "type": "telemarketing", "trunk": "PJSIP/{number}@carrier", "caller_id": caller_id,
        "queue": "sales", "inbound": inbound,
    })


def test_the_dialled_number_finds_its_campaigns() -> None:
    plain = Campaign.model_validate({"name": "outbound_only", "type": "telemarketing",
                                     "trunk": "PJSIP/{number}@carrier", "caller_id": "+15550100", "queue": "sales"})
    index = DidIndex.build([
        campaign("renewals", '"Acme" <+15550100>', dids=["+15550199"]),
        campaign("surveys", "+15550100"),
        plain,
    ])
    # The caller ID's number, with or without +; several campaigns may share it.
    assert index.lookup("+15550100") == ("renewals", "surveys")
    assert index.lookup("15550100") == ("renewals", "surveys")
    assert index.lookup("+15550199") == ("renewals",)
    for did in ("+15550198", "", None, "s", "9" * 500, "+15550199\r\n"):
        assert index.lookup(did) == (), did
    assert did_key("+15550199") == "15550199"


# -- the routing decision (pure) ------------------------------------------------------

RULES = {"key": TierRoute(queue="key-accounts", priority=10, fallback_priority=20, fallback_after=2, max_wait=5)}


def decide(tier: str | None, agents: dict[str, QueueAgents]) -> Any:
    return inbound_route(tier, RULES, campaign_queue="sales", default_queue="support", wait=60, agents=agents)


def test_an_unknown_caller_goes_to_the_default_queue() -> None:
    routing = decide(None, {"key-accounts": QueueAgents(2, 2)})
    assert (routing.queue, routing.priority, routing.timeout, routing.reason) == ("support", 0, 60, UNKNOWN)
    assert routing.fallback_queue is None


def test_a_key_customer_reaches_the_free_key_team_first_then_the_general_pool() -> None:
    routing = decide("key", {"key-accounts": QueueAgents(2, 1)})
    assert (routing.queue, routing.priority, routing.timeout) == ("key-accounts", 10, 2)
    # The inbound wait, not the tier's outbound max_wait (5 s), bounds the whole wait.
    assert (routing.fallback_queue, routing.fallback_priority, routing.fallback_timeout) == ("sales", 20, 58)


def test_a_key_customer_whose_team_is_busy_or_away_goes_to_the_general_pool_ahead_of_others() -> None:
    for agents, reason in (({"key-accounts": QueueAgents(2, 0)}, "dedicated_busy"), ({}, "dedicated_away")):
        routing = decide("key", agents)
        assert (routing.queue, routing.priority, routing.timeout, routing.reason) == ("sales", 20, 60, reason)


def test_other_tiers_go_to_the_campaign_queue() -> None:
    routing = decide("standard", {})
    assert (routing.queue, routing.priority, routing.reason, routing.tier) == ("sales", 0, "general", "standard")


# -- the campaign file -------------------------------------------------------------------


@pytest.mark.parametrize("inbound, field", [
    ({"dids": ["+15550199\r\nAction: Originate"]}, "dids"),
    ({"dids": ['"+15550199"']}, "dids"),
    ({"dids": ["1" * 21]}, "dids"),
    ({"dids": ["+15550199", "15550199"]}, "dids"),
    ({"default_queue": "sales,,,1"}, "default_queue"),
    ({"no_agent_message": "../../etc/passwd"}, "no_agent_message"),
    ({"callback_key": "12"}, "callback_key"),
    ({"max_wait": 0}, "max_wait"),
    ({"unknown_field": 1}, "unknown_field"),
])
def test_the_inbound_section_is_checked_by_the_ami_value_rules(tmp_path: Path, inbound: dict[str, Any], field: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "name": "c", "type": "telemarketing", "trunk": "PJSIP/{number}@carrier", "caller_id": "+15550100",
        "queue": "sales", "inbound": inbound,
    }))
    with pytest.raises(ConfigError) as caught:
        load_campaign(path)
    message = str(caught.value)
    assert f"{path}:" in message and f"inbound.{field}" in message, message
    assert "\r" not in message and "\n" not in message.strip()


def test_the_inbound_section_defaults() -> None:
    inbound = campaign("c").inbound
    assert inbound is not None
    assert (inbound.dids, inbound.default_queue, inbound.max_wait, inbound.callback_key) == ([], None, 60, "1")
    with pytest.raises(ValidationError):
        campaign("c", callback_prompt="a,b")


# -- the FastAGI routes, on a real store --------------------------------------------------

SAFE_COMMAND = re.compile(r'^SET VARIABLE [A-Z_]{1,64} "[A-Za-z0-9_.@:+#*/^= -]*"$')


class FakeAgi:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.commands: list[str] = []

    async def send_command(self, command: str) -> dict[str, Any]:
        self.commands.append(command)
        return {"result": ("1", "")}

    def variables(self) -> dict[str, str]:
        for command in self.commands:
            assert SAFE_COMMAND.fullmatch(command), command
        return {c.split()[2]: c.split(" ", 3)[3].strip('"') for c in self.commands}


def agi(caller: str | None, did: str = "+15550199", uniqueid: str = "1796046000.1") -> FakeAgi:
    headers = {"agi_uniqueid": uniqueid, "agi_arg_1": did}
    if caller is not None:
        headers["agi_callerid"] = caller
    return FakeAgi(headers)


@pytest.fixture
async def daemon(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Daemon]:
    monkeypatch.setenv("DIALER_DATABASE_URL", store_url)
    write_config(tmp_path, agents=[
        {"id": "kate", "interface": "PJSIP/kate", "queues": ["key-accounts"]},
        {"id": "gus", "interface": "PJSIP/gus", "queues": ["sales"]},
    ])
    (tmp_path / "campaigns" / "renewals.yaml").write_text(yaml.safe_dump({
        "name": "renewals", "type": "telemarketing", "trunk": "PJSIP/{number}@carrier",
        "caller_id": '"Acme" <+15550100>', "queue": "sales",
        "tiers": {"routing": {"key": {"queue": "key-accounts", "priority": 10, "fallback_priority": 20}}},
        "inbound": {"dids": ["+15550199"], "default_queue": "support", "max_wait": 45},
    }))
    handle = await open_daemon(tmp_path)
    try:
        yield handle
    finally:
        await close_daemon(handle)


def service(daemon: Daemon, **kwargs: Any) -> InboundService:
    assert daemon.store is not None
    return InboundService(
        daemon.store, daemon.board, lambda: [x.campaign for x in daemon.runners.values()],
        tiers=daemon.config.tiers, agent_ids={"PJSIP/kate": "kate", "PJSIP/gus": "gus"}, ami=daemon.ami, **kwargs,
    )


async def add_lead(daemon: Daemon, phone: str, tier: str, customer_id: str) -> None:
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as client:
        lead = {"phone": phone, "name": "Grace", "tier": tier, "customer_id": customer_id}
        response = await client.post("/campaigns/renewals/leads", headers=AUTH, json=lead)
        assert response.status_code == 201, response.text


async def abandoned_attempt(daemon: Daemon) -> str:
    assert daemon.store is not None
    runner = daemon.runners["renewals"]
    [lease] = await daemon.store.lease_due_leads(runner.campaign_id, 1, datetime.now(UTC))
    await daemon.store.finish_attempt(lease.attempt_id, outcome="abandoned", lead_state="pending",
                                      next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
    return lease.attempt_id


async def lead_row(daemon: Daemon) -> dict[str, Any]:
    assert daemon.store is not None
    [lead] = await daemon.store.leads(daemon.runners["renewals"].campaign_id)
    return dict(lead)


async def test_a_customer_calling_back_an_abandoned_call_is_routed_and_closes_the_loop(daemon: Daemon) -> None:
    await add_lead(daemon, "+12025550176", "key", "AC-7")
    abandoned = await abandoned_attempt(daemon)
    daemon.board.apply(r.MemberStatus(at=0, queue="key-accounts", interface="PJSIP/kate", status=1, paused=False,
                                      in_call=False))
    inbound = service(daemon)
    line = agi("12025550176", did="15550100")  # the campaign's caller ID, as the carrier sends it
    await inbound.agi_route(line)
    variables = line.variables()
    assert variables["DIALER_CAMPAIGN"] == "renewals"
    assert (variables["DIALER_QUEUE"], variables["DIALER_PRIORITY"], variables["DIALER_FALLBACK_QUEUE"]) == (
        "key-accounts", "10", "sales")
    assert (variables["DIALER_TIER"], variables["DIALER_CUSTOMER"], variables["DIALER_ANSWERS"]) == (
        "key", "AC-7", abandoned)
    call_id = variables["DIALER_INBOUND_ID"]
    assert variables["DIALER_ATTEMPT"] == call_id
    assert inbound.owns("1796046000.1")

    # The agent's phone rings (screen pop over AMI), then the agent answers.
    ringing = r.AgentRinging(uniqueid="1796046000.1", at=1.0, queue="key-accounts", interface="PJSIP/kate")
    daemon.board.apply(ringing)
    await inbound.on_record(ringing)
    await inbound.on_record(r.AgentConnected(uniqueid="1796046000.1", at=2.0, queue="key-accounts",
                                             interface="PJSIP/kate"))
    daemon.board.apply(r.AgentConnected(uniqueid="1796046000.1", at=2.0, queue="key-accounts", interface="PJSIP/kate"))
    # The agent's screen pop over HTTP, as for an outbound call.
    daemon.inbound = inbound
    transport = httpx.ASGITransport(app=build_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://dialer") as client:
        current = (await client.get("/agents/kate/current", headers=AUTH)).json()["call"]
    assert (current["attempt"], current["campaign"], current["number"], current["state"]) == (
        call_id, "renewals", "12025550176", "bridged")
    pop = current["screen_pop"]
    assert (pop["customer"]["id"], pop["customer"]["tier"], pop["routing"]["reason"]) == ("AC-7", "key", "dedicated")
    assert [c["outcome"] for c in pop["last_contacts"]] == ["abandoned"]
    lead = await lead_row(daemon)
    assert (lead["state"], lead["final_reason"], lead["next_attempt_at"]) == ("done", "inbound_callback", None)
    # Not dialed again unless a disposition asks for it: the agent's, by lead (the screen pop gives it).
    assert daemon.store is not None
    later = datetime.now(UTC) + timedelta(days=2)
    await apply_disposition(daemon.store, {"renewals": daemon.runners["renewals"].campaign}, code="callback",
                            now=datetime.now(UTC), lead_id=lead["id"], callback_at=later, agent="kate")
    reopened = await lead_row(daemon)
    assert (reopened["state"], reopened["callback_id"] is not None) == ("pending", True)
    await inbound.on_record(r.ChannelHangup(uniqueid="1796046000.1", at=60.0, cause=16, cause_text="Normal"))
    await inbound.close()
    assert not inbound.owns("1796046000.1")
    assert daemon.store is not None
    [row] = await inbound_calls.calls(daemon.store, daemon.runners["renewals"].campaign_id)
    assert (row["answers_attempt"], row["answers_outcome"], row["agent_id"], row["outcome"]) == (
        abandoned, "abandoned", "kate", "answered")
    assert (row["routing"], row["caller"], row["tier"]) == ("dedicated", "12025550176", "key")
    (event,) = [a for a in daemon.ami.sent if a.get("UserEvent") == "DialerScreenPop"]  # type: ignore[attr-defined]
    assert (event["Attempt"], event["Customer"], event["Tier"], event["Agent"], event["Name"]) == (
        call_id, "AC-7", "key", "kate", "Grace")
    summary = inbound_calls.summary([row])
    assert (summary["abandons_closed"], summary["by_tier"]["key"]["answered"]) == (1, 1)


@pytest.mark.parametrize("caller", HOSTILE_CALLER_IDS)
async def test_hostile_caller_ids_go_to_the_default_queue(daemon: Daemon, caller: str | None) -> None:
    await add_lead(daemon, "+12025550176", "key", "AC-7")
    inbound = service(daemon)
    line = agi(caller)
    await inbound.agi_route(line)
    await inbound.close()
    variables = line.variables()
    assert (variables["DIALER_QUEUE"], variables["DIALER_TIER"], variables["DIALER_CUSTOMER"]) == ("support", "", "")
    assert variables["DIALER_AGENT_WAIT"] == "45"
    assert variables["DIALER_CALLBACK_KEY"] == ""  # nobody to call back: no key offered
    assert daemon.store is not None
    [row] = await inbound_calls.calls(daemon.store, daemon.runners["renewals"].campaign_id)
    assert (row["caller"], row["customer_id"], row["routing"]) == (None, None, UNKNOWN)
    assert row["caller_raw"] is None or ("\r" not in row["caller_raw"] and len(row["caller_raw"]) <= 64)


async def test_lead_data_reaches_the_channel_made_safe(daemon: Daemon) -> None:
    await add_lead(daemon, "+12025550176", "gold", 'AC"7,x) EXEC System(rm')
    inbound = service(daemon)
    line = agi("+12025550176")
    await inbound.agi_route(line)
    await inbound.close()
    variables = line.variables()  # every command line passes the strict pattern
    assert variables["DIALER_CUSTOMER"] == "AC_7_x__EXEC_System_rm"
    assert variables["DIALER_TIER"] == "gold"


async def test_a_number_no_campaign_answers_on_leaves_the_dialplan_default(daemon: Daemon) -> None:
    inbound = service(daemon)
    for did in ("+15550198", "", "9" * 500, "+15550199\nx"):
        line = agi("12025550176", did=did)
        await inbound.agi_route(line)
        assert line.commands == [], did


async def test_a_slow_database_still_gets_the_caller_a_queue_at_once(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_lead(daemon, "+12025550176", "key", "AC-7")
    finished = []

    async def stuck(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(30)
        finished.append(True)

    monkeypatch.setattr(inbound_service.inbound_calls, "recognise", stuck)
    inbound = service(daemon, budget=0.05)
    line = agi("12025550176")
    await asyncio.wait_for(inbound.agi_route(line), 5)
    variables = line.variables()
    assert (variables["DIALER_QUEUE"], variables["DIALER_CAMPAIGN"], variables["DIALER_AGENT_WAIT"]) == (
        "support", "renewals", "45")
    assert variables["DIALER_CALLBACK_KEY"] == ""
    assert finished == []


async def test_a_caller_who_reaches_no_agent_books_a_callback_by_keypress(daemon: Daemon) -> None:
    await add_lead(daemon, "+12025550176", "standard", "C-1")
    await abandoned_attempt(daemon)
    inbound = service(daemon)
    line = agi("+12025550176")
    await inbound.agi_route(line)
    call_id = line.variables()["DIALER_INBOUND_ID"]
    assert line.variables()["DIALER_CALLBACK_KEY"] == "1"

    no_agent = FakeAgi({"agi_arg_1": call_id, "agi_arg_2": "no_agent"})
    await inbound.agi_result(no_agent)
    pressed = FakeAgi({"agi_arg_1": call_id, "agi_arg_2": "callback"})
    await inbound.agi_result(pressed)
    assert pressed.variables() == {"DIALER_CALLBACK_BOOKED": "1"}
    # Pressed twice (or the route retried): still one callback.
    await inbound.agi_result(FakeAgi({"agi_arg_1": call_id, "agi_arg_2": "callback"}))
    # Made-up ids and actions change nothing.
    for headers in ({"agi_arg_1": "in-nope", "agi_arg_2": "callback"}, {"agi_arg_1": call_id, "agi_arg_2": "x\r\n"}):
        ignored = FakeAgi(headers)
        await inbound.agi_result(ignored)
        assert ignored.commands == []
    await inbound.on_record(r.ChannelHangup(uniqueid="1796046000.1", at=60.0, cause=16, cause_text="Normal"))
    await inbound.close()

    assert daemon.store is not None
    from dialer.store import callbacks
    [callback] = await callbacks.list_callbacks(daemon.store, campaign="renewals")
    assert (callback.phone, callback.state) == ("+12025550176", "scheduled")
    lead = await lead_row(daemon)
    assert (lead["state"], lead["callback_id"]) == ("pending", callback.id)
    [row] = await inbound_calls.calls(daemon.store, daemon.runners["renewals"].campaign_id)
    assert (row["outcome"], row["callback_id"], row["agent_id"]) == ("callback_requested", callback.id, None)


async def test_calls_left_open_by_a_previous_run_are_adopted_or_ended_after_login(daemon: Daemon) -> None:
    await add_lead(daemon, "+12025550176", "standard", "C-1")
    first_run = service(daemon)
    for uniqueid in ("1796046000.1", "1796046000.2"):
        await first_run.agi_route(agi("+12025550176", uniqueid=uniqueid))
    await first_run.close()  # the daemon dies with both calls open

    async def live() -> list[LiveChannel]:
        # The first caller is still up, bridged to kate; the second hung up meanwhile.
        return [LiveChannel("PJSIP/carrier-00000001", "1796046000.1", "1796046000.1", 6, True),
                LiveChannel("PJSIP/kate-00000002", "1796046000.9", "1796046000.1", 6, True)]

    next_run = service(daemon)
    await next_run.adopt(live)
    assert next_run.owns("1796046000.1") and not next_run.owns("1796046000.2")
    lead = await lead_row(daemon)
    assert (lead["state"], lead["final_reason"]) == ("done", "inbound_callback")
    await next_run.on_record(r.ChannelHangup(uniqueid="1796046000.1", at=60.0, cause=16, cause_text="Normal"))
    await next_run.adopt(live)  # nothing left open: nothing asked
    await next_run.close()
    assert daemon.store is not None
    rows = {row["uniqueid"]: row for row in await inbound_calls.calls(daemon.store, daemon.runners["renewals"].campaign_id)}
    assert (rows["1796046000.1"]["outcome"], rows["1796046000.1"]["agent_id"]) == ("answered", "kate")
    assert rows["1796046000.2"]["outcome"] == "interrupted"
