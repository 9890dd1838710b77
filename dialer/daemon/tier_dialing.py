"""One campaign's tier work at dial time: which leads to lease per tier, the CRM
lookup, the contact policy, the routing of each call and its screen pop.

The campaign runner calls in here at a few points (see `CampaignRunner.tick`);
the decisions are the pure core's (`dialer.core.routing`,
`dialer.core.tier_pacing`, `dialer.core.contact_policy`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from dialer.ami.errors import AmiError
from dialer.ami.values import header_text, variable_text
from dialer.pbx.protocol import Pbx
from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS, TierConfig, contact_rules, ladder
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import Attempt, State
from dialer.core.contact_policy import ContactRule, next_allowed, revisit_at
from dialer.core.lending import TeamMember, agents_needed, lend_moves
from dialer.core.pacing import PacingSnapshot
from dialer.core.routing import QueueAgents, Routing, route
from dialer.core.tier_pacing import (
    Claims,
    ReservedRoom,
    general_free_for_pacing,
    reserved_room,
)
from dialer.core.tiers import TierLadder
from dialer.crm_client import CrmClient
from dialer.store import tier_store
from dialer.store.lead_outcomes import release_unsent
from dialer.store.lease_tiers import LeaseTiers
from dialer.store.store import Lease, Store

log = structlog.get_logger("dialer.tiers")

# Campaigns sharing a dedicated team decide together: one campaign's key customer
# due must not be undone by another campaign lending the team back on its tick.
# Per board (one per daemon): dedicated queue -> runner -> (agents needed, lending on, at).
_TEAM_NEEDS: weakref.WeakKeyDictionary[AgentBoard, dict[str, dict[int, tuple[int, bool, float]]]] = (
    weakref.WeakKeyDictionary()
)
_NEED_FRESH = 5.0
"""Seconds a campaign's need counts: a paused or removed campaign's lapses."""

_LIVE = (State.dialing, State.ringing, State.up)


@dataclass(frozen=True)
class DialInfo:
    tier: str
    routing: Routing
    customer: tier_store.CustomerInfo | None
    reserved: bool


def screen_pop_event(
    *, attempt: str, campaign: str, agent_id: str, interface: str, queue: str, tier: str, customer: str, name: str,
    value: float | None,
) -> dict[str, str]:
    """The AMI UserEvent DialerScreenPop for a call ringing an agent (outbound or inbound)."""
    fields = {
        "Action": "UserEvent",
        "UserEvent": "DialerScreenPop",
        "Attempt": attempt,
        "Campaign": campaign,
        "Agent": agent_id,
        "Interface": interface,
        "Queue": queue,
        "Tier": tier,
        "Customer": customer,
        "Name": name,
        "Value": "" if value is None else str(value),
    }
    # The customer's name and ids are lead data: made fit for AMI, never refused.
    return {k: header_text(v) for k, v in fields.items()}


class TierDialing:
    def __init__(
        self,
        store: Store,
        board: AgentBoard,
        tiers: list[TierConfig] | None = None,
    ) -> None:
        self.store = store
        self.board = board
        self.set_ladder(tiers or list(DEFAULT_TIERS))
        self._crm: CrmClient | None = None
        self._crm_config: Any = None
        self._claims: dict[str, str] = {}  # attempt id -> "dedicated" | "general"
        self._expected_general = 0  # reserved leases taken this tick, not yet prepared
        self._held = 0  # general agents kept from the pacing for reserved leads waiting
        self.calls: dict[str, DialInfo] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._moving: dict[tuple[str, str], tuple[bool, float]] = {}  # (queue, agent) -> (lend?, sent at)
        self._lent: set[tuple[str, str]] = set()  # (general queue, agent) this daemon added

    def set_ladder(self, tiers: list[TierConfig]) -> None:
        self.ladder: TierLadder = ladder(tiers)
        self.contact: dict[str, ContactRule] = contact_rules(tiers)

    # -- pacing per tier -------------------------------------------------------

    def claims(self, attempts: Mapping[str, Attempt]) -> Claims:
        """Claims on agents held by reserved-tier calls not yet bridged (others are dropped)."""
        for attempt_id in [a for a in self._claims if a not in attempts or attempts[a].state not in _LIVE]:
            del self._claims[attempt_id]
        for attempt_id in [a for a in self.calls if a not in attempts]:
            del self.calls[attempt_id]  # an Originate Asterisk refused: the runner dropped it
        pools = list(self._claims.values())
        return Claims(dedicated=pools.count("dedicated"), general=pools.count("general"))

    def reserved(self, campaign: Campaign) -> frozenset[str]:
        return campaign.tiers.reserved_tiers(self.ladder)

    def lease_tiers(self, campaign: Campaign, *, reserved: bool) -> LeaseTiers:
        tiers = self.reserved(campaign)
        ranks = self.ladder.ranks()
        if reserved:
            return LeaseTiers(ranks, only=tiers, order_by=campaign.tiers.order_by)
        return LeaseTiers(ranks, exclude=tiers, order_by=campaign.tiers.order_by)

    def _dedicated_queues(self, campaign: Campaign) -> set[str]:
        return {rule.queue for t, rule in campaign.tiers.routing.items() if rule.queue and t in self.reserved(campaign)}

    async def plan(
        self, campaign: Campaign, campaign_id: int, attempts: Mapping[str, Attempt], lines_left: int, now: float
    ) -> ReservedRoom:
        """Agents free for new reserved-tier calls now.

        When there are none while reserved leads are due, one general agent is
        kept out of the other tiers' pacing: otherwise a predictive campaign,
        always counting on every free agent, would starve its key accounts.
        """
        room = self.room(campaign, attempts, lines_left)
        self._held = 0
        if room.total == 0 and not room.borrows_general:
            return room
        # A read first: most ticks of most campaigns have no reserved lead due, and
        # the lease itself is a write transaction.
        due = await tier_store.due_leads(
            self.store, campaign_id, datetime.fromtimestamp(now, UTC), self.lease_tiers(campaign, reserved=True)
        )
        if not due:
            # The room stays for a lease whose CRM tier turns out to be reserved.
            return replace(room, due=False)
        if room.total == 0 and lines_left > 0:
            self._held = 1
        return room

    def room(self, campaign: Campaign, attempts: Mapping[str, Attempt], lines_left: int) -> ReservedRoom:
        """Agents free for new reserved-tier calls now."""
        team = {a.id for q in self._dedicated_queues(campaign) for a in self.board.in_queue(q)}
        # A dedicated agent lent to the general queue is never counted on: a general
        # customer could take them between the Originate and the answer.
        dedicated = {
            a.id
            for q in self._dedicated_queues(campaign)
            for a in self.board.in_queue(q)
            if a.free and campaign.queue not in a.queues and not self._lent_elsewhere(campaign, a.queues)
        }
        general = {a.id for a in self.board.in_queue(campaign.queue) if a.free} - team
        reserved = self.reserved(campaign)
        waits = any(
            rule.wait_for_dedicated and rule.queue and self.board.in_queue(rule.queue)
            for tier, rule in campaign.tiers.routing.items()
            if tier in reserved
        )
        claims = self.claims(attempts)
        return reserved_room(
            dedicated_free=len(dedicated),
            general_free=len(general),
            claims=claims,
            lines_left=lines_left,
            paced_in_flight=sum(1 for a in attempts.values() if a.state in _LIVE and a.id not in self._claims),
            borrow_general=not waits,
        )

    def _lent_elsewhere(self, campaign: Campaign, queues: set[str]) -> bool:
        reserved = self.reserved(campaign)
        return any(
            (rule.fallback_queue or campaign.queue) in queues
            for tier, rule in campaign.tiers.routing.items()
            if tier in reserved and rule.queue
        )

    async def lend(
        self, ami: Pbx, campaign: Campaign, campaign_id: int, attempts: Mapping[str, Attempt], now: float
    ) -> None:
        """Lend idle dedicated agents to the general queue, or take them back (`dialer.core.lending`)."""
        reserved = self.reserved(campaign)
        rules = [(t, r) for t, r in campaign.tiers.routing.items() if t in reserved and r.queue]
        if not rules:
            return
        in_flight = self.claims(attempts).dedicated
        for tier, rule in rules:
            assert rule.queue is not None
            general = rule.fallback_queue or campaign.queue
            if general == rule.queue:
                continue
            members = self.board.in_queue(rule.queue)
            team = [TeamMember(a.id, lent=general in a.queues, free=a.free, paused=a.paused) for a in members]
            needed = 0
            if rule.lend_to_general and team:
                tiers = LeaseTiers(self.ladder.ranks(), only=frozenset({tier}), order_by=campaign.tiers.order_by)
                moment = datetime.fromtimestamp(now, UTC)
                due_now = await tier_store.count_due(self.store, campaign_id, moment, tiers, at_most=len(team))
                due_soon = 0
                if rule.lend_ahead and due_now < len(team):
                    ahead = moment + timedelta(seconds=rule.lend_ahead)
                    due_soon = await tier_store.count_due(self.store, campaign_id, ahead, tiers, at_most=len(team))
                    due_soon -= due_now
                needed = agents_needed(reserved_in_flight=in_flight, due_now=due_now, due_soon=due_soon)
            shared = _TEAM_NEEDS.setdefault(self.board, {}).setdefault(rule.queue, {})
            shared[id(self)] = (needed, rule.lend_to_general, now)
            fresh = [v for v in shared.values() if now - v[2] < _NEED_FRESH]
            needed = sum(v[0] for v in fresh)
            moves = lend_moves(team, needed=needed, enabled=all(v[1] for v in fresh))
            by_id = {a.id: a for a in members}
            for agent_id in moves.lend:
                await self._move(ami, general, by_id[agent_id].interface, agent_id, lend=True, now=now)
            for agent_id in moves.recall:
                await self._move(ami, general, by_id[agent_id].interface, agent_id, lend=False, now=now)
            # An agent we lent who left the team (logged out of the dedicated queue) is
            # not left in the general queue behind their back.
            for agent in self.board.in_queue(general):
                if (general, agent.id) in self._lent and agent.id not in by_id:
                    await self._move(ami, general, agent.interface, agent.id, lend=False, now=now)

    async def _move(self, ami: Pbx, queue: str, interface: str, agent_id: str, *, lend: bool, now: float) -> None:
        sent = self._moving.get((queue, agent_id))
        if sent is not None and sent[0] == lend and now - sent[1] < 2.0:
            return  # Asterisk's member event is on its way
        self._moving[(queue, agent_id)] = (lend, now)
        try:
            if lend:
                # Penalty 1: the general agents are rung first, the lent one when they are all busy.
                await ami.queue_add(queue, interface, agent_id, 1)
            else:
                await ami.queue_remove(queue, interface)
        except AmiError as exc:
            # Not lent stays safe: a failed add only costs occupancy; a failed
            # recall leaves the agent lent, hence never claimed for a key call.
            log.warning("agent.lend_failed", queue=queue, agent=agent_id, lend=lend, error=str(exc))
            # A queue Asterisk does not know stays unknown for a while: retry in 30 s, not every tick.
            self._moving[(queue, agent_id)] = (lend, now + 28.0)
            return
        if lend:
            self._lent.add((queue, agent_id))
        else:
            self._lent.discard((queue, agent_id))
        log.info("agent.lent" if lend else "agent.recalled", queue=queue, agent=agent_id)

    def leased_reserved(self, count: int, room: ReservedRoom) -> None:
        """Reserved leases were just taken: the general agents they will claim are not the pacing's."""
        self._expected_general = max(0, count - room.dedicated_free)

    def adjust_snapshot(self, snapshot: PacingSnapshot, attempts: Mapping[str, Attempt], now: float) -> PacingSnapshot:
        """What the predictive pacing of the other tiers sees: reserved calls and their agents left out."""
        claims = self.claims(attempts)
        claims = Claims(claims.dedicated, claims.general + self._expected_general + self._held)
        if not self._claims and not self._expected_general and not self._held:
            return snapshot
        claimed = [attempts[a] for a in self._claims]
        return replace(
            snapshot,
            agents_free=general_free_for_pacing(snapshot.agents_free, claims),
            ringing=tuple(
                max(0.0, now - a.dialed_at)
                for a in attempts.values()
                if a.state in (State.dialing, State.ringing) and a.id not in self._claims
            ),
            waiting_for_agent=max(0, snapshot.waiting_for_agent - sum(1 for a in claimed if a.state is State.up)),
        )

    # -- before the Originate --------------------------------------------------

    def _crm_client(self, campaign: Campaign) -> CrmClient | None:
        config = campaign.tiers.crm if "crm" in campaign.tiers.sources else None
        if config != self._crm_config:
            if self._crm is not None:
                task = asyncio.create_task(self._crm.close())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._crm = CrmClient(config) if config is not None else None
            self._crm_config = config
        return self._crm

    async def prepare(
        self, campaign: Campaign, leases: list[Lease], *, room: ReservedRoom, now: float
    ) -> list[Lease]:
        """Tier, contact policy and routing of each lease; the leases that may be dialed now.

        A lease that must wait is given back (due again when the policy allows);
        one whose CRM tier turned out to be reserved while no agent is free for
        it is given back due at once, for the reserved pass of a later tick.
        """
        self._expected_general = 0
        if not leases:
            return []
        moment = datetime.fromtimestamp(now, UTC)
        infos = await tier_store.customer_info(self.store, [lease.lead_id for lease in leases])
        tiers = await self._tiers(campaign, leases, infos, moment)
        history = await tier_store.contact_history(
            self.store,
            {i.customer_id for i in infos.values()},
            exclude_attempts=[lease.attempt_id for lease in leases],
        )
        reserved_tiers = self.reserved(campaign)
        dedicated_left, general_left = room.dedicated_free, room.general_free
        routes = campaign.tiers.routes()
        kept = []
        for lease in leases:
            info = infos.get(lease.lead_id)
            tier = tiers[lease.attempt_id]
            if info is not None and lease.callback_id is None:
                # A callback is a call the customer asked for: the policy does not hold it.
                until = next_allowed(self.contact.get(tier, ContactRule()), history.get(info.customer_id, []), moment)
                if until is not None:
                    await release_unsent(self.store, lease.attempt_id, next_attempt_at=until)
                    log.info("lead.contact_policy", campaign=campaign.name, number=lease.phone, tier=tier,
                             until=until.isoformat())
                    continue
            reserved = tier in reserved_tiers
            agents = self._queue_agents(campaign, dedicated_left if reserved else None)
            routing = route(
                tier, routes, general_queue=campaign.queue, agent_wait=campaign.dialing.agent_wait, agents=agents
            )
            if reserved:
                if routing.dedicated and dedicated_left > 0:
                    dedicated_left -= 1
                    self._claims[lease.attempt_id] = "dedicated"
                elif general_left > 0:
                    general_left -= 1
                    self._claims[lease.attempt_id] = "general"
                    if routing.dedicated:
                        # No dedicated agent left for it this tick: straight to the general queue.
                        routing = route(tier, routes, general_queue=campaign.queue,
                                        agent_wait=campaign.dialing.agent_wait, agents={})
                else:
                    await release_unsent(self.store, lease.attempt_id, next_attempt_at=None)
                    log.info("lead.waits_for_agent", campaign=campaign.name, number=lease.phone, tier=tier)
                    continue
            self.calls[lease.attempt_id] = DialInfo(tier, routing, info, reserved)
            kept.append(lease)
        # One write for the tick: the pacing is waiting.
        await tier_store.tag_attempts(
            self.store, {a: (self.calls[a].tier, self.calls[a].routing) for a in (lease.attempt_id for lease in kept)}
        )
        return kept

    def _queue_agents(self, campaign: Campaign, dedicated_left: int | None) -> dict[str, QueueAgents]:
        agents = {}
        for rule in campaign.tiers.routing.values():
            if rule.queue:
                members = self.board.in_queue(rule.queue)
                free = sum(1 for a in members if a.free)
                if dedicated_left is not None:
                    free = min(free, dedicated_left)
                agents[rule.queue] = QueueAgents(len(members), free)
        return agents

    async def _tiers(
        self, campaign: Campaign, leases: list[Lease], infos: Mapping[int, tier_store.CustomerInfo], moment: datetime
    ) -> dict[str, str]:
        stored = {lease.attempt_id: self.ladder.known(lease.tier) for lease in leases}
        crm = self._crm_client(campaign)
        if crm is None:
            return {a: t or self.ladder.lowest.name for a, t in stored.items()}

        async def ask(lease: Lease) -> tuple[str, str | None]:
            info = infos.get(lease.lead_id)
            answer = await crm.tier(lease.phone, info.external_id if info else None, lease.tier)
            tier = self.ladder.known(answer.tier)
            if answer.source == "crm" and tier is not None and info is not None and tier != stored[lease.attempt_id]:
                await tier_store.set_crm_tier(self.store, info.customer_id, tier, moment)
            return lease.attempt_id, tier

        found = dict(await asyncio.gather(*(ask(lease) for lease in leases)))
        return {a: found.get(a) or stored[a] or self.ladder.lowest.name for a in stored}

    def variables(self, attempt_id: str) -> dict[str, str]:
        """Originate variables of the routing (`asterisk-conf/README.md`)."""
        info = self.calls.get(attempt_id)
        if info is None:
            return {}
        customer = ""
        if info.customer is not None:
            # Lead and CRM data: made safe for a channel variable, never refused.
            customer = variable_text(info.customer.external_id or str(info.customer.customer_id))
        return {**info.routing.variables(), "DIALER_CUSTOMER": customer}

    # -- while the call runs, and after ----------------------------------------------

    def on_agent_ringing(self, ami: Pbx, campaign: Campaign, record: r.AgentRinging, agent_id: str) -> None:
        """Tell CTI integrations whose call is ringing an agent (UserEvent DialerScreenPop)."""
        info = self.calls.get(record.uniqueid)
        customer = info.customer if info else None
        fields = screen_pop_event(
            attempt=record.uniqueid,
            campaign=campaign.name,
            agent_id=agent_id,
            interface=record.interface,
            queue=record.queue,
            tier=info.tier if info else "",
            customer=(customer.external_id or str(customer.customer_id)) if customer else "",
            name=(customer.name or "") if customer else "",
            value=customer.value if customer else None,
        )
        task = asyncio.create_task(self._send(ami, fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, ami: Pbx, fields: dict[str, str]) -> None:
        try:
            await ami.action(fields)
        except AmiError as exc:
            # A screen pop that did not go out must not disturb the call.
            log.warning("screen_pop.not_sent", attempt=fields["Attempt"], error=str(exc))

    async def after_attempt(self, campaign: Campaign, attempt: Attempt, outcome: str, now: float) -> None:
        """Forget the call; a revisit programme books the customer's next call."""
        info = self.calls.pop(attempt.id, None)
        self._claims.pop(attempt.id, None)
        if info is None or outcome != "answered" or attempt.answered_at is None:
            return
        at = revisit_at(campaign.tiers.revisit_days.get(info.tier), datetime.fromtimestamp(attempt.answered_at, UTC))
        if at is not None and await tier_store.schedule_revisit(self.store, attempt.id, at):
            log.info("lead.revisit_scheduled", campaign=campaign.name, attempt=attempt.id, tier=info.tier,
                     at=at.isoformat())

    async def close(self) -> None:
        for shared in _TEAM_NEEDS.get(self.board, {}).values():
            shared.pop(id(self), None)
        if self._crm is not None:
            await self._crm.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
