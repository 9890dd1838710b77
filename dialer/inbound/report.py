"""The inbound section of `dialer report`: customers who called the campaign's number back."""

from __future__ import annotations

from typing import Any

from dialer.store import inbound_calls
from dialer.store.store import Store


async def add_inbound(report: dict[str, Any], store: Store, campaign_id: int) -> None:
    rows = await inbound_calls.calls(store, campaign_id)
    if rows:
        report["inbound"] = inbound_calls.summary(rows)


def inbound_text(report: dict[str, Any]) -> str:
    inbound = report.get("inbound")
    if not inbound:
        return ""
    lines = [
        "",
        f"  inbound callbacks {inbound['calls']}: {inbound['answered']} reached an agent, "
        f"{inbound['unknown_callers']} from unknown numbers, {inbound['callbacks_requested']} asked for a callback; "
        f"{inbound['abandons_closed']} abandoned call(s) answered back",
    ]
    for tier, figures in sorted(inbound["by_tier"].items()):
        outcomes = ", ".join(f"{o} {n}" for o, n in sorted(figures["outcomes"].items()))
        routing = ", ".join(f"{o} {n}" for o, n in sorted(figures["routing"].items()))
        lines.append(f"    tier {tier:<10} {figures['calls']} calls ({outcomes}); routed {routing}")
    return "\n".join(lines)
