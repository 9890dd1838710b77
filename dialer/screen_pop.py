"""The screen pop: what an agent sees the moment their phone rings for a call.

The customer (name, tier, value), their last contacts in any campaign and
how those ended, open callbacks, and the campaign's script. Served by
`GET /agents/{id}/current`; the same call's tier and customer id also reach
the agent's phone as SIP headers and CTI integrations as the AMI UserEvent
`DialerScreenPop` (`screen_pop_event`, sent by `dialer.daemon.tier_dialing` and
`dialer.inbound`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dialer.ami.values import header_text
from dialer.config.models import Campaign
from dialer.store import tier_store
from dialer.store.store import Store


def _iso(moment: datetime | None) -> str | None:
    # The store keeps naive UTC datetimes.
    return None if moment is None else moment.replace(tzinfo=UTC).isoformat()


async def screen_pop(
    store: Store,
    campaign: Campaign | None,
    lead_id: int,
    *,
    tier: str | None = None,
    routing: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The screen-pop data for a call to `lead_id`; None when the lead is unknown.

    `tier` is the tier the call was placed with (it may be fresher than the
    stored one, from the CRM); `routing` the queue it was routed to and why.
    """
    rows = await tier_store.screen_pop_rows(store, lead_id)
    if rows is None:
        return None
    return {
        "customer": {
            "name": rows["name"],
            "phone": rows["phone"],
            "id": rows["external_id"],
            "tier": tier or rows["tier"],
            "stored_tier": rows["tier"],
            "tier_source": rows["tier_source"],
            "value": rows["value"],
        },
        "routing": routing,
        "last_contacts": [
            {
                "attempt": c["attempt"],
                "campaign": c["campaign"],
                "at": _iso(c["dialed_at"]),
                "outcome": c["outcome"],
                "disposition": c["disposition"],
                "agent": c["agent_id"],
            }
            for c in rows["last_contacts"]
        ],
        "open_callbacks": [
            {"id": c["id"], "campaign": c["campaign"], "due_at": _iso(c["due_at"]), "agent": c["agent_id"],
             "state": c["state"]}
            for c in rows["open_callbacks"]
        ],
        "script": campaign.script if campaign is not None else None,
        "lead_data": rows["data"] or {},
    }


async def for_attempt(store: Store, runner: Any, attempt_id: str) -> dict[str, Any] | None:
    """Screen pop of an attempt the runner `runner` (a CampaignRunner) is following."""
    attempt = runner.attempts.get(attempt_id)
    if attempt is None:
        return None
    info = runner.tiers.calls.get(attempt_id)
    routing = None
    if info is not None:
        routing = {"queue": info.routing.queue, "reason": info.routing.reason, "priority": info.routing.priority,
                   "fallback_queue": info.routing.fallback_queue}
    return await screen_pop(
        store, runner.campaign, attempt.lead_id, tier=info.tier if info else None, routing=routing
    )


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
