"""The supervisor page's figures for one campaign: the report's own, and the live ones.

The counted figures come from `dialer.report.build_report` over the same rows
`dialer report --json` reads, so the page and the report cannot disagree; the
live ones (lines by stage, dial level, occupancy, the pacing's abandon window)
from the campaign's runner and the agent board, as /metrics shows them.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import select

from dialer.core.calling_window import lead_zones
from dialer.leads.phone_numbers import time_zones
from dialer.report import build_report
from dialer.store.schema import call_attempts, customers, leads
from dialer.control.daemon_view import DaemonView, RunnerView

BUSY_LABELS = {"talking", "ringing", "wrapup"}


async def outside_window(daemon: DaemonView, runner: RunnerView) -> int:
    """Attempts dialed when the calling window was closed in the customer's zone (should stay 0).

    An attempt whose customer's zone is unknown cannot be judged and is not counted.
    """
    assert daemon.store is not None
    window = runner.campaign.calling_hours.window()
    fallback = runner.campaign.calling_hours.timezone
    query = (
        select(call_attempts.c.dialed_at, call_attempts.c.phone, customers.c.timezone)
        .join(leads, leads.c.id == call_attempts.c.lead_id)
        .join(customers, customers.c.id == leads.c.customer_id)
        .where(call_attempts.c.campaign_id == runner.campaign_id, call_attempts.c.dialed_at.is_not(None))
    )
    async with daemon.store._read() as conn:
        rows = (await conn.execute(query)).all()
    outside = 0
    for dialed_at, phone, own in rows:
        zones = lead_zones(own, time_zones(phone), fallback)
        if zones and not window.open_in_all(dialed_at.replace(tzinfo=UTC), zones):
            outside += 1
    return outside


def live_figures(daemon: DaemonView, runner: RunnerView) -> dict[str, Any]:
    counts = runner.live_counts()
    dialing = runner.campaign.dialing
    members = daemon.agents_in_queue(runner.campaign.queue)
    busy = sum(1 for a in members if a.label in BUSY_LABELS)
    window = runner.abandon_window.state(daemon.clock(), dialing.abandon_limit)
    wrapups = runner.stats.wrapup_samples()
    return {
        "ringing": counts.ringing,
        "waiting": counts.waiting,
        "talking": counts.talking,
        "max_lines": dialing.max_lines,
        "agents": len(members),
        "dial_level": counts.lines / len(members) if members else 0.0,
        "occupancy": busy / len(members) if members else 0.0,
        "abandon_window": dialing.abandon_window,
        "window_rate": window.rate,
        "abandon_target": dialing.abandon_target,
        "abandon_limit": dialing.abandon_limit,
        "answers_needed": window.answers_needed,
        "wrapups": len(wrapups),
        "wrapup_mean": round(sum(wrapups) / len(wrapups), 2) if wrapups else None,
    }


async def campaign_figures(daemon: DaemonView, name: str) -> dict[str, Any]:
    assert daemon.store is not None
    runner = daemon.runners.get(name)
    state = daemon.campaign_state(name).value
    if runner is None:
        return {"name": name, "state": state, "report": None, "live": None, "outside_window": 0}
    report = build_report(
        name, await daemon.store.leads(runner.campaign_id), await daemon.store.attempts(runner.campaign_id)
    )
    report.pop("calls", None)  # one row per call: not for a page refreshed live
    return {
        "name": name,
        "state": state,
        "report": report,
        "live": live_figures(daemon, runner),
        "outside_window": await outside_window(daemon, runner),
    }
