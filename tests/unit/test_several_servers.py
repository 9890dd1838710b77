"""Several Asterisk servers (issue 13): `ami:` takes a list, each server with its own trunks, line
limit and agents; calls spread by free capacity and health; a server that goes away gets no call,
and its calls are settled or adopted when it returns, the other servers' calls untouched.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.config.loader import ConfigError, load_config
from dialer.config.models import Campaign
from dialer.core.servers import ServerView, choose, room
from dialer.daemon.reconcile import Reconciler
from dialer.daemon.server import Daemon
from dialer.leads.csv_import import LeadRow
from dialer.pbx.simulated import Customer, SimulatedPbx
from dialer.store.lead_outcomes import open_attempts
from dialer.store.store import Store

T0 = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()  # a Tuesday afternoon in the US

# -- the pure choice ------------------------------------------------------------------------------

TRUNKS = ("carrier", "backup")

servers_st = st.lists(
    st.builds(
        ServerView,
        name=st.sampled_from("abcdefgh"),
        up=st.booleans(),
        lines_in_use=st.integers(0, 40),
        max_lines=st.none() | st.integers(1, 30),
        trunks=st.frozensets(st.sampled_from(TRUNKS), max_size=2),
        free_agents=st.integers(0, 5),
    ),
    max_size=6,
    unique_by=lambda s: s.name,
)


@given(servers_st, st.sampled_from(TRUNKS))
def test_the_chosen_server_is_up_carries_the_trunk_and_has_a_line_free(servers: list[ServerView], trunk: str) -> None:
    chosen = choose(servers, trunk)
    fit = [s for s in servers if s.up and s.carries(trunk) and (s.max_lines is None or s.lines_in_use < s.max_lines)]
    if not fit:
        assert chosen is None
        assert room(servers, trunk) in (0, None) and not any(s.up and s.carries(trunk) and s.max_lines is None
                                                             for s in servers)
        return
    by_name = {s.name: s for s in servers}
    assert chosen is not None
    server = by_name[chosen]
    assert server in fit
    # Where a free agent waits first; among those, the most free lines.
    assert server.free_agents == max(s.free_agents for s in fit)
    # A call sent elsewhere after a refusal goes only where an agent is free for it.
    redirected = choose(servers, trunk, agent_needed=True)
    assert (redirected is None) == all(s.free_agents <= 0 for s in fit)
    assert redirected is None or by_name[redirected].free_agents > 0


@given(servers_st, st.sampled_from(TRUNKS), st.integers(1, 80))
def test_calls_placed_one_by_one_never_go_over_a_server_line_limit(
    servers: list[ServerView], trunk: str, calls: int
) -> None:
    import dataclasses

    start = {s.name: s.lines_in_use for s in servers}
    views = list(servers)
    budget = room(views, trunk)
    placed = 0
    for _ in range(calls):
        chosen = choose(views, trunk)
        if chosen is None:
            break
        placed += 1
        views = [dataclasses.replace(v, lines_in_use=v.lines_in_use + 1) if v.name == chosen else v for v in views]
    for before, after in zip(servers, views):
        if after.lines_in_use > before.lines_in_use:
            assert after.up and after.carries(trunk)
            assert after.max_lines is None or after.lines_in_use <= after.max_lines
        assert after.lines_in_use >= start[after.name]
    # The room the runners are told is exactly what the servers take, when every one has a limit.
    if budget is not None:
        assert placed == min(calls, budget)


def test_free_agents_then_free_lines_then_the_config_order() -> None:
    a = ServerView("a", up=True, lines_in_use=0, max_lines=10)
    b = ServerView("b", up=True, lines_in_use=0, max_lines=20)
    assert choose([a, b], "carrier") == "b"  # more lines free
    assert choose([a, ServerView("b", True, 0, 10)], "carrier") == "a"  # a tie: the first listed
    assert choose([ServerView("a", True, 0, 10, free_agents=1), b], "carrier") == "a"  # an agent waits on a
    assert choose([ServerView("a", False, 0, None, free_agents=9), b], "carrier") == "b"  # a is down
    assert choose([a, ServerView("b", True, 0, None, frozenset({"backup"}))], "carrier") == "a"
    assert choose([], "carrier") is None


async def test_calls_go_where_agents_are_free_counting_the_calls_already_on_their_way() -> None:
    """Two free agents on a, one on b, three calls at once: two go to a, one to b (not three to a)."""
    from dialer.config.models import AmiServer
    from dialer.core import records as r
    from dialer.core.agents import AgentBoard
    from dialer.core.attempt import Attempt
    from dialer.daemon.pbx_pool import PbxPool

    sims = {name: SimulatedPbx(random.Random(n), {}).logged_in() for n, name in enumerate("ab")}
    board = AgentBoard({"agent1": "PJSIP/agent1", "agent2": "PJSIP/agent2", "agent3": "PJSIP/agent3"})
    for interface in ("PJSIP/agent1", "PJSIP/agent2", "PJSIP/agent3"):
        board.apply(r.MemberStatus(at=0, queue="sales", interface=interface, status=1, paused=False, in_call=False))
    attempts: dict[str, Attempt] = {}
    written: list[tuple[str, str]] = []

    async def record(attempt_id: str, server: str) -> None:
        written.append((attempt_id, server))

    pool = PbxPool(sims, [AmiServer(name=n, username="dialer", secret="x") for n in "ab"],
                   agent_servers={"PJSIP/agent1": "a", "PJSIP/agent2": "a", "PJSIP/agent3": "b"},
                   board=board, live=lambda: [("PJSIP/{number}@carrier", attempts)], record_server=record)
    for n in range(3):
        attempt_id = f"{n:032x}"
        attempts[attempt_id] = Attempt(id=attempt_id, lead_id=n, phone=f"+1212555000{n}", queue="sales",
                                       dialed_at=T0, ring_timeout=30)
        await pool.originate(attempt_id=attempt_id, channel=f"PJSIP/+1212555000{n}@carrier", context="c",
                             exten="s", timeout_ms=30000, caller_id="+15550100", variables={})
    assert sorted(server for _, server in written) == ["a", "a", "b"]
    assert [len(sims[name].originated) for name in "ab"] == [2, 1]
    # b goes away: nothing more is sent there, and with a full of its agents' calls, a takes the next.
    pool.going_away("b")
    attempts["f" * 32] = Attempt(id="f" * 32, lead_id=9, phone="+12125550009", queue="sales", dialed_at=T0,
                                 ring_timeout=30)
    await pool.originate(attempt_id="f" * 32, channel="PJSIP/+12125550009@carrier", context="c", exten="s",
                         timeout_ms=30000, caller_id="+15550100", variables={})
    assert written[-1] == ("f" * 32, "a") and len(sims["b"].originated) == 1


async def test_a_call_refused_by_a_server_going_down_moves_only_where_an_agent_is_free_for_it() -> None:
    from dialer.ami.errors import AmiActionFailed
    from dialer.config.models import AmiServer
    from dialer.core import records as r
    from dialer.core.agents import AgentBoard
    from dialer.core.attempt import Attempt
    from dialer.daemon.pbx_pool import PbxPool

    sims = {name: SimulatedPbx(random.Random(n), {}).logged_in() for n, name in enumerate("ab")}
    # b is shutting down before its Shutdown event reached the daemon: it refuses every Originate.
    sims["b"].refusal = lambda number: "Asterisk is shutting down"
    board = AgentBoard({"agent1": "PJSIP/agent1", "agent3": "PJSIP/agent3"})
    for interface in ("PJSIP/agent1", "PJSIP/agent3"):
        board.apply(r.MemberStatus(at=0, queue="sales", interface=interface, status=1, paused=False, in_call=False))
    attempts: dict[str, Attempt] = {}

    async def record(attempt_id: str, server: str) -> None:
        pass

    pool = PbxPool(sims, [AmiServer(name=n, username="dialer", secret="x") for n in "ab"],
                   agent_servers={"PJSIP/agent1": "a", "PJSIP/agent3": "b"},
                   board=board, live=lambda: [("PJSIP/{number}@carrier", attempts)], record_server=record)

    async def place(n: int) -> None:
        attempt_id = f"{n:032x}"
        attempts[attempt_id] = Attempt(id=attempt_id, lead_id=n, phone=f"+1212555000{n}", queue="sales",
                                       dialed_at=T0, ring_timeout=30)
        await pool.originate(attempt_id=attempt_id, channel=f"PJSIP/+1212555000{n}@carrier", context="c",
                             exten="s", timeout_ms=30000, caller_id="+15550100", variables={})

    await place(0)  # agent1's call: to a
    # agent3's call goes to b, is refused, and a has no agent free for it: not sent anywhere
    # (the runner makes it not_sent, the lead due again), never left waiting in a's queue.
    with pytest.raises(AmiActionFailed, match="shutting down"):
        await place(1)
    assert [len(sims[name].originated) for name in "ab"] == [1, 1]
    assert "b" in pool.shutting_down and board.agent("PJSIP/agent3").queues == set()  # type: ignore[union-attr]


# -- the config -------------------------------------------------------------------------------------


def _config(tmp_path: Path, ami: str, agents: str = "") -> Path:
    path = tmp_path / "dialer.yaml"
    path.write_text(f"ami:\n{ami}database: {{url: 'sqlite+aiosqlite:///{tmp_path}/d.db'}}\n{agents}")
    return path


def test_servers_with_their_lines_trunks_and_agents_load(tmp_path: Path) -> None:
    config = load_config(_config(
        tmp_path,
        "  - {name: a, username: dialer, secret: x, max_lines: 30, trunks: [carrier]}\n"
        "  - {name: b, host: 10.0.0.2, username: dialer, secret: x}\n",
        "agents:\n"
        "  - {id: agent1, interface: PJSIP/agent1, queues: [sales]}\n"
        "  - {id: agent2, interface: PJSIP/agent2, queues: [sales], server: b}\n",
    ))
    assert [(s.name, s.max_lines, s.trunks) for s in config.ami] == [("a", 30, ["carrier"]), ("b", None, [])]
    assert [config.server_of(a) for a in config.agents] == ["a", "b"]


@pytest.mark.parametrize(
    ("ami", "agents", "said"),
    [
        ("  - {name: a, username: dialer, secret: x}\n  - {name: a, username: dialer, secret: x}\n", "",
         "AMI server name 'a' appears twice"),
        ("  - {username: dialer, secret: x}\n  - {username: dialer, secret: x}\n", "",
         "AMI server name 'default' appears twice"),
        ("  - {name: a, username: dialer, secret: x}\n",
         "agents:\n  - {id: agent1, interface: PJSIP/agent1, queues: [sales], server: b}\n",
         "'b' is not a server under ami:"),
        ("  - {name: a, username: dialer, secret: x}\n  - {name: b, username: dialer, secret: x}\n",
         "agents:\n  - {id: agent1, interface: PJSIP/agent1, queues: [sales]}\n"
         "  - {id: agent1b, interface: PJSIP/Agent1, queues: [sales], server: b}\n",
         "agent interface 'pjsip/agent1' appears twice"),
        ("  - {name: 'a b', username: dialer, secret: x}\n", "", "name"),
        ("  - {name: a, username: dialer, secret: x, max_lines: 0}\n", "", "max_lines"),
    ],
    ids=["duplicate-name", "two-unnamed", "unknown-server", "same-phone-on-two-servers", "bad-name", "no-lines"],
)
def test_a_server_config_error_names_file_line_and_field(tmp_path: Path, ami: str, agents: str, said: str) -> None:
    path = _config(tmp_path, ami, agents)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert said in text
    assert f"{path}:" in text


# -- the daemon on two simulated servers ----------------------------------------------------------


async def test_calls_spread_over_two_servers_one_restarts_and_the_other_carries_on(tmp_path: Path) -> None:
    phones = [f"+1212555{n:04d}" for n in range(16)]
    customers = lambda number: Customer("answer", after=0.1, talk=0.4)  # noqa: E731
    # Each server knows only the phones registered on it.
    sims = {
        "a": SimulatedPbx(random.Random(3), customers, agents={"PJSIP/agent1": 0.05, "PJSIP/agent2": 0.05},
                          system_name="a"),
        "b": SimulatedPbx(random.Random(4), customers, agents={"PJSIP/agent3": 0.05, "PJSIP/agent4": 0.05},
                          system_name="b"),
    }
    config_path = tmp_path / "dialer.yaml"
    config_path.write_text(
        "ami:\n"
        "  - {name: a, username: dialer, secret: x, ping_interval: 0.5, action_timeout: 1, max_lines: 2}\n"
        "  - {name: b, username: dialer, secret: x, ping_interval: 0.5, action_timeout: 1, max_lines: 2}\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/sim.db'}}\n"
        "tick_interval: 0.05\n"
        "agents:\n"
        "  - {id: agent1, interface: PJSIP/agent1, queues: [sales]}\n"
        "  - {id: agent2, interface: PJSIP/agent2, queues: [sales], server: a}\n"
        "  - {id: agent3, interface: PJSIP/agent3, queues: [sales], server: b}\n"
        "  - {id: agent4, interface: PJSIP/agent4, queues: [sales], server: b}\n"
    )
    campaign = Campaign(name="sim", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 8},
                        retries={"interrupted": {"delay_minutes": 0, "max_attempts": 3},
                                 "refused": {"delay_minutes": 0, "max_attempts": 5}})
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    finally:
        await store.close()
    loop = asyncio.get_running_loop()
    started = loop.time()
    daemon = Daemon(load_config(config_path), {"sim": campaign}, until_done=True, drain_timeout=5,
                    clock=lambda: T0 + loop.time() - started,
                    pbx_factory=lambda server, clock: sims[server.name].attach(server, clock))
    most_lines: dict[str, int] = {"a": 0, "b": 0}
    restart_at: list[float] = []

    async def watch_lines() -> None:
        while True:
            for name, sim in sims.items():
                most_lines[name] = max(most_lines[name], sum(1 for c in sim._calls.values() if c.phase != "done"))
            await asyncio.sleep(0.005)

    async def restart_b_once_it_bridges() -> None:
        while not sims["b"].bridged:
            await asyncio.sleep(0.01)
        restart_at.append(loop.time())
        sims["b"].restart(down_for=0.5)

    watcher = asyncio.create_task(watch_lines())
    fault = asyncio.create_task(restart_b_once_it_bridges())
    try:
        await asyncio.wait_for(daemon.serve(), 60)
        await fault
    finally:
        watcher.cancel()
    a, b = sims["a"], sims["b"]
    assert b.counters["restarts"] == 1 and b.reconnects >= 1 and a.reconnects == 0
    # Both carried calls, neither over its line limit, and every call reached one carrier once.
    assert a.dial_log and b.dial_log
    assert most_lines["a"] <= 2 and most_lines["b"] <= 2
    ids = [d.attempt_id for d in a.dial_log + b.dial_log]
    assert len(ids) == len(set(ids))
    # b's agents were not counted free while b was away: no call sent to a waited there for them.
    assert not a.abandoned
    # An agent is only rung by its own server.
    assert set(a.bridged) <= {"PJSIP/agent1", "PJSIP/agent2"} and set(b.bridged) <= {"PJSIP/agent3", "PJSIP/agent4"}
    # While b was down, a went on dialing; b took calls again once back.
    down_from, back_by = restart_at[0], restart_at[0] + 1.6
    assert any(down_from < d.at - T0 + started < back_by for d in a.dial_log) or any(
        bridge.start > down_from for v in a.bridged.values() for bridge in v
    )
    assert any(bridge.start > back_by for v in b.bridged.values() for bridge in v)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        attempts = await store.attempts(campaign_id)
        final = {lead["phone"]: (lead["state"], lead["final_outcome"]) for lead in await store.leads(campaign_id)}
        left_open = await open_attempts(store)
    finally:
        await store.close()
    # Every lead accounted for, every attempt ended, each one on the server that dialed it.
    assert final == {p: ("done", "answered") for p in phones}
    assert not left_open and all(row["state"] == "ended" for row in attempts)
    on = {d.attempt_id: name for name, sim in sims.items() for d in sim.dial_log}
    for row in attempts:
        if row["id"] in on:
            assert row["server"] == on[row["id"]], row
    # Only b's calls were cut by b's restart: a's all ended as answered by their customer.
    cut = [row for row in attempts if row["outcome"] == "interrupted" or row["cut_short"]]
    assert cut and {row["server"] for row in cut} == {"b"}
    assert all(row["outcome"] == "answered" and not row["cut_short"] for row in attempts if row["server"] == "a")


async def test_a_server_whose_connection_drops_has_its_calls_adopted_on_return_and_the_other_is_not_asked(
    tmp_path: Path,
) -> None:
    phones = [f"+1212555{n:04d}" for n in range(10)]
    sims = {
        "a": SimulatedPbx(random.Random(7), lambda number: Customer("answer", after=0.1, talk=0.3),
                          agents={"PJSIP/agent1": 0.05}, system_name="a"),
        # b's calls last longer than its connection is away: still up when it logs in again.
        "b": SimulatedPbx(random.Random(8), lambda number: Customer("answer", after=0.1, talk=2.5),
                          agents={"PJSIP/agent2": 0.05}, system_name="b"),
    }
    config_path = tmp_path / "dialer.yaml"
    config_path.write_text(
        "ami:\n"
        "  - {name: a, username: dialer, secret: x, ping_interval: 0.5, action_timeout: 1}\n"
        "  - {name: b, username: dialer, secret: x, ping_interval: 0.5, action_timeout: 1}\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/sim.db'}}\n"
        "tick_interval: 0.05\n"
        "agents:\n"
        "  - {id: agent1, interface: PJSIP/agent1, queues: [sales]}\n"
        "  - {id: agent2, interface: PJSIP/agent2, queues: [sales], server: b}\n"
    )
    campaign = Campaign(name="sim", type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", dialing={"max_lines": 2})
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        campaign_id = await store.sync_campaign(campaign.name, campaign.type.value)
        await store.import_leads(campaign_id, [LeadRow(line=i + 2, phone=p) for i, p in enumerate(phones)])
    finally:
        await store.close()
    loop = asyncio.get_running_loop()
    started = loop.time()
    daemon = Daemon(load_config(config_path), {"sim": campaign}, until_done=True, drain_timeout=5,
                    clock=lambda: T0 + loop.time() - started,
                    pbx_factory=lambda server, clock: sims[server.name].attach(server, clock))
    judged: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}

    async def drop_b_while_it_bridges() -> None:
        while not sims["b"].bridged:
            await asyncio.sleep(0.01)
        for name, reconciler in daemon.reconcilers.items():
            original = reconciler.reconcile

            async def counted(*args: Any, name: str = name, original: Any = original, **kwargs: Any) -> Any:
                summary = await original(*args, **kwargs)
                judged[name].append((summary.adopted, summary.closed))
                return summary

            reconciler.reconcile = counted  # type: ignore[method-assign]
        sims["b"].drop_connection()

    fault = asyncio.create_task(drop_b_while_it_bridges())
    await asyncio.wait_for(daemon.serve(), 60)
    await fault
    # b's call was followed again after b's login; a was never asked about it.
    assert judged["a"] == [] and judged["b"] and judged["b"][0][0] >= 1, judged
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/sim.db")
    try:
        attempts = await store.attempts(campaign_id)
        final = {lead["phone"]: (lead["state"], lead["final_outcome"]) for lead in await store.leads(campaign_id)}
    finally:
        await store.close()
    assert final == {p: ("done", "answered") for p in phones}
    assert all(row["outcome"] == "answered" and not row["cut_short"] for row in attempts)
    assert {row["server"] for row in attempts} == {"a", "b"}
    assert len(attempts) == len(phones)  # nothing dialed twice


async def test_after_one_server_logs_in_only_its_calls_are_judged(tmp_path: Path) -> None:
    """b's channel list is empty after its restart: b's open call is closed, a's stays open."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/r.db")
    try:
        campaign_id = await store.sync_campaign("sim", "telemarketing")
        await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550001"),
                                               LeadRow(line=3, phone="+12125550002")])
        leases = await store.lease_due_leads(campaign_id, 2, datetime.fromtimestamp(T0, UTC))
        on_a, on_b = leases
        await store.update_attempt(on_a.attempt_id, server="a")
        await store.update_attempt(on_b.attempt_id, server="b")
        sim_b = SimulatedPbx(random.Random(1), {}).logged_in()
        reconciler = Reconciler(store, sim_b, lambda: {}, lambda: T0 + 60, server="b",
                                carrier_of=lambda attempt_id, recorded: recorded or "a")
        summary = await reconciler.reconcile(cutoff=T0 + 30)
        assert (summary.adopted, summary.closed) == (0, 1)
        assert [(o.id, o.server) for o in await open_attempts(store)] == [(on_a.attempt_id, "a")]
        # A row from a one-server run (no server written) is the first server's, never b's.
        reconciler_a = Reconciler(store, SimulatedPbx(random.Random(2), {}).logged_in(), lambda: {},
                                  lambda: T0 + 60, server="a", carrier_of=lambda attempt_id, recorded: recorded or "a")
        assert (await reconciler_a.reconcile(cutoff=T0 + 30)).closed == 1
        assert await open_attempts(store) == []
    finally:
        await store.close()
