"""Just before an Originate: dial this lead now, wait, or never? (pure)

Combines the deny patterns, the do-not-call lists and the calling window in
the customer's zones. The time is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dialer.core.agents import AgentState
from dialer.core.calling_window import CallingWindow
from dialer.core.dialable import Blocked, DenyList, dial_block


@dataclass(frozen=True)
class Wait:
    until: datetime


def check_lead(
    phone: str,
    zones: Sequence[ZoneInfo],
    *,
    now: datetime,
    window: CallingWindow,
    deny: DenyList,
    on_dnc_list: Set[str],
    forms: Sequence[str] = (),
    never_dial: bool = False,
) -> Blocked | Wait | None:
    """None: dial now. Wait: not before `until`. Blocked: never (the lead is done, for `reason`).

    `forms` are other ways to write `phone` (its E.164 and national forms, as the
    intake reads it): a deny pattern or a do-not-call entry matching any of them
    blocks the lead. `never_dial`: the number is of a kind never called (emergency,
    premium rate), whatever the patterns say. With no known zone the window cannot
    be applied and does not hold the lead.
    """
    if never_dial:
        return Blocked("denied_number")
    numbers = (phone, *forms)
    # Deny patterns before the lists, whichever form matches, so the reason does not depend on the form.
    blocks = [dial_block(number, deny, set()) for number in numbers]
    blocks += [dial_block(number, DenyList(()), on_dnc_list) for number in numbers]
    blocked = next((b for b in blocks if b is not None), None)
    if blocked is not None:
        return blocked
    if not zones or window.open_in_all(now, zones):
        return None
    opening = window.next_opening(now, zones)
    if opening is None:
        return Blocked("no_calling_window")
    return Wait(opening)


# How long a due callback waits between looks for its agent to be free.
CALLBACK_RECHECK = timedelta(seconds=3)


@dataclass(frozen=True)
class Direct:
    """Ring this agent's interface, not the queue."""

    interface: str


def callback_route(agent: AgentState | None, due_at: datetime, now: datetime, grace: timedelta) -> Direct | Wait | None:
    """Who takes a due callback: its agent directly, later (its agent is busy), or anyone (None).

    The promised agent gets it while logged in and within `grace` of the due
    time; once the grace is over, or if the agent is not logged in, anyone may.
    """
    if agent is None or not agent.queues or now >= due_at + grace:
        return None
    if agent.free:
        return Direct(agent.interface)
    return Wait(min(now + CALLBACK_RECHECK, due_at + grace))
