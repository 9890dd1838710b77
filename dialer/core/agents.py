"""Who can take a call: agents' state per queue, from plain records.

The board trusts Asterisk's queue events (member status, AgentConnect and
AgentComplete) rather than guessing from the calls the dialer placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.core import records as r

# Asterisk device states that mean the phone can take a call now. 0 (unknown)
# counts: a phone with a static contact and no qualify stays unknown until used.
_FREE_DEVICE_STATES = {0, 1}


@dataclass
class AgentState:
    id: str
    interface: str
    queues: set[str] = field(default_factory=set)  # queues the agent is logged in to
    paused: bool = False
    device_status: int = 0
    ringing_for: str | None = None  # attempt id of a call ringing this phone
    on_call: str | None = None  # attempt id of the call bridged to this agent
    busy_since: float | None = None
    wrapup_since: float | None = None  # after-call work on the agent desk (paused in the queue meanwhile)

    @property
    def free(self) -> bool:
        return (
            bool(self.queues)
            and not self.paused
            and self.on_call is None
            and self.ringing_for is None
            and self.wrapup_since is None
            and self.device_status in _FREE_DEVICE_STATES
        )

    @property
    def label(self) -> str:
        if not self.queues:
            return "logged_out"
        if self.on_call:
            return "talking"
        if self.ringing_for:
            return "ringing"
        if self.wrapup_since is not None:
            return "wrapup"
        if self.paused:
            return "paused"
        return "free" if self.free else "busy"


class AgentBoard:
    def __init__(self, agents: dict[str, str]) -> None:
        """`agents` maps agent id to its interface (e.g. PJSIP/agent1)."""
        self._by_interface: dict[str, AgentState] = {
            interface.lower(): AgentState(id=agent_id, interface=interface) for agent_id, interface in agents.items()
        }

    def agent(self, interface: str) -> AgentState | None:
        return self._by_interface.get(interface.lower())

    def set_agents(self, agents: dict[str, str]) -> None:
        """The agents after a config reload, changed in place: every holder of the board sees them.

        A phone that stays keeps what is known of it (its call, its queues) under its new id.
        """
        kept = self._by_interface
        self._by_interface = {}
        for agent_id, interface in agents.items():
            state = kept.get(interface.lower()) or AgentState(id=agent_id, interface=interface)
            state.id, state.interface = agent_id, interface
            self._by_interface[interface.lower()] = state

    def agents(self) -> list[AgentState]:
        return list(self._by_interface.values())

    def apply(self, record: r.AgentRecord) -> AgentState | None:
        """Feed one record; return the agent whose state it touched, if ours."""
        agent = self.agent(record.interface)
        if agent is None:
            return None
        match record:
            case r.MemberStatus(queue=queue, status=status, paused=paused, in_call=in_call, at=at):
                agent.queues.add(queue)
                agent.paused = paused
                agent.device_status = status
                if status in _FREE_DEVICE_STATES and not in_call:
                    # The phone is idle again: whatever call we thought it had is over.
                    agent.on_call = None
                    agent.ringing_for = None
                    agent.busy_since = None
            case r.MemberRemoved(queue=queue):
                agent.queues.discard(queue)
            case r.AgentRinging(uniqueid=uniqueid):
                agent.ringing_for = uniqueid
            case r.AgentConnected(uniqueid=uniqueid, at=at):
                agent.ringing_for = None
                agent.on_call = uniqueid
                agent.busy_since = at
            case r.AgentCompleted(uniqueid=uniqueid):
                # Also sent for a ring that went unanswered (AgentRingNoAnswer).
                if agent.ringing_for == uniqueid:
                    agent.ringing_for = None
                if agent.on_call == uniqueid:
                    agent.on_call = None
                    agent.busy_since = None
        return agent

    def ring_ended(self, uniqueid: str) -> None:
        """A customer call is over: no phone is still ringing for it."""
        for agent in self._by_interface.values():
            if agent.ringing_for == uniqueid:
                agent.ringing_for = None

    def logged_out_all(self) -> None:
        """After a reconnect nothing is known until the queue status is read again."""
        for agent in self._by_interface.values():
            agent.queues.clear()

    def in_queue(self, queue: str) -> list[AgentState]:
        return [a for a in self._by_interface.values() if queue in a.queues]

    def free_in(self, queue: str) -> int:
        return sum(1 for a in self.in_queue(queue) if a.free)
