"""Dedicated agents lent to the general queue while no key customer needs them
(issue 16 item 4): the pure rules, then the daemon applying them against a fake
AMI that answers QueueAdd/QueueRemove with the member events Asterisk sends."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

from dialer.ami.errors import AmiActionFailed
from dialer.ami.events import to_record
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import State
from dialer.core.lending import LendMoves, TeamMember, agents_needed, claimable, lend_moves
from dialer.store.store import Store
from test_tier_dialing import NOW, FakeAmi, Lab, board_with, lab_with, store  # noqa: F401

WAIT = {"routing": {"key": {"queue": "key-accounts", "fallback_priority": 20, "wait_for_dedicated": True,
                            "lend_ahead": 0}}}


def member(agent: str, *, lent: bool, free: bool = True) -> TeamMember:
    return TeamMember(agent, lent=lent, free=free)


def test_nobody_due_the_whole_team_is_lent() -> None:
    team = [member("k1", lent=False), member("k2", lent=False, free=False)]
    assert lend_moves(team, needed=0) == LendMoves(lend=("k1", "k2"))
    assert not lend_moves([member("k1", lent=True)], needed=0)


def test_a_key_customer_due_recalls_a_free_agent_first() -> None:
    team = [member("busy", lent=True, free=False), member("idle", lent=True)]
    assert lend_moves(team, needed=1) == LendMoves(recall=("idle",))
    # Both needed: the busy one too, claimable once its general call and wrap-up end.
    assert lend_moves(team, needed=2).recall == ("idle", "busy")
    # A lent agent is never counted on by a key call.
    assert claimable(team) == 0


def test_only_the_agents_beyond_the_need_are_lent() -> None:
    team = [member("k1", lent=False), member("k2", lent=False), member("k3", lent=False, free=False)]
    # One key customer due: one free agent kept, the other free one lent; the one on
    # a (key) call stays out of the general queue, it may be the next one needed.
    assert lend_moves(team, needed=1) == LendMoves(lend=("k2",))
    assert claimable(team) == 2


def test_a_paused_agent_is_never_lent() -> None:
    # QueueAdd starts the new membership unpaused: lending would end the pause.
    team = [TeamMember("k1", lent=False, free=False, paused=True), member("k2", lent=False)]
    assert lend_moves(team, needed=0) == LendMoves(lend=("k2",))


def test_lending_switched_off_recalls_everyone_lent() -> None:
    team = [member("k1", lent=True), member("k2", lent=False)]
    assert lend_moves(team, needed=0, enabled=False) == LendMoves(recall=("k1",))


def test_every_call_in_flight_and_every_lead_due_counts() -> None:
    assert agents_needed(reserved_in_flight=1, due_now=2, due_soon=1) == 4
    assert agents_needed(reserved_in_flight=0, due_now=0, due_soon=0) == 0


class AsteriskLikeAmi(FakeAmi):
    """The board hears QueueAdd/QueueRemove through the member events the PBX sends."""

    def __init__(self) -> None:
        super().__init__()
        self.board: AgentBoard | None = None
        self.fail_remove = False
        self.remove_tries: list[str] = []

    def _feed_board(self) -> None:
        assert self.board is not None
        while not self.events.empty():
            record = to_record(*self.events.get_nowait())
            if isinstance(record, (r.MemberStatus, r.MemberRemoved)):
                agent = self.board.agent(record.interface)
                if isinstance(record, r.MemberStatus) and agent is not None and agent.on_call is not None:
                    # The phone is on a call the test set on the board only, not through the PBX.
                    record = dataclasses.replace(record, in_call=True)
                self.board.apply(record)

    async def queue_add(self, queue: str, interface: str, member_name: str, penalty: int = 0) -> None:
        await super().queue_add(queue, interface, member_name, penalty)
        self._feed_board()

    async def queue_remove(self, queue: str, interface: str) -> None:
        self.remove_tries.append(interface)
        if self.fail_remove:
            raise AmiActionFailed("QueueRemove", "Unable to remove interface from queue")
        await super().queue_remove(queue, interface)
        self._feed_board()


def wire(lab: Lab, board: AgentBoard) -> AsteriskLikeAmi:
    ami = AsteriskLikeAmi()
    ami.board = board
    lab.ami = ami
    lab.runner.ami = ami
    return ami


def queue_actions(ami: FakeAmi) -> list[tuple[str, str, str]]:
    return [(a["Action"], a["Queue"], a["Interface"]) for a in ami.actions if a["Action"] in ("QueueAdd", "QueueRemove")]


def tiers_of(sent: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["variables"]["DIALER_TIER"], o["variables"]["DIALER_QUEUE"]) for o in sent]


async def test_an_idle_key_team_takes_general_calls(store: Store) -> None:
    board = board_with(key_free=2, general_free=2)
    lab = await lab_with(store, board, [(f"30{i:02d}", "standard", 1.0) for i in range(8)],
                         mode="progressive", tiers=WAIT)
    ami = wire(lab, board)
    sent = await lab.tick()
    assert queue_actions(ami) == [("QueueAdd", "sales", "PJSIP/key1"), ("QueueAdd", "sales", "PJSIP/key2")]
    # Progressive: one standard call per free agent of the general queue, the lent ones included.
    assert len(sent) == 4


async def test_a_key_customer_due_takes_an_agent_back_and_never_rides_a_lent_one(store: Store) -> None:
    board = board_with(key_free=2, general_free=0)
    lab = await lab_with(store, board, [("3001", "standard", 1.0)], mode="progressive", tiers=WAIT)
    ami = wire(lab, board)
    await lab.tick()  # nothing but a standard lead: both key agents lent, one standard call
    assert {a.id for a in board.in_queue("sales")} >= {"key1", "key2"}
    from dialer.leads.csv_import import LeadRow

    await store.import_leads(lab.runner.campaign_id, [LeadRow(line=2, phone="1001", tier="key", value=9.0)])  # type: ignore[arg-type]
    sent = await lab.tick()
    key_calls = [t for t in tiers_of(sent) if t[0] == "key"]
    # One agent recalled from the general queue; the key call goes to the dedicated
    # queue, against an agent no general customer can take.
    assert ("QueueRemove", "sales", "PJSIP/key1") in queue_actions(ami)
    assert key_calls == [("key", "key-accounts")]
    recalled = board.agent("PJSIP/key1")
    assert recalled is not None and "sales" not in recalled.queues
    # While the key customer rings, the claimed agent stays out of the general queue.
    before = len(queue_actions(ami))
    await lab.tick()
    assert ("QueueAdd", "sales", "PJSIP/key1") not in queue_actions(ami)[before:]
    # Bridged: the claim ends, the agent is lent again (its next general call waits for its wrap-up).
    key_attempt = next(o for o in sent if o["variables"]["DIALER_TIER"] == "key")["attempt_id"]
    lab.runner.attempts[key_attempt].state = State.bridged
    await lab.tick()
    assert ("QueueAdd", "sales", "PJSIP/key1") in queue_actions(ami)[before:]


async def test_an_agent_the_pbx_would_not_take_back_is_never_counted_on(store: Store) -> None:
    board = board_with(key_free=2, general_free=0)
    lab = await lab_with(store, board, [("3001", "standard", 1.0)], mode="progressive", tiers=WAIT)
    ami = wire(lab, board)
    await lab.tick()
    ami.fail_remove = True
    from dialer.leads.csv_import import LeadRow

    await store.import_leads(lab.runner.campaign_id, [LeadRow(line=2, phone="1001", tier="key", value=9.0)])  # type: ignore[arg-type]
    sent = await lab.tick()
    # Still lent: a general customer could take them, so no key call is placed.
    assert [t for t in tiers_of(sent) if t[0] == "key"] == []
    # And the PBX is not asked again every tick.
    tries = len(ami.remove_tries)
    await lab.tick(NOW + timedelta(seconds=10))
    assert len(ami.remove_tries) == tries


async def test_lending_off_keeps_the_old_contract(store: Store) -> None:
    board = board_with(key_free=2, general_free=2)
    off = {"routing": {"key": {**WAIT["routing"]["key"], "lend_to_general": False}}}
    lab = await lab_with(store, board, [(f"30{i:02d}", "standard", 1.0) for i in range(8)],
                         mode="progressive", tiers=off)
    ami = wire(lab, board)
    assert len(await lab.tick()) == 2
    assert queue_actions(ami) == []


async def test_an_agent_who_leaves_the_team_is_taken_out_of_the_general_queue(store: Store) -> None:
    board = board_with(key_free=2, general_free=2)
    lab = await lab_with(store, board, [("3001", "standard", 1.0)], mode="progressive", tiers=WAIT)
    ami = wire(lab, board)
    await lab.tick()
    assert ("QueueAdd", "sales", "PJSIP/key2") in queue_actions(ami)
    # key2 logs out of key-accounts (the API removes the queues of its config only).
    board.apply(r.MemberRemoved(at=0, queue="key-accounts", interface="PJSIP/key2"))
    await lab.tick(NOW + timedelta(seconds=5))
    assert queue_actions(ami)[-1] == ("QueueRemove", "sales", "PJSIP/key2")
    agent = board.agent("PJSIP/key2")
    assert agent is not None and not agent.queues


def test_in_the_simulator_key_customers_never_wait_past_fallback_nor_abandon() -> None:
    from dataclasses import replace

    from dialer.simulation.dedicated import TeamScenario, simulate_team

    # The real PBX case (2 of 8 agents on key accounts), and a day when key customers crowd in.
    for scenario in (TeamScenario(hours=2, seed=3), TeamScenario(hours=2, seed=4, key_due_per_hour=40)):
        before = simulate_team(replace(scenario, lend=False))
        after = simulate_team(scenario)
        for run in (before, after):
            assert run.key_answered > 0, run
            assert run.key_abandoned == 0, run
            assert run.key_waits_past_fallback == 0, run
            assert run.key_longest_wait <= scenario.fallback_after, run
            assert run.key_served_by_general == 0, run
        assert before.general_served_by_key == 0
        if scenario.key_due_per_hour < 10:
            assert after.general_served_by_key > 0, after  # idle between key calls: lent
        else:
            assert after.key_occupancy > 0.9, after  # always needed: kept for the key accounts


async def test_campaigns_sharing_a_team_do_not_undo_each_others_recall(store: Store, tmp_path: Path) -> None:
    board = board_with(key_free=2, general_free=0)
    other_store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/other.db")
    try:
        # Campaign A has a key customer due; campaign B (same team, same general queue) has none.
        a = await lab_with(store, board, [("1001", "key", 9.0)], mode="progressive", tiers=WAIT)
        b = await lab_with(other_store, board, [("3001", "standard", 1.0)], mode="progressive", tiers=WAIT)
        ami_a, ami_b = wire(a, board), wire(b, board)
        for agent in ("PJSIP/key1", "PJSIP/key2"):  # both lent before A's key customer fell due
            board.apply(r.MemberStatus(at=0, queue="sales", interface=agent, status=1, paused=False, in_call=False))
        await b.tick()
        await a.tick()  # A takes one agent back and dials its key customer
        assert ("QueueRemove", "sales", "PJSIP/key1") in queue_actions(ami_a)
        await b.tick(NOW + timedelta(seconds=3))
        # B sees A's need: it does not lend the recalled agent back.
        assert ("QueueAdd", "sales", "PJSIP/key1") not in queue_actions(ami_b)
    finally:
        await other_store.close()
