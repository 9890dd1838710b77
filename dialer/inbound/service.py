"""Inbound calls inside the daemon: the FastAGI routes the dialplan asks, and the
AMI events of the calls it routed.

`[dialer-inbound]` (asterisk-conf/README.md) sets a default queue first, then
runs `AGI(${DIALER_AGI}/inbound,<dialled number>)`. The `inbound` route finds
the campaign answering on that number and the caller by their number, decides
the route (`dialer.core.inbound.inbound_route`, the outbound tier rules) and
sets the channel variables `Queue()` then uses. The look-up has a budget of a
few hundred milliseconds: past it, or on any error, the route still answers
with the campaign's default queue, and when the daemon is down the dialplan
keeps the queue it set itself. `inbound-result` records what the dialplan saw
at the end (no agent in time; the caller pressed the callback key).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from dialer.ami.errors import AmiError
from dialer.pbx.protocol import Pbx
from dialer.ami.values import header_text, variable_problem, variable_text
from dialer.config.models import Campaign
from dialer.config.tiers import ladder as make_ladder
from dialer.config.tiers import TierConfig
from dialer.core import records as r
from dialer.core.agents import AgentBoard
from dialer.core.inbound import UNKNOWN, inbound_route
from dialer.core.reconcile import LiveChannel
from dialer.core.originate import routing_variables
from dialer.core.routing import QueueAgents, Routing
from dialer.inbound.recognition import DidIndex, caller_forms, caller_number
from dialer.screen_pop import screen_pop, screen_pop_event
from dialer.store import inbound_calls
from dialer.store.store import Store

log = structlog.get_logger("dialer.inbound")

ROUTE = "inbound"
RESULT_ROUTE = "inbound-result"
LOOKUP_BUDGET_S = 0.3
"""The caller is ringing while we look: past this the call goes to the default queue."""
COMMAND_TIMEOUT_S = 2.0


class AgiLine:
    """What the routes need of panoramisk's fast_agi Request (a fake in unit tests)."""

    headers: Mapping[str, str]

    async def send_command(self, command: str) -> dict[str, Any]: ...  # pragma: no cover


@dataclass
class InboundCall:
    id: str
    uniqueid: str
    campaign: Campaign
    routing: Routing
    customer: inbound_calls.KnownCaller | None
    written: asyncio.Task[None] | None = None
    caller: str | None = None
    """The caller's number as recognised; None: unknown."""
    bridged_at: float | None = None


@dataclass
class Decision:
    """What the `inbound` route answers: the call's row, and the channel variables."""

    call: InboundCall | None
    variables: dict[str, str]


class InboundService:
    def __init__(
        self,
        store: Store,
        board: AgentBoard,
        campaigns: Callable[[], Iterable[Campaign]],
        *,
        tiers: list[TierConfig],
        agent_ids: Mapping[str, str],
        default_region: str | None = None,
        ami: Pbx | None = None,
        clock: Callable[[], float] = time.time,
        budget: float = LOOKUP_BUDGET_S,
    ) -> None:
        self.store = store
        self.board = board
        self.campaigns = campaigns
        self.ladder = make_ladder(tiers)
        self.agent_ids = {k.lower(): v for k, v in agent_ids.items()}
        self.default_region = default_region
        self.ami = ami
        self.clock = clock
        self.budget = budget
        self.calls: dict[str, InboundCall] = {}
        """Asterisk Uniqueid of the caller's channel -> the call."""
        self._by_id: dict[str, InboundCall] = {}
        self._campaign_ids: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.abandon_sounds: dict[str, str] = {}
        """Campaign name -> what Asterisk plays for its abandon_text, set by the daemon (dialer.ivr.service)."""

    @property
    def wanted(self) -> bool:
        return any(c.inbound is not None for c in self.campaigns())

    def routes(self) -> dict[str, Callable[[Any], Any]]:
        return {ROUTE: self.agi_route, RESULT_ROUTE: self.agi_result}

    # -- the dialplan asks -------------------------------------------------------

    async def agi_route(self, request: AgiLine) -> None:
        headers = request.headers
        uniqueid = headers.get("agi_uniqueid", "")
        did = headers.get("agi_arg_1", "")
        raw_caller = headers.get("agi_callerid")
        started = time.monotonic()
        try:
            decision = await asyncio.wait_for(self.decide(uniqueid, did, raw_caller), self.budget)
        except Exception as exc:  # a slow or failing database: the caller still gets a queue
            log.warning("inbound.lookup_failed", did=header_text(did, 40), error=repr(exc)[:200])
            decision = self.fallback(did)
        for name, value in decision.variables.items():
            problem = variable_problem(name, value)
            if problem is not None:
                log.error("inbound.variable_refused", problem=problem)
                continue
            try:
                await asyncio.wait_for(request.send_command(f'SET VARIABLE {name} "{value}"'), COMMAND_TIMEOUT_S)
            except (TimeoutError, ValueError, OSError, asyncio.IncompleteReadError):
                return  # the caller hung up while we looked
        call = decision.call
        if call is not None:
            call.caller = caller_number(raw_caller)
            self.calls[call.uniqueid] = call
            self._by_id[call.id] = call
            call.written = self._spawn(self._write_row(call, did, raw_caller))
        log.info(
            "inbound.routed",
            call=call.id if call else None,
            campaign=call.campaign.name if call else None,
            caller=caller_number(raw_caller),
            known=bool(call and call.customer),
            queue=decision.variables.get("DIALER_QUEUE"),
            reason=call.routing.reason if call else "no_campaign",
            ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _campaign_for(self, did: str, campaigns: Mapping[str, Campaign]) -> tuple[tuple[str, ...], Campaign | None]:
        names = DidIndex.build(campaigns.values()).lookup(did)
        return names, (campaigns[names[0]] if names else None)

    async def decide(self, uniqueid: str, did: str, raw_caller: str | None) -> Decision:
        campaigns = {c.name: c for c in self.campaigns()}
        names, campaign = self._campaign_for(did, campaigns)
        if campaign is None or campaign.inbound is None:
            # A number no campaign answers on: the dialplan's own default queue.
            return Decision(None, {})
        number = caller_number(raw_caller)
        known = None
        if number is not None:
            ids = {name: await self._campaign_id(campaigns[name]) for name in names}
            forms = caller_forms(number, campaign.numbers.policy(self.default_region))
            known = await inbound_calls.recognise(self.store, forms, list(ids.values()))
            if known is not None and known.campaign_id is not None:
                campaign = campaigns[next(n for n, i in ids.items() if i == known.campaign_id)]
        return self._decision(uniqueid, campaign, known)

    def _decision(self, uniqueid: str, campaign: Campaign, known: inbound_calls.KnownCaller | None) -> Decision:
        inbound = campaign.inbound
        assert inbound is not None
        tier = self.ladder.effective(known.tier) if known is not None else None
        routing = inbound_route(
            tier,
            campaign.tiers.routes(),
            campaign_queue=campaign.queue,
            default_queue=inbound.default_queue or campaign.queue,
            wait=inbound.max_wait,
            agents=self._queue_agents(campaign),
        )
        call = InboundCall(f"in-{uuid.uuid4().hex}", uniqueid, campaign, routing, known)
        customer = ""
        if known is not None:
            # Lead data: made safe for a channel variable, never refused.
            customer = variable_text(known.external_id or str(known.customer_id))
        variables = {
            "DIALER_INBOUND_ID": call.id,
            "DIALER_ATTEMPT": call.id,
            "DIALER_CAMPAIGN": campaign.name,
            **routing_variables(routing),
            "DIALER_CUSTOMER": customer,
            "DIALER_ANSWERS": (known.answers_attempt or "") if known else "",
            **self._no_agent_variables(campaign),
        }
        if known is None or known.lead_id is None:
            # Nobody to call back (no number, or no lead in the campaign): no key offered.
            variables["DIALER_CALLBACK_KEY"] = ""
        return Decision(call, variables)

    def fallback(self, did: str) -> Decision:
        """The campaign's default queue, without asking the database."""
        campaigns = {c.name: c for c in self.campaigns()}
        _, campaign = self._campaign_for(did, campaigns)
        if campaign is None or campaign.inbound is None:
            return Decision(None, {})
        return Decision(None, {
            "DIALER_CAMPAIGN": campaign.name,
            "DIALER_QUEUE": campaign.inbound.default_queue or campaign.queue,
            "DIALER_AGENT_WAIT": str(campaign.inbound.max_wait),
            **self._no_agent_variables(campaign),
            # No call row to book a callback on.
            "DIALER_CALLBACK_KEY": "",
        })

    def _no_agent_variables(self, campaign: Campaign) -> dict[str, str]:
        inbound = campaign.inbound
        assert inbound is not None
        return {
            "DIALER_NO_AGENT_MSG": inbound.no_agent_message or self.abandon_sounds.get(campaign.name, campaign.abandon_message),
            "DIALER_CALLBACK_KEY": inbound.callback_key or "",
            "DIALER_CALLBACK_PROMPT": inbound.callback_prompt,
            "DIALER_CALLBACK_CONFIRM": inbound.callback_confirm,
            "DIALER_KEY_TIMEOUT": str(inbound.key_timeout),
        }

    def _queue_agents(self, campaign: Campaign) -> dict[str, QueueAgents]:
        agents = {}
        for rule in campaign.tiers.routing.values():
            if rule.queue:
                members = self.board.in_queue(rule.queue)
                agents[rule.queue] = QueueAgents(len(members), sum(1 for a in members if a.free))
        return agents

    async def _campaign_id(self, campaign: Campaign) -> int:
        if campaign.name not in self._campaign_ids:
            self._campaign_ids[campaign.name] = await self.store.sync_campaign(campaign.name, campaign.type.value)
        return self._campaign_ids[campaign.name]

    async def _write_row(self, call: InboundCall, did: str, raw_caller: str | None) -> None:
        known = call.customer
        await inbound_calls.open_call(
            self.store,
            id=call.id,
            uniqueid=call.uniqueid[:64],
            campaign_id=(known.campaign_id if known and known.campaign_id else await self._campaign_id(call.campaign)),
            did=variable_text(did, 32),
            caller=caller_number(raw_caller),
            caller_raw=header_text(raw_caller or "", 64),
            customer_id=known.customer_id if known else None,
            lead_id=known.lead_id if known else None,
            answers_attempt=known.answers_attempt if known else None,
            answers_outcome=known.answers_outcome if known else None,
            tier=call.routing.tier or None,
            queue=call.routing.queue,
            routing=call.routing.reason if call.routing.reason != "general" or known else UNKNOWN,
            started_at=self._now(),
        )

    async def agi_result(self, request: AgiLine) -> None:
        """`inbound-result,<call id>,no_agent|callback`: what the dialplan saw at the end."""
        headers = request.headers
        call = self._by_id.get(headers.get("agi_arg_1", ""))
        what = headers.get("agi_arg_2", "")
        if call is None or what not in ("no_agent", "callback"):
            return
        try:
            await _written(call)
            if what == "no_agent":
                await inbound_calls.set_outcome(self.store, call.id, "no_agent")
                return
            inbound = call.campaign.inbound
            assert inbound is not None
            now = self._now()
            booked = await inbound_calls.request_callback(
                self.store, call.id, now + timedelta(minutes=inbound.callback_after_minutes), now
            )
            log.info("inbound.callback_requested", call=call.id, campaign=call.campaign.name, callback=booked)
            if booked is not None:
                await asyncio.wait_for(request.send_command('SET VARIABLE DIALER_CALLBACK_BOOKED "1"'), COMMAND_TIMEOUT_S)
        except Exception as exc:
            log.warning("inbound.result_failed", call=call.id, what=what, error=repr(exc)[:200])

    # -- AMI events of the calls routed ------------------------------------------

    def owns(self, uniqueid: str) -> bool:
        return uniqueid in self.calls

    async def on_record(self, record: r.CallRecord) -> None:
        call = self.calls.get(getattr(record, "uniqueid", ""))
        if call is None:
            return
        await _written(call)
        if isinstance(record, r.AgentRinging):
            self._screen_pop(call, record)
        elif isinstance(record, r.AgentConnected):
            agent_id = self.agent_ids.get(record.interface.lower(), record.interface)
            call.bridged_at = record.at
            lead = await inbound_calls.bridged(self.store, call.id, agent_id, _dt(record.at))
            log.info("inbound.bridged", call=call.id, agent=agent_id, lead_closed=lead)
        elif isinstance(record, r.ChannelHangup):
            self.board.ring_ended(call.uniqueid)
            await inbound_calls.ended(self.store, call.id, "hung_up", _dt(record.at))
            del self.calls[call.uniqueid]
            self._by_id.pop(call.id, None)

    def _screen_pop(self, call: InboundCall, record: r.AgentRinging) -> None:
        if self.ami is None:
            return
        known = call.customer
        fields = screen_pop_event(
            attempt=call.id,
            campaign=call.campaign.name,
            agent_id=self.agent_ids.get(record.interface.lower(), record.interface),
            interface=record.interface,
            queue=record.queue,
            tier=call.routing.tier,
            customer=(known.external_id or str(known.customer_id)) if known else "",
            name=(known.name or "") if known else "",
            value=known.value if known else None,
        )
        self._spawn(self._send(fields))

    async def _send(self, fields: dict[str, str]) -> None:
        assert self.ami is not None
        try:
            await self.ami.action(fields)
        except AmiError as exc:
            log.warning("screen_pop.not_sent", attempt=fields["Attempt"], error=str(exc))

    async def adopt(self, live_channels: Callable[[], Awaitable[list[LiveChannel]]]) -> None:
        """After an AMI login: follow again the inbound calls still up, end the others.

        A call whose channel is gone ended while nobody watched (`interrupted`, or
        `answered` when an agent had it); one still up is followed again, and if an
        agent's channel is bridged in it (same Linkedid) the call is recorded as
        taken by that agent, closing the lead as an `AgentConnect` would have.
        """
        rows = [row for row in await inbound_calls.open_calls(self.store) if row["uniqueid"] not in self.calls]
        if not rows:
            return
        channels = await live_channels()
        up = {c.uniqueid for c in channels}
        campaigns = {c.name: c for c in self.campaigns()}
        adopted = ended = 0
        for row in rows:
            campaign = campaigns.get(row["campaign"])
            if row["uniqueid"] not in up or campaign is None:
                await inbound_calls.ended(self.store, row["id"], "interrupted", self._now())
                ended += 1
                continue
            known = None
            if row["customer_id"] is not None:
                known = inbound_calls.KnownCaller(row["customer_id"], None, None, row["tier"], None, row["campaign_id"],
                                                  row["lead_id"], row["answers_attempt"], row["answers_outcome"])
            routing = Routing(row["tier"] or "", row["queue"], 0, 0, reason=row["routing"])
            call = InboundCall(row["id"], row["uniqueid"], campaign, routing, known, caller=row["caller"])
            self.calls[call.uniqueid] = call
            self._by_id[call.id] = call
            adopted += 1
            agent = next((c for c in channels if c.linkedid == call.uniqueid and c.uniqueid != call.uniqueid
                          and c.bridged and c.interface.lower() in self.agent_ids), None)
            if agent is not None and row["bridged_at"] is None:
                call.bridged_at = self.clock()
                await inbound_calls.bridged(self.store, call.id, self.agent_ids[agent.interface.lower()], self._now())
        log.info("inbound.adopted", adopted=adopted, ended=ended)

    async def screen_pop(self, call: InboundCall) -> dict[str, Any] | None:
        """What `GET /agents/{id}/current` shows for an inbound call (dialer.screen_pop); None: unknown caller."""
        known = call.customer
        if known is None or known.lead_id is None:
            return None
        routing = {"queue": call.routing.queue, "reason": call.routing.reason, "priority": call.routing.priority,
                   "fallback_queue": call.routing.fallback_queue}
        return await screen_pop(self.store, call.campaign, known.lead_id, tier=call.routing.tier or None,
                                routing=routing)

    # -- internals -------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("inbound.write_failed", error=repr(task.exception())[:200])

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _written(call: InboundCall) -> None:
    """Events of a call wait for its row; a row that could not be written was logged."""
    if call.written is not None:
        await asyncio.gather(call.written, return_exceptions=True)


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
