"""Tiers where the daemon applies them: which leads are dialed per tier and when, where
each call is routed, the contact policy, revisits, the CRM, the screen pop and the
report by tier. A real SQLite store; the simulated PBX, which keeps what is sent."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import Attempt, State
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.leads.csv_import import LeadRow
from dialer.store.tier_import import tiers_after_import
from dialer.pbx.simulated import SimulatedPbx
from dialer.report import build_report
from dialer.screen_pop import screen_pop
from dialer.store.lease_tiers import LeaseTiers
from dialer.store.schema import call_attempts, customers, leads
from dialer.store.store import Store

NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
RANKS = {"key": 1, "gold": 2, "standard": 3}


class FakeAmi(SimulatedPbx):
    """The simulated PBX, logged in: `originated` holds each Originate's arguments, `actions` every action."""

    def __init__(self) -> None:
        super().__init__(random.Random(0), {})
        self.logged_in()


def make_campaign(mode: str = "progressive", **extra: Any) -> Campaign:
    return Campaign(
        name="tiers",
        type="telemarketing",
        trunk="PJSIP/{number}@carrier",
        caller_id="+15550100",
        queue="sales",
        dialing={"max_lines": 20, "mode": mode, "ratio": 3.0},
        numbers={"format": "as_is"},
        retries={},
        script="Good afternoon, this is your account team.",
        **{
            "tiers": {
                "routing": {"key": {"queue": "key-accounts", "priority": 10, "fallback_priority": 20,
                                    "fallback_after": 1, "max_wait": 20}},
                "order_by": "value",
                "revisit_days": {"key": 30},
            },
            **extra,
        },
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def board_with(key_free: int = 1, general_free: int = 2, key_logged_in: bool = True) -> AgentBoard:
    agents = {f"key{i}": f"PJSIP/key{i}" for i in range(1, 3)} | {f"gen{i}": f"PJSIP/gen{i}" for i in range(1, 5)}
    board = AgentBoard(agents)
    for i in range(1, 3):
        if key_logged_in:
            board.apply(r.MemberStatus(at=0, queue="key-accounts", interface=f"PJSIP/key{i}",
                                       status=1 if i <= key_free else 2, paused=False, in_call=i > key_free))
    for i in range(1, 5):
        board.apply(r.MemberStatus(at=0, queue="sales", interface=f"PJSIP/gen{i}",
                                   status=1 if i <= general_free else 2, paused=False, in_call=i > general_free))
    return board


class Lab:
    def __init__(self, store: Store, campaign: Campaign, campaign_id: int, board: AgentBoard) -> None:
        self.store = store
        self.ami = FakeAmi()
        self.runner = CampaignRunner(campaign, campaign_id, store, self.ami, board,  # type: ignore[arg-type]
                                     {}, clock=lambda: NOW.timestamp())
        self.runner.tiers.set_ladder(list(DEFAULT_TIERS))

    async def tick(self, at: datetime = NOW) -> list[dict[str, Any]]:
        await self.runner.tick(at.timestamp())
        await self.runner.wait_sends()
        return self.ami.originated

    async def attempts(self) -> list[dict[str, Any]]:
        return await self.store.attempts(self.runner.campaign_id)


CUSTOMERS = [
    ("1001", "key", 900.0), ("1002", "key", 800.0), ("1003", "key", 700.0),
    ("2001", "gold", 50.0), ("3001", "standard", 5.0), ("3002", None, 1.0),
]


async def lab_with(store: Store, board: AgentBoard, rows: list[tuple[str, str | None, float]] = CUSTOMERS,
                   **campaign: Any) -> Lab:
    settings = make_campaign(**campaign)
    campaign_id = await store.sync_campaign(settings.name, settings.type.value)
    await store.import_leads(campaign_id, [
        LeadRow(line=i + 2, phone=p, name=f"Customer {p}", customer_id=f"C{p}", tier=t, value=v)  # type: ignore[arg-type]
        for i, (p, t, v) in enumerate(rows)
    ])
    return Lab(store, settings, campaign_id, board)


def number(originate: dict[str, Any]) -> str:
    return originate["channel"].split("/")[1].split("@")[0]


async def test_key_calls_are_placed_only_against_free_agents_and_routed_to_dedicated_first(store: Store) -> None:
    lab = await lab_with(store, board_with(key_free=1, general_free=2))
    sent = await lab.tick()
    # Three agents are free (one dedicated, two general): three key calls, nothing else,
    # and the most valuable key customer gets the dedicated agent.
    assert [number(o) for o in sent] == ["1001", "1002", "1003"]
    first, second, third = (o["variables"] for o in sent)
    assert (first["DIALER_QUEUE"], first["DIALER_PRIORITY"], first["DIALER_AGENT_WAIT"]) == ("key-accounts", "10", "1")
    assert (first["DIALER_FALLBACK_QUEUE"], first["DIALER_FALLBACK_PRIORITY"], first["DIALER_FALLBACK_WAIT"]) == (
        "sales", "20", "19")
    assert (first["DIALER_TIER"], first["DIALER_CUSTOMER"]) == ("key", "C1001")
    for other in (second, third):
        assert (other["DIALER_QUEUE"], other["DIALER_PRIORITY"], other["DIALER_FALLBACK_QUEUE"]) == ("sales", "20", "")
    rows = {a["phone"]: a for a in await lab.attempts()}
    assert (rows["1001"]["tier"], rows["1001"]["routed_queue"], rows["1001"]["routing"]) == (
        "key", "key-accounts", "dedicated")
    assert (rows["1002"]["routed_queue"], rows["1002"]["routing"]) == ("sales", "dedicated_busy")
    # Every free agent is promised to a key call still ringing: the next tick places nothing.
    assert len(await lab.tick()) == 3


async def test_lower_tiers_are_paced_on_the_agents_key_calls_do_not_hold(store: Store) -> None:
    rows = [("1001", "key", 900.0), *[(f"30{i:02d}", "standard", 1.0) for i in range(20)]]
    lab = await lab_with(store, board_with(key_free=0, general_free=3, key_logged_in=False), rows, mode="ratio")
    sent = await lab.tick()
    key = [o for o in sent if o["variables"]["DIALER_TIER"] == "key"]
    standard = [o for o in sent if o["variables"]["DIALER_TIER"] == "standard"]
    assert len(key) == 1
    assert key[0]["variables"]["DIALER_QUEUE"] == "sales"  # no dedicated agent logged in: general at once
    # A cold campaign dials one call per free agent: two, on the agents the key call leaves, not three.
    assert len(standard) == 2
    assert all(o["variables"]["DIALER_QUEUE"] == "sales" and o["variables"]["DIALER_PRIORITY"] == "0" for o in standard)


async def test_no_free_agent_no_key_call(store: Store) -> None:
    lab = await lab_with(store, board_with(key_free=0, general_free=0))
    assert await lab.tick() == []
    assert await lab.attempts() == []


async def test_once_bridged_a_key_call_frees_its_claim(store: Store) -> None:
    lab = await lab_with(store, board_with(key_free=0, general_free=1, key_logged_in=False))
    (sent,) = await lab.tick()
    attempt = lab.runner.attempts[sent["attempt_id"]]
    assert lab.runner.tiers.claims(lab.runner.attempts).general == 1
    attempt.state = State.bridged
    assert lab.runner.tiers.claims(lab.runner.attempts).general == 0


async def test_the_contact_policy_defers_a_customer_contacted_in_another_campaign(store: Store) -> None:
    other = await store.sync_campaign("renewals", "telemarketing")
    await store.import_leads(other, [LeadRow(line=2, phone="1001")])
    (earlier,) = await store.lease_due_leads(other, 1, NOW - timedelta(days=5))
    await store.finish_attempt(earlier.attempt_id, outcome="answered", lead_state="done")
    lab = await lab_with(store, board_with(key_free=2, general_free=0), [("1001", "key", 10.0), ("1002", "key", 5.0)])
    sent = await lab.tick()
    assert [number(o) for o in sent] == ["1002"]
    async with store.engine.connect() as conn:
        deferred = (await conn.execute(
            select(leads).where(leads.c.phone == "1001", leads.c.campaign_id == lab.runner.campaign_id)
        )).mappings().one()
    # Key accounts: 30 days between contacts; the last was 5 days ago.
    assert deferred["state"] == "pending"
    assert deferred["next_attempt_at"] == (NOW - timedelta(days=5) + timedelta(days=30)).replace(tzinfo=None)
    assert deferred["attempts"] == 0


async def test_an_answered_key_account_is_booked_for_its_revisit(store: Store) -> None:
    lab = await lab_with(store, board_with(key_free=1, general_free=0), [("1001", "key", 10.0)])
    (sent,) = await lab.tick()
    attempt: Attempt = lab.runner.attempts[sent["attempt_id"]]
    await store.finish_attempt(attempt.id, outcome="answered", lead_state="done")
    attempt.answered_at = NOW.timestamp()
    await lab.runner.tiers.after_attempt(lab.runner.campaign, attempt, "answered", NOW.timestamp())
    (lead,) = await store.leads(lab.runner.campaign_id)
    assert (lead["state"], lead["next_attempt_at"]) == ("pending", (NOW + timedelta(days=30)).replace(tzinfo=None))


async def test_the_screen_pop_reaches_ami_when_the_agent_phone_rings(store: Store) -> None:
    lab = await lab_with(store, board_with(key_free=1, general_free=0), [("1001", "key", 900.0)])
    (sent,) = await lab.tick()
    await lab.runner.on_record(
        r.AgentRinging(uniqueid=sent["attempt_id"], at=NOW.timestamp(), queue="key-accounts", interface="PJSIP/key1")
    )
    await lab.runner.tiers.close()
    (event,) = [a for a in lab.ami.actions if a.get("UserEvent") == "DialerScreenPop"]
    assert event == {
        "Action": "UserEvent", "UserEvent": "DialerScreenPop", "Attempt": sent["attempt_id"], "Campaign": "tiers",
        "Agent": "PJSIP/key1", "Interface": "PJSIP/key1", "Queue": "key-accounts", "Tier": "key",
        "Customer": "C1001", "Name": "Customer 1001", "Value": "900.0",
    }


async def test_screen_pop_data(store: Store) -> None:
    lab = await lab_with(store, board_with(key_free=1, general_free=0), [("1001", "key", 900.0)])
    before = await store.sync_campaign("renewals", "telemarketing")
    await store.import_leads(before, [LeadRow(line=2, phone="1001")])
    (old,) = await store.lease_due_leads(before, 1, NOW - timedelta(days=40))
    await store.finish_attempt(old.attempt_id, outcome="answered", lead_state="done", agent_id="gen1")
    (sent,) = await lab.tick()
    attempt = lab.runner.attempts[sent["attempt_id"]]
    pop = await screen_pop(store, lab.runner.campaign, attempt.lead_id, tier="key", routing={"queue": "key-accounts"})
    assert pop is not None
    assert pop["customer"] == {"name": "Customer 1001", "phone": "1001", "id": "C1001", "tier": "key",
                               "stored_tier": "key", "tier_source": None, "value": 900.0}
    assert [(c["campaign"], c["outcome"], c["agent"]) for c in pop["last_contacts"]] == [("renewals", "answered", "gen1")]
    assert pop["script"] == "Good afternoon, this is your account team."
    assert pop["open_callbacks"] == []


async def test_leads_are_ordered_by_tier_or_value(store: Store) -> None:
    campaign_id = await store.sync_campaign("order", "telemarketing")
    await store.import_leads(campaign_id, [
        LeadRow(line=2, phone="1", tier="standard", value=500),  # type: ignore[arg-type]
        LeadRow(line=3, phone="2", tier="key", value=10),  # type: ignore[arg-type]
        LeadRow(line=4, phone="3", tier=None, value=None),
        LeadRow(line=5, phone="4", tier="gold", value=100),  # type: ignore[arg-type]
    ])
    by_tier = await store.lease_due_leads(campaign_id, 4, NOW, tiers=LeaseTiers(RANKS, order_by="tier"))
    assert [lease.phone for lease in by_tier] == ["2", "4", "1", "3"]
    async with store.engine.begin() as conn:
        await conn.execute(leads.update().values(state="pending", lease_attempt_id=None))
        await conn.execute(call_attempts.delete())
    by_value = await store.lease_due_leads(campaign_id, 4, NOW, tiers=LeaseTiers(RANKS, order_by="value"))
    assert [lease.phone for lease in by_value] == ["1", "4", "2", "3"]


async def test_lease_filters_by_tier_with_untiered_customers_as_the_lowest(store: Store) -> None:
    campaign_id = await store.sync_campaign("filter", "telemarketing")
    await store.import_leads(campaign_id, [
        LeadRow(line=2, phone="1", tier="key"), LeadRow(line=3, phone="2", tier="platinum"),
        LeadRow(line=4, phone="3"), LeadRow(line=5, phone="4", tier="gold"),
    ])
    only_key = await store.lease_due_leads(campaign_id, 9, NOW, tiers=LeaseTiers(RANKS, only=frozenset({"key"})))
    assert [lease.phone for lease in only_key] == ["1"]
    rest = await store.lease_due_leads(campaign_id, 9, NOW, tiers=LeaseTiers(RANKS, exclude=frozenset({"key"})))
    assert [lease.phone for lease in rest] == ["2", "3", "4"]
    lowest = LeaseTiers(RANKS, only=frozenset({"standard"}))
    await _release_all(store)
    assert [lease.phone for lease in await store.lease_due_leads(campaign_id, 9, NOW, tiers=lowest)] == ["2", "3"]


async def _release_all(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(leads.update().values(state="pending", lease_attempt_id=None))
        await conn.execute(call_attempts.delete())


async def test_import_recomputes_the_value_rule_and_keeps_column_tiers(store: Store) -> None:
    campaign = make_campaign()
    campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
    rows = [
        LeadRow(line=2, phone="1", value=600),  # type: ignore[arg-type]
        LeadRow(line=3, phone="2", value=250),  # type: ignore[arg-type]
        LeadRow(line=4, phone="3", value=100),  # type: ignore[arg-type]
        LeadRow(line=5, phone="4", tier="key", value=50),  # type: ignore[arg-type]
        LeadRow(line=6, phone="5"),
    ]
    await store.import_leads(campaign_id, rows)
    counts = await tiers_after_import(store, campaign_id, campaign, list(DEFAULT_TIERS), rows)
    assert await _tiers(store) == {"1": "key", "2": "key", "3": "standard", "4": "key", "5": None}
    assert counts == {"key": 3, "standard": 2}
    # A second import changes the totals: the rule is recomputed over every customer.
    more = [LeadRow(line=2, phone="6", value=5000)]  # type: ignore[arg-type]
    await store.import_leads(campaign_id, more)
    await tiers_after_import(store, campaign_id, campaign, list(DEFAULT_TIERS), more)
    assert await _tiers(store) == {"1": "standard", "2": "standard", "3": "standard", "4": "key", "5": None, "6": "key"}
    # With the value rule first, the value decides even over the column.
    value_first = make_campaign(tiers={"sources": ["value", "column"]})
    await tiers_after_import(store, campaign_id, value_first, list(DEFAULT_TIERS), [])
    assert (await _tiers(store))["4"] == "standard"


async def _tiers(store: Store) -> dict[str, str | None]:
    async with store.engine.connect() as conn:
        return {row.phone: row.tier for row in (await conn.execute(select(customers.c.phone, customers.c.tier))).all()}


@pytest.fixture
def crm_server() -> Iterator[tuple[dict[str, str], str]]:
    answers: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            customer = self.path.rsplit("/", 1)[-1]
            body = json.dumps({"tier": answers.get(customer, "standard")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield answers, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_the_crm_tier_routes_the_call_and_is_stored(store: Store, crm_server: tuple[dict[str, str], str]) -> None:
    answers, base = crm_server
    answers["C3001"] = "key"  # stored as standard; the CRM knows better
    crm_tiers = {
        "sources": ["crm", "column"],
        "crm": {"url": base + "/customers/{customer_id}", "timeout": 1.0},
        "routing": {"key": {"queue": "key-accounts", "fallback_priority": 20}},
    }
    lab = await lab_with(store, board_with(key_free=1, general_free=1), [("3001", "standard", 1.0)], tiers=crm_tiers)
    (sent,) = await lab.tick()
    assert (sent["variables"]["DIALER_TIER"], sent["variables"]["DIALER_QUEUE"]) == ("key", "key-accounts")
    assert (await _tiers(store))["3001"] == "key"
    await lab.runner.tiers.close()


def test_report_breaks_down_by_tier() -> None:
    def row(n: int, tier: str | None, outcome: str, agent: str | None = None, routing: str | None = None) -> dict[str, Any]:
        at = datetime(2026, 3, 2, 14, 0)
        return {"id": str(n), "phone": str(n), "attempt_no": 1, "outcome": outcome, "hangup_cause": 16,
                "agent_id": agent, "dialed_at": at, "answered_at": at, "bridged_at": None, "ended_at": at,
                "tier": tier, "routing": routing}

    attempts = [
        row(1, "key", "answered", "key1", "dedicated"), row(2, "key", "answered", "gen1", "dedicated_away"),
        row(3, "standard", "answered", "gen1"), row(4, "standard", "abandoned"), row(5, "standard", "busy"),
        row(6, None, "answered", "gen2"),
    ]
    by_tier = build_report("c", [], attempts)["by_tier"]
    assert by_tier["key"] == {"attempts": 2, "outcomes": {"answered": 2}, "live_answered": 2, "abandoned": 0,
                              "abandon_rate": 0.0, "routing": {"dedicated": 1, "dedicated_away": 1},
                              "agents": {"gen1": 1, "key1": 1}}
    assert (by_tier["standard"]["live_answered"], by_tier["standard"]["abandoned"],
            by_tier["standard"]["abandon_rate"]) == (2, 1, 0.5)
    assert by_tier["untiered"]["attempts"] == 1


async def test_waiting_for_the_dedicated_team_while_it_is_in(store: Store) -> None:
    waiting = {
        "routing": {"key": {"queue": "key-accounts", "fallback_priority": 20, "wait_for_dedicated": True}},
        "order_by": "value",
    }
    lab = await lab_with(store, board_with(key_free=1, general_free=2), tiers=waiting)
    sent = await lab.tick()
    # One key call for the one free key agent; the general agents take the other tiers.
    tiers = [(o["variables"]["DIALER_TIER"], o["variables"]["DIALER_QUEUE"]) for o in sent]
    assert tiers.count(("key", "key-accounts")) == 1
    assert not [t for t in tiers if t[0] == "key" and t[1] != "key-accounts"]
    assert len([t for t in tiers if t[0] != "key"]) == 2
    # The team logged out: general agents take key calls again.
    away = await lab_with(store, board_with(key_free=0, general_free=2, key_logged_in=False),
                          [("1009", "key", 5.0)], tiers=waiting)
    calls = [o for o in await away.tick() if o["variables"]["DIALER_TIER"] == "key"]
    assert len(calls) == 2  # the two key accounts still due, one per free general agent
    assert all(o["variables"]["DIALER_QUEUE"] == "sales" for o in calls)


async def test_calls_of_other_tiers_in_flight_hold_their_agents(store: Store) -> None:
    rows = [*[(f"30{i:02d}", "standard", 1.0) for i in range(3)], ("1001", "key", 900.0), ("1002", "key", 800.0)]
    lab = await lab_with(store, board_with(key_free=0, general_free=3, key_logged_in=False), rows[:3])
    assert len(await lab.tick()) == 3  # three standard calls ringing for the three free agents
    await store.import_leads(lab.runner.campaign_id, [
        LeadRow(line=2, phone=p, tier=t, value=v) for p, t, v in rows[3:]  # type: ignore[arg-type]
    ])
    # The agents look free (the customers have not answered yet) but are counted on: no key call.
    assert len(await lab.tick()) == 3


async def test_key_accounts_waiting_hold_one_agent_back_from_the_pacing(store: Store) -> None:
    rows = [(f"30{i:02d}", "standard", 1.0) for i in range(6)]
    lab = await lab_with(store, board_with(key_free=0, general_free=3, key_logged_in=False), rows)
    first = await lab.tick()
    assert len(first) == 3  # three standard calls ringing for the three free agents
    await store.import_leads(lab.runner.campaign_id, [LeadRow(line=2, phone="1001", tier="key", value=9)])  # type: ignore[arg-type]
    assert len(await lab.tick()) == 3  # no agent for the key account yet
    # One agent is kept from the pacing while the key account waits.
    assert lab.runner.snapshot(NOW.timestamp()).agents_free == 2
    # A standard call ends: its agent goes to the key account, not to another standard call.
    lab.runner.attempts[first[0]["attempt_id"]].state = State.ended
    sent = await lab.tick()
    assert [o["variables"]["DIALER_TIER"] for o in sent[3:]] == ["key"]
