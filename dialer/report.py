"""A campaign's report, computed from its stored attempts and leads (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dialer.core.outcomes import Outcome, abandon_rate, live_answers


def _seconds(end: datetime | None, start: datetime | None) -> float | None:
    if end is None or start is None:
        return None
    return round((end - start).total_seconds(), 3)


def build_report(name: str, leads: Sequence[dict[str, Any]], attempts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    outcomes = Counter(a["outcome"] for a in attempts if a["outcome"])
    # Calls a PBX fault ended after the customer answered (Asterisk restart, AMI lost):
    # their leads are due again, and they count in no rate.
    cut = Counter(a["outcome"] for a in attempts if a.get("cut_short"))
    live = live_answers(outcomes) - live_answers(cut)
    agents = Counter(a["agent_id"] for a in attempts if a["outcome"] == "answered" and a["agent_id"])
    talk = [
        s
        for a in attempts
        if a["outcome"] == "answered" and not a.get("cut_short") and (s := _seconds(a["ended_at"], a["bridged_at"]))
        is not None
    ]
    lead_states = Counter(lead["state"] for lead in leads)
    return {
        "campaign": name,
        "leads": {
            "total": len(leads),
            "pending": lead_states.get("pending", 0),
            "in_progress": lead_states.get("leased", 0),
            "done": lead_states.get("done", 0),
        },
        "attempts": len(attempts),
        "in_progress": sum(1 for a in attempts if not a["outcome"]),
        "outcomes": dict(sorted(outcomes.items())),
        "live_answered": live,
        "abandoned": outcomes.get("abandoned", 0),
        "abandon_rate": round(abandon_rate(outcomes.get(Outcome.abandoned, 0), live), 4),
        "interrupted": outcomes.get("interrupted", 0),
        "cut_short": dict(sorted(cut.items())),
        "calls_per_agent": dict(sorted(agents.items())),
        # Why leads are done (campaign rules: retries used up, dnc, a disposition ...).
        "final_reasons": dict(sorted(Counter(l["final_reason"] for l in leads if l.get("final_reason")).items())),
        "dispositions": dict(sorted(Counter(a["disposition"] for a in attempts if a.get("disposition")).items())),
        "by_tier": by_tier(attempts),
        "mean_talk_seconds": round(sum(talk) / len(talk), 2) if talk else None,
        "calls": [
            {
                "attempt": a["id"],
                "number": a["phone"],
                "attempt_no": a["attempt_no"],
                "outcome": a["outcome"],
                "cut_short": bool(a.get("cut_short")),
                "hangup_cause": a["hangup_cause"],
                "agent": a["agent_id"],
                "dialed_at": a["dialed_at"].isoformat() + "Z" if a["dialed_at"] else None,
                "ring_seconds": _seconds(a["answered_at"] or a["ended_at"], a["dialed_at"]),
                "wait_for_agent_seconds": _seconds(a["bridged_at"], a["answered_at"]),
                "talk_seconds": _seconds(a["ended_at"], a["bridged_at"]),
            }
            for a in attempts
        ],
    }


UNTIERED = "untiered"
"""Attempts placed before tiers were recorded."""


def by_tier(attempts: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Attempts, outcomes and the abandon rate per customer tier at dial time."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        groups.setdefault(attempt.get("tier") or UNTIERED, []).append(attempt)
    result = {}
    for tier, group in sorted(groups.items()):
        outcomes = Counter(a["outcome"] for a in group if a["outcome"])
        cut = Counter(a["outcome"] for a in group if a.get("cut_short"))
        live = live_answers(outcomes) - live_answers(cut)
        routed = Counter(a.get("routing") for a in group if a.get("routing"))
        result[tier] = {
            "attempts": len(group),
            "outcomes": dict(sorted(outcomes.items())),
            "live_answered": live,
            "abandoned": outcomes.get("abandoned", 0),
            "abandon_rate": round(abandon_rate(outcomes.get(Outcome.abandoned, 0), live), 4),
            "routing": dict(sorted(routed.items())),
            "agents": dict(sorted(Counter(a["agent_id"] for a in group if a["agent_id"]).items())),
        }
    return result


def render_text(report: dict[str, Any]) -> str:
    leads = report["leads"]
    lines = [
        f"Campaign {report['campaign']}",
        f"  leads     {leads['total']} total, {leads['done']} done, {leads['pending']} pending, "
        f"{leads['in_progress']} in progress",
        f"  attempts  {report['attempts']}",
    ]
    for outcome, count in report["outcomes"].items():
        lines.append(f"    {outcome:<12} {count}")
    lines.append(
        f"  abandon rate {report['abandon_rate']:.2%} ({report['abandoned']} of {report['live_answered']} live answers)"
    )
    cut = report.get("cut_short") or {}
    if report.get("interrupted") or cut:
        talking = cut.get("answered", 0)
        lines.append(
            f"  ended by a PBX fault: {report.get('interrupted', 0)} interrupted "
            f"({cut.get('interrupted', 0)} after the answer), {talking} conversation(s) cut short; "
            "leads due again, none in the abandon rate"
        )
    for tier, figures in report.get("by_tier", {}).items():
        lines.append(
            f"  tier {tier:<10} {figures['attempts']} attempts, abandon rate {figures['abandon_rate']:.2%} "
            f"({figures['abandoned']} of {figures['live_answered']} live answers)"
        )
    if report["calls_per_agent"]:
        per_agent = ", ".join(f"{agent} {n}" for agent, n in report["calls_per_agent"].items())
        lines.append(f"  calls per agent: {per_agent}")
    if report.get("final_reasons"):
        reasons = ", ".join(f"{reason} {n}" for reason, n in report["final_reasons"].items())
        lines.append(f"  leads done because: {reasons}")
    if report.get("dispositions"):
        lines.append("  dispositions: " + ", ".join(f"{code} {n}" for code, n in report["dispositions"].items()))
    if report["mean_talk_seconds"] is not None:
        lines.append(f"  mean talk time {report['mean_talk_seconds']} s")
    return "\n".join(lines)
