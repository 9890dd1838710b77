"""After a restart or a reconnect: which open attempts are still live calls? (pure)

Asterisk's channel list (CoreShowChannels) is the truth. An attempt whose id
is a channel's Uniqueid (the customer) or Linkedid (the agent's leg) is still
up and is adopted in the state the channels show; one with no channel ended
while nobody listened and is closed. Attempts sent after `cutoff` (on the new
connection) are left alone: their channel may simply not exist yet.

`catch_up` is the adopted attempt's own transition: the state its channels
show, never back, with the times it learns now; `closing` the final columns
of one that vanished.

A call the daemon was still following when its AMI connection was lost (or
Asterisk announced its shutdown) and whose channels are gone now ended by that
fault: `interrupted`, or `cut_short` if the customer had answered. One a
previous run left open (killed, or a drain that left calls up) most likely
ended as calls do while nobody listened: `answered` if an agent had it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dialer.core.attempt import Attempt, State

CHANNEL_UP = 6
CHANNEL_RINGING = (4, 5)


@dataclass(frozen=True)
class LiveChannel:
    channel: str
    uniqueid: str
    linkedid: str
    state: int
    bridged: bool

    @property
    def interface(self) -> str:
        """`PJSIP/agent1-0000000a` -> `PJSIP/agent1`."""
        return self.channel.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Adopt:
    attempt_id: str
    state: State
    channel: str | None
    agent_interface: str | None


@dataclass(frozen=True)
class Vanished:
    attempt_id: str
    outcome: str
    cut_short: bool = False


def channel_from_event(event: Mapping[str, str]) -> LiveChannel | None:
    """A CoreShowChannel list entry as a LiveChannel (None if it is not one)."""
    lowered = {k.lower(): v for k, v in event.items()}
    if lowered.get("event", "").lower() != "coreshowchannel":
        return None
    try:
        state = int(lowered.get("channelstate", "0"))
    except ValueError:
        state = 0
    return LiveChannel(
        channel=lowered.get("channel", ""),
        uniqueid=lowered.get("uniqueid", ""),
        linkedid=lowered.get("linkedid", ""),
        state=state,
        bridged=bool(lowered.get("bridgeid", "").strip()),
    )


def vanished_outcome(last_state: str) -> str:
    """The outcome of an attempt that ended unseen: known only if an agent had it."""
    return "answered" if last_state == State.bridged.value else "interrupted"


def _vanished(attempt_id: str, last_state: str, followed: bool) -> Vanished:
    if not followed:
        return Vanished(attempt_id, vanished_outcome(last_state))
    answered = last_state in (State.up.value, State.bridged.value)
    return Vanished(attempt_id, vanished_outcome(last_state), cut_short=answered)


def plan(
    open_attempts: Iterable[tuple[str, str]],
    channels: Iterable[LiveChannel],
    followed: frozenset[str] = frozenset(),
) -> list[Adopt | Vanished]:
    """For each (attempt id, last stored state): adopt it or close it.

    `followed`: the attempts this daemon had live when it lost Asterisk.
    """
    by_attempt: dict[str, list[LiveChannel]] = {}
    for channel in channels:
        for key in {channel.uniqueid, channel.linkedid}:
            by_attempt.setdefault(key, []).append(channel)
    decisions: list[Adopt | Vanished] = []
    for attempt_id, last_state in open_attempts:
        legs = by_attempt.get(attempt_id)
        if not legs:
            decisions.append(_vanished(attempt_id, last_state, attempt_id in followed))
            continue
        customer = next((c for c in legs if c.uniqueid == attempt_id), None)
        agents = [c for c in legs if c.uniqueid != attempt_id]
        if customer is None:
            # Only the agent's leg is left: the customer is gone, the call is over,
            # and Asterisk did not restart under it.
            decisions.append(Vanished(attempt_id, vanished_outcome(last_state)))
        elif customer.bridged and agents:
            decisions.append(Adopt(attempt_id, State.bridged, customer.channel, agents[0].interface))
        elif customer.state == CHANNEL_UP:
            decisions.append(Adopt(attempt_id, State.up, customer.channel, None))
        elif customer.state in CHANNEL_RINGING:
            decisions.append(Adopt(attempt_id, State.ringing, customer.channel, None))
        else:
            decisions.append(Adopt(attempt_id, State.dialing, customer.channel, None))
    return decisions


_PROGRESS = (State.dialing, State.ringing, State.up, State.bridged)


@dataclass(frozen=True)
class CaughtUp:
    """An adopted attempt brought to what its channels show, and the columns that changed."""

    state: State
    channel: str | None
    ringing_at: float | None
    answered_at: float | None
    bridged_at: float | None
    agent_interface: str | None
    changes: Mapping[str, object]
    """Columns to write: `state` as its value, times as epoch seconds."""


def catch_up(attempt: Attempt, decision: Adopt, now: float) -> CaughtUp:
    """The attempt after adoption at `now`: it only moves forward; a time missed while unheard is `now`."""
    changes: dict[str, object] = {}
    state = attempt.state
    if _PROGRESS.index(decision.state) > _PROGRESS.index(state):
        state = decision.state
        changes["state"] = state.value
    ringing_at, answered_at, bridged_at = attempt.ringing_at, attempt.answered_at, attempt.bridged_at
    if state is State.ringing and ringing_at is None:
        ringing_at = changes["ringing_at"] = now
    if state in (State.up, State.bridged) and answered_at is None:
        answered_at = changes["answered_at"] = now
    if state is State.bridged and bridged_at is None:
        bridged_at = changes["bridged_at"] = now
    return CaughtUp(
        state=state,
        channel=decision.channel or attempt.channel,
        ringing_at=ringing_at,
        answered_at=answered_at,
        bridged_at=bridged_at,
        agent_interface=attempt.agent_interface or decision.agent_interface,
        changes=changes,
    )


def closing(decision: Vanished, now: float) -> dict[str, object]:
    """The final columns (besides the outcome) of an attempt that ended unseen; `ended_at` in epoch seconds."""
    return {"ended_at": now, "cut_short": decision.cut_short}
