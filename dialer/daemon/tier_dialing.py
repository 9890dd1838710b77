"""One campaign's tier I/O at dial time: the leases per tier, the CRM lookup, the
contact policy's history, lending agents over AMI and the screen pop.

The campaign runner calls in here at a few points (see `CampaignRunner.tick`);
the decisions, claims on agents and routing included, are the campaign core's
(`dialer.core.campaign`, `dialer.core.lending`, `dialer.core.contact_policy`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from dialer.ami.errors import AmiError
from dialer.ami.values import variable_text
from dialer.pbx.protocol import Pbx
from dialer.screen_pop import screen_pop_event
from dialer.config.models import Campaign
from dialer.config.tiers import DEFAULT_TIERS, TierConfig, contact_rules, ladder
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.attempt import Attempt
from dialer.core.campaign import CallPlan, CampaignCore, CampaignView, TierRules
from dialer.core.contact_policy import ContactRule, next_allowed, revisit_at
from dialer.core.lending import TeamMember, agents_needed, lend_moves
from dialer.core.routing import Routing
from dialer.core.tier_pacing import Claims, ReservedRoom
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

@dataclass(frozen=True)
class DialInfo:
    tier: str
    routing: Routing
    customer: tier_store.CustomerInfo | None
    reserved: bool


def tier_rules(campaign: Campaign, ladder: TierLadder) -> TierRules:
    """A campaign's tier settings resolved against the ladder, for the campaign core."""
    routing = campaign.tiers.routing
    return TierRules(
        lowest=ladder.lowest.name,
        reserved=campaign.tiers.reserved_tiers(ladder),
        routes=campaign.tiers.routes(),
        wait_for_dedicated=frozenset(t for t, rule in routing.items() if rule.wait_for_dedicated),
    )


class TierDialing:
    def __init__(
        self,
        store: Store,
        board: AgentBoard,
        core: CampaignCore,
        tiers: list[TierConfig] | None = None,
    ) -> None:
        self.store = store
        self.board = board
        self.core = core
        self.set_ladder(tiers or list(DEFAULT_TIERS))
        self._crm: CrmClient | None = None
        self._crm_config: Any = None
        self.customers: dict[str, tier_store.CustomerInfo] = {}
        """attempt id -> the customer of a call placed (screen pop, DIALER_CUSTOMER)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._moving: dict[tuple[str, str], tuple[bool, float]] = {}  # (queue, agent) -> (lend?, sent at)
        self._lent: set[tuple[str, str]] = set()  # (general queue, agent) this daemon added

    def set_ladder(self, tiers: list[TierConfig]) -> None:
        self.ladder: TierLadder = ladder(tiers)
        self.contact: dict[str, ContactRule] = contact_rules(tiers)

    # -- tiers ----------------------------------------------------------------

    def rules(self, campaign: Campaign) -> TierRules:
        """The campaign's tier settings against the ladder, for the core."""
        return tier_rules(campaign, self.ladder)

    def claims(self, attempts: Mapping[str, Attempt] | None = None) -> Claims:
        """Claims on agents held by reserved-tier calls not yet bridged."""
        return self.core.claims()

    @property
    def calls(self) -> dict[str, DialInfo]:
        """Tier, routing and customer of each call placed and not finished."""
        return {
            a: DialInfo(p.tier, p.routing, self.customers.get(a), p.reserved) for a, p in self.core.plans.items()
        }

    def reserved(self, campaign: Campaign) -> frozenset[str]:
        return campaign.tiers.reserved_tiers(self.ladder)

    def lease_tiers(self, campaign: Campaign, *, reserved: bool) -> LeaseTiers:
        tiers = self.reserved(campaign)
        ranks = self.ladder.ranks()
        if reserved:
            return LeaseTiers(ranks, only=tiers, order_by=campaign.tiers.order_by)
        return LeaseTiers(ranks, exclude=tiers, order_by=campaign.tiers.order_by)

    async def due(self, campaign: Campaign, campaign_id: int, now: float) -> bool:
        """Whether a lead of a reserved tier is due now."""
        return bool(
            await tier_store.due_leads(
                self.store, campaign_id, datetime.fromtimestamp(now, UTC), self.lease_tiers(campaign, reserved=True)
            )
        )

    async def lend(
        self, ami: Pbx, campaign: Campaign, campaign_id: int, attempts: Mapping[str, Attempt], now: float
    ) -> None:
        """Lend idle dedicated agents to the general queue, or take them back (`dialer.core.lending`)."""
        reserved = self.reserved(campaign)
        rules = [(t, r) for t, r in campaign.tiers.routing.items() if t in reserved and r.queue]
        if not rules:
            return
        in_flight = self.core.claims().dedicated
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
        self, campaign: Campaign, leases: list[Lease], view: CampaignView, *, room: ReservedRoom, now: float
    ) -> list[Lease]:
        """Tier, contact policy and routing of each lease; the leases that may be dialed now.

        A lease that must wait is given back (due again when the policy allows);
        one whose CRM tier turned out to be reserved while no agent is free for
        it is given back due at once, for the reserved pass of a later tick.
        """
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
        allowed = []
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
            allowed.append(lease)
        routes = self.core.route([(lease.attempt_id, tiers[lease.attempt_id]) for lease in allowed], view, room)
        kept = []
        tags: dict[str, tuple[str, Routing]] = {}
        for lease in allowed:
            routing = routes[lease.attempt_id]
            if routing is None:
                await release_unsent(self.store, lease.attempt_id, next_attempt_at=None)
                log.info("lead.waits_for_agent", campaign=campaign.name, number=lease.phone,
                         tier=tiers[lease.attempt_id])
                continue
            info = infos.get(lease.lead_id)
            if info is not None:
                self.customers[lease.attempt_id] = info
            tags[lease.attempt_id] = (tiers[lease.attempt_id], routing)
            kept.append(lease)
        # One write for the tick: the pacing is waiting.
        await tier_store.tag_attempts(self.store, tags)
        return kept

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

    def customer(self, attempt_id: str) -> str:
        """DIALER_CUSTOMER of a call: the customer's CRM id, else the dialer's."""
        info = self.customers.get(attempt_id)
        if info is None:
            return ""
        # Lead and CRM data: made safe for a channel variable, never refused.
        return variable_text(info.external_id or str(info.customer_id))

    # -- while the call runs, and after ----------------------------------------------

    def on_agent_ringing(self, ami: Pbx, campaign: Campaign, record: r.AgentRinging, agent_id: str) -> None:
        """Tell CTI integrations whose call is ringing an agent (UserEvent DialerScreenPop)."""
        plan = self.core.plans.get(record.uniqueid)
        customer = self.customers.get(record.uniqueid)
        fields = screen_pop_event(
            attempt=record.uniqueid,
            campaign=campaign.name,
            agent_id=agent_id,
            interface=record.interface,
            queue=record.queue,
            tier=plan.tier if plan else "",
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

    async def after_attempt(
        self, campaign: Campaign, attempt: Attempt, outcome: str, now: float, plan: CallPlan | None = None
    ) -> None:
        """Forget the call; a revisit programme books the customer's next call.

        `plan` is the call's routing plan when the core has already let go of it.
        """
        plan = self.core.forget(attempt.id) or plan
        self.customers.pop(attempt.id, None)
        if plan is None or outcome != "answered" or attempt.answered_at is None:
            return
        at = revisit_at(campaign.tiers.revisit_days.get(plan.tier), datetime.fromtimestamp(attempt.answered_at, UTC))
        if at is not None and await tier_store.schedule_revisit(self.store, attempt.id, at):
            log.info("lead.revisit_scheduled", campaign=campaign.name, attempt=attempt.id, tier=plan.tier,
                     at=at.isoformat())

    async def close(self) -> None:
        for shared in _TEAM_NEEDS.get(self.board, {}).values():
            shared.pop(id(self), None)
        if self._crm is not None:
            await self._crm.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
