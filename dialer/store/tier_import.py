"""Tiers after a lead import: the file's `tier` column and the 80/20 value rule,
recomputed over all of the campaign's customers (docs/tiers.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from dialer.config.models import Campaign
from dialer.config.tiers import TierConfig, ladder
from dialer.store import tier_store
from dialer.store.store import Store


async def tiers_after_import(
    store: Store, campaign_id: int, campaign: Campaign, tiers: list[TierConfig], rows: Iterable[Any]
) -> Counter[str]:
    """Customers per tier once the campaign's sources are applied."""
    settings = campaign.tiers
    return await tier_store.apply_import_tiers(
        store,
        campaign_id,
        sources=settings.sources,
        cutoffs=settings.value_rule.ordered(),
        rest=settings.value_rule.rest,
        ladder=ladder(tiers),
        column_phones={row.phone for row in rows if row.tier} if "column" in settings.sources else set(),
    )


def tier_summary(counts: Counter[str], tiers: list[TierConfig]) -> str:
    order = [t.name for t in sorted(tiers, key=lambda t: t.rank)]
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in order)
