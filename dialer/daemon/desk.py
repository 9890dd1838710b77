"""The agent desk at run time: each agent's state and time in it, wrap-up, screen pops, live feeds.

The board (dialer.core.agents) says what Asterisk says; the desk adds what only
the agent knows: why they paused, and when their after-call work is done. A
call that ends puts its agent in wrap-up, paused in every queue (QueuePause)
so Queue() offers them nothing, until they press ready or the campaign's
`wrapup_limit` passes; the seconds it took teach the campaign's pacing
(`CampaignStats.observe_wrapup`), in place of the 0 assumed without a desk.

The moment a phone rings for a call (AMI AgentCalled) the customer's screen
pop is read and pushed to that agent's open pages, and to no one else's.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import structlog

from dialer.ami.errors import AmiError, AmiNotConnected
from dialer.config.models import AgentConfig
from dialer.core import records as r
from dialer.core.agents import AgentState
from dialer.core.calling_window import lead_zones
from dialer.leads.phone_numbers import time_zones
from dialer.http.desk_auth import SignInLimiter, Sessions
from dialer.control.desk_host import DeskHost, DeskInboundCall, DeskRunner
from dialer.control.desk_state import (  # the desk's vocabulary, shared with its pages
    MONITOR_MODES,
    PAUSE_REASONS,
    DeskAgent,
    DeskCall,
    DeskRefused,
    InboundOnDesk,
)
from dialer.screen_pop import for_attempt as screen_pop_for_attempt

log = structlog.get_logger("dialer.desk")

WRAPUP_REASON = "wrap-up"
MONITOR_CONTEXT = "dialer-monitor"
FEED_QUEUE = 32
"""Events a slow page may fall behind by before its feed is closed (it reconnects and reloads)."""
MAX_FEEDS_PER_USER = 8
MAX_FEEDS = 120
"""Live pages open at once, well under the API's connection cap (dialer.http.connection_guard),
so feeds never crowd out the control API and health checks."""


class Feeds:
    """Open server-sent-event streams, each a bounded queue; by user, with a cap per user and in all."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[asyncio.Queue[tuple[str, Any] | None]]] = {}

    def count(self) -> int:
        return sum(len(q) for q in self._by_user.values())

    def open(self, user: str) -> asyncio.Queue[tuple[str, Any] | None]:
        mine = self._by_user.setdefault(user, set())
        if len(mine) >= MAX_FEEDS_PER_USER or self.count() >= MAX_FEEDS:
            raise DeskRefused("too many live pages open")
        queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(FEED_QUEUE)
        mine.add(queue)
        return queue

    def close(self, user: str, queue: asyncio.Queue[tuple[str, Any] | None]) -> None:
        mine = self._by_user.get(user)
        if mine is not None:
            mine.discard(queue)
            if not mine:
                del self._by_user[user]

    def send(self, user: str | None, event: tuple[str, Any] | None) -> None:
        """To `user`'s feeds, or every feed with None; a full queue (a stalled page) is cut off."""
        targets = self._by_user.get(user, set()) if user is not None else set().union(*self._by_user.values())
        for queue in list(targets):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)


class Desk:
    def __init__(self, host: DeskHost) -> None:
        self.host = host
        self.sessions = Sessions()
        self.limiter = SignInLimiter()
        self.feeds = Feeds()
        self.agents: dict[str, DeskAgent] = {a.id: DeskAgent(a, since=host.clock()) for a in host.config.agents}
        self._tasks: set[asyncio.Task[Any]] = set()

    def set_agents(self, agents: list[AgentConfig]) -> None:
        """The config's agents after a reload: those that stay keep their desk state."""
        now = self.host.clock()
        kept = {a.id: self.agents.get(a.id) for a in agents}
        for agent_id, agent in list(self.agents.items()):
            if agent_id not in kept:
                if agent.wrapup_task is not None:
                    agent.wrapup_task.cancel()
                self.feeds.send(agent_id, None)  # their open pages' feeds end
        self.agents = {}
        for config in agents:
            agent = kept[config.id]
            if agent is None:
                agent = DeskAgent(config, since=now)
            agent.config = config
            self.agents[config.id] = agent

    # -- from the event loop ------------------------------------------------------------

    def by_interface(self, interface: str) -> DeskAgent | None:
        for agent in self.agents.values():
            if agent.config.interface.lower() == interface.lower():
                return agent
        return None

    def on_agent_record(self, state: AgentState, record: r.AgentRecord, at: float) -> None:
        """After the board applied `record` to `state` (called by the daemon's event consumer)."""
        agent = self.agents.get(state.id)
        if agent is None:
            return
        match record:
            case r.AgentRinging(uniqueid=attempt_id):
                if agent.call is None or agent.call.attempt != attempt_id:
                    self._ringing(agent, attempt_id, at)
            case r.AgentConnected(uniqueid=attempt_id):
                if agent.call is not None and agent.call.attempt == attempt_id:
                    agent.call.connected = True
            case r.AgentCompleted(uniqueid=attempt_id):
                call = agent.call
                if call is not None and call.attempt == attempt_id:
                    if call.connected and not call.ended and not self.sessions.signed_in(agent.config.id, at):
                        # Nobody at this agent's desk could press Ready: no wrap-up hold
                        # (the phone-only agent is free at once, as without a desk).
                        call.ended = True
                        agent.call = None
                        self._note_no_wrapup(call)
                    elif call.connected and not call.ended:
                        call.ended = True
                        # Busy from this very event on: a pacing tick before the QueuePause
                        # below is answered must not count this agent as free.
                        agent.wrapup_campaign = call.campaign
                        agent.wrapup_started = at
                        state.wrapup_since = at
                        self._spawn(self._begin_wrapup(agent, call, at))
                    elif not call.connected:
                        # Rang and went unanswered (another agent took it): not this agent's call.
                        agent.call = None
                        self._push(agent, "pop")
        call = agent.call
        if call is not None and not call.connected and call.attempt not in (state.ringing_for, state.on_call):
            # The customer hung up while this phone rang (no AgentComplete for it): the
            # board forgot the ring; so does the page.
            agent.call = None
            self._push(agent, "pop")
        self._touch(agent, state, at)

    def _note_no_wrapup(self, call: DeskCall) -> None:
        runner = self.host.runners.get(call.campaign)
        if runner is not None and runner.wrapup_from_desk:
            runner.stats.observe_wrapup(0.0)

    def _push(self, agent: DeskAgent, kind: str) -> None:
        if kind == "pop":
            agent.pop_version += 1
        self.feeds.send(agent.config.id, (kind, None))

    def _touch(self, agent: DeskAgent, state: AgentState | None, now: float) -> None:
        label = self.state_of(agent, state)
        if label != agent.state:
            agent.state = label
            agent.since = now
        self._push(agent, "state")
        self.feeds.send(None, ("wall", None))

    def state_of(self, agent: DeskAgent, state: AgentState | None) -> str:
        if state is None or not state.queues:
            return "logged_out"
        if state.on_call:
            return "in_call"
        if state.ringing_for:
            return "ringing"
        if agent.wrapup_started is not None:
            return "wrapup"
        if state.paused:
            return "paused"
        return "ready"

    def board_state(self, agent: DeskAgent) -> AgentState | None:
        return self.host.board.agent(agent.config.interface)

    def _ringing(self, agent: DeskAgent, attempt_id: str, rang_at: float) -> None:
        # The call is the agent's at once (AgentConnect may follow within milliseconds);
        # its screen pop is read from the store next.
        for runner in list(self.host.runners.values()):
            attempt = runner.attempts.get(attempt_id)
            if attempt is not None:
                call = DeskCall(attempt_id, runner.campaign.name, attempt.lead_id, None, rang_at)
                agent.call = call
                self._spawn(self._pop(agent, call, runner, attempt.phone))
                return
        inbound = self.host.inbound.calls.get(attempt_id) if self.host.inbound is not None else None
        if inbound is not None:
            known = inbound.customer
            # The lead only of a caller recognised as one of this campaign's: anyone else gets
            # the minimal pop (their number), never a customer's data.
            lead_id = known.lead_id if known is not None else None
            shown = InboundOnDesk(
                inbound.id,
                inbound.caller,
                known.answers_attempt if lead_id is not None else None,
                known.answers_outcome if lead_id is not None else None,
            )
            call = DeskCall(attempt_id, inbound.campaign.name, lead_id, None, rang_at, inbound=shown)
            agent.call = call
            self._spawn(self._inbound_pop(agent, call, inbound))

    async def _inbound_pop(self, agent: DeskAgent, call: DeskCall, inbound: DeskInboundCall) -> None:
        service = self.host.inbound
        store = self.host.store
        assert service is not None and store is not None
        call.pop = await service.screen_pop(inbound) if call.lead_id is not None else None
        if call.lead_id is not None and call.pop is None:
            call.lead_id = None  # the lead is gone since the caller was recognised
        self._push(agent, "pop")
        log.info(
            "desk.pop_pushed", agent=agent.config.id, attempt=call.call_id, inbound=True,
            known=call.lead_id is not None, seconds=round(self.host.clock() - call.rang_at, 3),
        )
        if call.lead_id is None:
            return
        found = await store.find_leads(lead_id=call.lead_id)
        own = found[0]["timezone"] if found else None
        phone = found[0]["phone"] if found else (call.inbound.caller if call.inbound else None) or ""
        zones = lead_zones(own, time_zones(phone), inbound.campaign.calling_hours.timezone)
        call.zones = [z.key for z in zones]
        self._push(agent, "pop")

    async def _pop(self, agent: DeskAgent, call: DeskCall, runner: DeskRunner, phone: str) -> None:
        store = self.host.store
        assert store is not None
        call.pop = await screen_pop_for_attempt(store, runner, call.attempt)
        self._push(agent, "pop")
        log.info(
            "desk.pop_pushed", agent=agent.config.id, attempt=call.attempt,
            seconds=round(self.host.clock() - call.rang_at, 3),
        )
        found = await store.find_leads(lead_id=call.lead_id)
        own = found[0]["timezone"] if found else None
        zones = lead_zones(own, time_zones(phone), runner.campaign.calling_hours.timezone)
        call.zones = [z.key for z in zones]
        self._push(agent, "pop")

    async def _begin_wrapup(self, agent: DeskAgent, call: DeskCall, at: float) -> None:
        runner = self.host.runners.get(call.campaign)
        limit = runner.campaign.wrapup_limit if runner is not None else 120.0
        # The limit first: even if Asterisk refuses the pause, the wrap-up ends by itself.
        agent.wrapup_task = asyncio.create_task(self._wrapup_limit(agent, at, limit), name="desk.wrapup")
        await self._queue_pause(agent, True, WRAPUP_REASON)
        if agent.wrapup_started != at:
            # Ready was pressed while the pause was on its way: undo it.
            await self._queue_pause(agent, False, None)
        self._touch(agent, self.board_state(agent), at)

    async def _wrapup_limit(self, agent: DeskAgent, started: float, limit: float) -> None:
        await asyncio.sleep(max(0.0, started + limit - self.host.clock()))
        if agent.wrapup_started == started:
            log.info("desk.wrapup_limit", agent=agent.config.id, seconds=limit)
            agent.wrapup_task = None  # this task ends itself: ready must not cancel it
            await self.ready(agent.config.id, by_limit=True)

    # -- agent actions (from the pages and the JSON API) -------------------------------------

    async def ready(self, agent_id: str, *, by_limit: bool = False) -> None:
        agent = self.agents[agent_id]
        now = self.host.clock()
        if agent.wrapup_started is not None:
            seconds = max(0.0, now - agent.wrapup_started)
            runner = self.host.runners.get(agent.wrapup_campaign or "")
            if runner is not None and runner.wrapup_from_desk:
                runner.stats.observe_wrapup(seconds)
            agent.learned_wrapups.append(round(seconds, 3))
            del agent.learned_wrapups[:-20]
            log.info("desk.wrapup_done", agent=agent_id, campaign=agent.wrapup_campaign, seconds=round(seconds, 3),
                     by_limit=by_limit)
            agent.wrapup_started = None
            agent.wrapup_campaign = None
            if agent.wrapup_task is not None:
                agent.wrapup_task.cancel()
                agent.wrapup_task = None
            state = self.board_state(agent)
            if state is not None:
                state.wrapup_since = None
        agent.pause_reason = None
        if agent.call is not None and agent.call.ended:
            agent.call = None
            self._push(agent, "pop")
        await self._queue_pause(agent, False, None)
        self._touch(agent, self.board_state(agent), now)

    async def pause(self, agent_id: str, reason: str) -> None:
        if reason not in PAUSE_REASONS:
            raise DeskRefused(f"pause reason: one of {', '.join(PAUSE_REASONS)}")
        agent = self.agents[agent_id]
        if agent.wrapup_started is not None:
            raise DeskRefused("in wrap-up: give the disposition and press ready first")
        await self._queue_pause(agent, True, reason)
        agent.pause_reason = reason
        self._touch(agent, self.board_state(agent), self.host.clock())

    async def _queue_pause(self, agent: DeskAgent, paused: bool, reason: str | None) -> None:
        ami = self.host.ami
        if ami is None or not ami.connected.is_set():
            raise DeskRefused("the dialer is not connected to Asterisk right now")
        # No Queue: Asterisk pauses the member in every queue it is in. The gateway checks
        # every value (dialer.ami.values) before it is written.
        fields = {"Action": "QueuePause", "Interface": agent.config.interface, "Paused": str(paused).lower()}
        if reason:
            fields["Reason"] = reason
        try:
            await ami.action(fields)
        except AmiError as exc:
            log.warning("desk.queue_pause_failed", agent=agent.config.id, paused=paused, error=str(exc))
            raise DeskRefused(f"Asterisk refused the pause: {exc}") from None
        state = self.board_state(agent)
        if state is not None:
            state.paused = paused

    def noted_disposition(self, agent_id: str, code: str, callback_local: str | None) -> None:
        agent = self.agents[agent_id]
        agent.last_disposition = code
        if agent.call is not None:
            agent.call.disposition = code
            agent.call.callback_local = callback_local
        self._touch(agent, self.board_state(agent), self.host.clock())

    # -- supervisor actions ---------------------------------------------------------------

    async def monitor(self, agent_id: str, mode: str, supervisor_phone: str) -> str:
        """Ring the supervisor's phone into ChanSpy on the agent's call (dialplan context dialer-monitor)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            raise DeskRefused(f"no agent {agent_id!r}")
        exten = MONITOR_MODES.get(mode)
        if exten is None:
            raise DeskRefused(f"mode: one of {', '.join(MONITOR_MODES)}")
        state = self.board_state(agent)
        if state is None or not state.on_call:
            raise DeskRefused(f"agent {agent_id} is not on a call")
        ami = self.host.ami
        if ami is None or not ami.connected.is_set():
            raise DeskRefused("the dialer is not connected to Asterisk right now")
        spy_id = f"spy-{secrets.token_hex(8)}"
        try:
            await ami.originate(
                attempt_id=spy_id,
                channel=supervisor_phone,
                context=MONITOR_CONTEXT,
                exten=exten,
                timeout_ms=30_000,
                caller_id=f"{mode} {agent_id}"[:40],
                variables={"SPY_TARGET": f"{agent.config.interface}-"},
                beside=agent.config.interface,
            )
        except AmiNotConnected as exc:
            # Several servers: the agent's own is down (ChanSpy on another would find no call).
            raise DeskRefused(f"the Asterisk server of {agent_id}'s phone is not reachable right now: {exc}") from None
        except AmiError as exc:
            raise DeskRefused(f"Asterisk refused the call to your phone: {exc}") from None
        log.info("desk.monitor", agent=agent_id, mode=mode, phone=supervisor_phone, channel_id=spy_id)
        return spy_id

    # -- lifecycle --------------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work, name="desk")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("desk.task_failed", error=repr(task.exception()))

    async def close(self) -> None:
        """Stop the timers and end every live feed (so the HTTP server can stop)."""
        self.feeds.send(None, None)
        for agent in self.agents.values():
            if agent.wrapup_task is not None:
                agent.wrapup_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
