"""The webhook section of `dialer report`: deliveries and failures per endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dialer.config.models import Campaign
from dialer.store import webhook_outbox
from dialer.store.store import Store


async def add_webhooks(report: dict[str, Any], store: Store, campaign_id: int, settings: Campaign | None) -> None:
    """`report["webhooks"]`, per webhook name: delivered, pending, dead, failed_tries, last_error;
    present when the campaign has webhooks or ever had deliveries."""
    section = {}
    for row in await webhook_outbox.summary(store, campaign_id):
        section[row["webhook"]] = {k: v for k, v in row.items() if k not in ("campaign", "webhook")}
    for hook in settings.webhooks if settings is not None else ():
        section.setdefault(
            hook.name, {"delivered": 0, "pending": 0, "dead": 0, "failed_tries": 0, "last_error": None}
        )
    if section:
        report["webhooks"] = dict(sorted(section.items()))


def webhooks_text(report: Mapping[str, Any]) -> str:
    section = report.get("webhooks")
    if not section:
        return ""
    lines = ["", "  webhooks"]
    for name, figures in section.items():
        line = (
            f"    {name:<20} {figures['delivered']} delivered, {figures['pending']} pending, "
            f"{figures['dead']} dead letter(s), {figures['failed_tries']} failed tr{'y' if figures['failed_tries'] == 1 else 'ies'}"
        )
        if figures["last_error"] and (figures["dead"] or figures["pending"]):
            line += f"; last error: {figures['last_error']}"
        lines.append(line)
    if any(f["dead"] for f in section.values()):
        lines.append("    dead letters: `dialer webhooks list --dead`, then `dialer webhooks requeue`")
    return "\n".join(lines)
