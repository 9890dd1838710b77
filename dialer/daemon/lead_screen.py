"""The last check before an Originate: deny patterns, do-not-call lists, calling window,
and who a due callback goes to.

Runs on leases just taken (their attempt rows exist, nothing was sent). A
lead that may not be called now gives its lease back: closed for good
(`dnc`, `denied_number`, `no_calling_window`) or due again later (when the
window opens in the customer's zone, or when a callback's agent is free).
The decisions are `dialer.core.dial_check`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from dialer.config.models import Campaign
from dialer.core.agents import AgentBoard, AgentState
from dialer.core.calling_window import lead_zones
from dialer.core.dial_check import Direct, Wait, callback_route, check_lead
from dialer.leads.intake import dial_forms
from dialer.leads.phone_numbers import time_zones
from dialer.store import callbacks as callback_store
from dialer.store import dnc
from dialer.store.lead_outcomes import release_unsent
from dialer.store.store import Lease, Store

log = structlog.get_logger("dialer.rules")


@dataclass
class Screened:
    leases: list[Lease] = field(default_factory=list)
    direct: dict[str, str] = field(default_factory=dict)
    """attempt id -> the agent interface a callback rings directly."""


def _agent(board: AgentBoard, agent_id: str | None) -> AgentState | None:
    if agent_id is None:
        return None
    wanted = agent_id.lower()
    return next((a for a in board.agents() if a.id.lower() == wanted or a.interface.lower() == wanted), None)


async def screen_leases(
    campaign: Campaign,
    store: Store,
    leases: list[Lease],
    now: float,
    board: AgentBoard,
    *,
    region: str | None = None,
) -> Screened:
    """The leases that may be dialed now; the others are given back, deferred or closed.

    Each number is read as the intake reads it (the campaign's format, its region or
    else `region`, the config's), and the do-not-call lists are searched for every
    form of it: a lead stored as `2025550188` matches a listed `+12025550188`.
    """
    screened = Screened()
    if not leases:
        return screened
    moment = datetime.fromtimestamp(now, UTC)
    policy = campaign.numbers.policy(region)
    numbers = {lease.attempt_id: dial_forms(lease.phone, policy) for lease in leases}
    listed = await dnc.listed(store, campaign.name, [form for number in numbers.values() for form in number.forms])
    callbacks = await callback_store.get(store, [lease.callback_id for lease in leases if lease.callback_id])
    window = campaign.calling_hours.window()
    deny = campaign.numbers.deny_list()
    grace = timedelta(seconds=campaign.callbacks.agent_grace)
    for lease in leases:
        number = numbers[lease.attempt_id]
        e164 = next((form for form in number.forms if form.startswith("+")), lease.phone)
        zones = lead_zones(lease.timezone, time_zones(e164), campaign.calling_hours.timezone)
        verdict = check_lead(
            lease.phone,
            zones,
            now=moment,
            window=window,
            deny=deny,
            on_dnc_list=listed,
            forms=number.forms,
            never_dial=number.never,
        )
        callback = callbacks.get(lease.callback_id) if lease.callback_id else None
        if verdict is None and callback is not None:
            due = callback.due_at.replace(tzinfo=UTC)
            route = callback_route(_agent(board, callback.agent_id), due, moment, grace)
            if isinstance(route, Direct):
                screened.direct[lease.attempt_id] = route.interface
                log.info("callback.direct", attempt=lease.attempt_id, callback=callback.id, interface=route.interface)
            else:
                verdict = route
        if verdict is None:
            screened.leases.append(lease)
        elif isinstance(verdict, Wait):
            await release_unsent(store, lease.attempt_id, next_attempt_at=verdict.until)
            log.info("lead.deferred", campaign=campaign.name, number=lease.phone, until=verdict.until.isoformat())
        else:
            await release_unsent(store, lease.attempt_id, final_reason=verdict.reason)
            log.warning("lead.blocked", campaign=campaign.name, number=lease.phone, reason=verdict.reason)
    return screened
