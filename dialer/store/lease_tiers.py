"""Which leads a lease takes by customer tier, and in what order (SQL expressions).

A customer without a tier, or with one not on the ladder, counts as the
ladder's lowest tier: the filter and the order agree with
`dialer.core.tiers.TierLadder.effective`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import case, not_

from dialer.store.schema import customers

OrderBy = Literal["tier", "value", "next_attempt"]


@dataclass(frozen=True)
class LeaseTiers:
    ranks: Mapping[str, int]
    """The ladder: tier name -> rank (1 the top)."""
    only: frozenset[str] | None = None
    """Lease only customers of these tiers."""
    exclude: frozenset[str] = field(default_factory=frozenset)
    """Never lease customers of these tiers."""
    order_by: OrderBy = "next_attempt"

    def _lowest(self) -> str:
        return max(self.ranks, key=lambda name: self.ranks[name])

    def _effective(self) -> Any:
        known = customers.c.tier.in_(list(self.ranks))
        return case((known, customers.c.tier), else_=self._lowest())

    def where(self) -> list[Any]:
        clauses = []
        if self.only is not None:
            clauses.append(self._effective().in_(sorted(self.only)))
        if self.exclude:
            clauses.append(not_(self._effective().in_(sorted(self.exclude))))
        return clauses

    def order(self) -> list[Any]:
        if self.order_by == "tier":
            whens = [(customers.c.tier == name, rank) for name, rank in self.ranks.items()]
            return [case(*whens, else_=max(self.ranks.values()))]
        if self.order_by == "value":
            # Highest value first; customers without a value last.
            return [customers.c.value.is_(None), customers.c.value.desc()]
        return []


