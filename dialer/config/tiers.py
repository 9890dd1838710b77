"""Pydantic models for customer tiers: the deployment's ladder (`config/dialer.yaml`
`tiers:`) and a campaign's tier settings (`campaigns/*.yaml` `tiers:`).

`docs/tiers.md` describes every field; the decisions made with these values
are the pure core's (`dialer.core.tiers`, `dialer.core.routing`,
`dialer.core.contact_policy`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialer.ami.values import QueueName
from dialer.core.contact_policy import ContactRule
from dialer.core.routing import TierRoute
from dialer.core.tiers import Tier, TierLadder

_NAME = r"^[a-z0-9_-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactPolicyConfig(_Strict):
    """How often one customer may be called, across every campaign."""

    min_days_between: float = Field(0, ge=0, le=3650, description="days from one contact to the next")
    max_attempts: int | None = Field(None, ge=1, le=1000, description="dial attempts per period at most")
    period_days: float = Field(30, gt=0, le=3650, description="the period max_attempts counts over")

    def rule(self) -> ContactRule:
        return ContactRule(self.min_days_between, self.max_attempts, self.period_days)


class TierConfig(_Strict):
    name: str = Field(pattern=_NAME, max_length=32)
    rank: int = Field(ge=1, le=100, description="1 is the top tier")
    contact: ContactPolicyConfig = ContactPolicyConfig()


DEFAULT_TIERS = [
    TierConfig(name="key", rank=1, contact=ContactPolicyConfig(min_days_between=30)),
    TierConfig(name="gold", rank=2, contact=ContactPolicyConfig(min_days_between=14)),
    TierConfig(name="standard", rank=3, contact=ContactPolicyConfig(min_days_between=7)),
]


def check_ladder(tiers: list[TierConfig]) -> list[TierConfig]:
    if not tiers:
        raise ValueError("give at least one tier")
    names = [t.name for t in tiers]
    ranks = [t.rank for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"a tier name appears twice: {names}")
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"two tiers share a rank: {ranks}")
    return tiers


def ladder(tiers: list[TierConfig]) -> TierLadder:
    return TierLadder(tuple(Tier(t.name, t.rank) for t in tiers))


def contact_rules(tiers: list[TierConfig]) -> dict[str, ContactRule]:
    return {t.name: t.contact.rule() for t in tiers}


class ValueRuleConfig(_Strict):
    """The 80/20 rule: customers sorted by value; those making up the first `share` of
    the total are the first tier named, and so on down `cutoffs`."""

    cutoffs: dict[str, float] = Field(
        {"key": 0.8},
        description="tier -> cumulative share of total value, ascending, e.g. {key: 0.8, gold: 0.95}",
    )
    rest: str = Field("standard", pattern=_NAME, description="tier of everyone below the last cut-off")

    @field_validator("cutoffs")
    @classmethod
    def _ascending(cls, cutoffs: dict[str, float]) -> dict[str, float]:
        shares = list(cutoffs.values())
        if not cutoffs:
            raise ValueError("give at least one cut-off, e.g. {key: 0.8}")
        if any(not 0 < s <= 1 for s in shares):
            raise ValueError("each share must be within (0, 1]")
        if shares != sorted(shares) or len(set(shares)) != len(shares):
            raise ValueError("shares must rise from the top tier down, e.g. {key: 0.8, gold: 0.95}")
        return cutoffs

    def ordered(self) -> tuple[tuple[str, float], ...]:
        return tuple(self.cutoffs.items())


class CrmConfig(_Strict):
    """An external CRM that knows each customer's tier, over HTTP GET."""

    url: str = Field(description="template with {phone} and/or {customer_id}, e.g. https://crm/api/tier/{phone}")
    timeout: float = Field(0.5, gt=0, le=10, description="seconds a lookup may take before the stored tier is used")
    cache_ttl: float = Field(300, ge=0, le=86400, description="seconds an answer is reused")
    retry_after: float = Field(30, ge=0, le=3600, description="seconds the CRM is left alone after a failure")
    field: str = Field("tier", description="the JSON field holding the tier (a plain-text body is the tier itself)")
    token_env: str | None = Field(None, description="environment variable with a bearer token")

    @field_validator("url")
    @classmethod
    def _has_key(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "{phone}" not in url and "{customer_id}" not in url:
            raise ValueError("must contain {phone} or {customer_id}")
        return url


class TierRouteConfig(_Strict):
    queue: QueueName | None = Field(None, description="queue of the agents dedicated to the tier")
    priority: int = Field(0, ge=0, le=1000, description="QUEUE_PRIO in the dedicated queue")
    fallback_queue: QueueName | None = Field(None, description="general queue; default: the campaign's")
    fallback_priority: int = Field(10, ge=0, le=1000, description="QUEUE_PRIO in the fallback queue (raised)")
    fallback_after: int = Field(1, ge=1, le=60, description="seconds in the dedicated queue before the fallback")
    max_wait: int | None = Field(
        None, ge=1, le=600,
        description="seconds the customer may wait in all before the abandon message; default: dialing.agent_wait",
    )
    reserve_agent: bool | None = Field(
        None, description="dial only when an agent is free for the call (default: yes for the top tier)"
    )
    wait_for_dedicated: bool = Field(
        False,
        description="reserved tiers: while a dedicated agent is logged in, dial only when one of them is free "
        "(never borrow a general agent)",
    )
    lend_to_general: bool = Field(
        True,
        description="reserved tiers: the dedicated agents also take general calls (added to the fallback queue) "
        "while no customer of the tier is ringing, waiting or due (dialer.core.lending)",
    )
    lend_ahead: int = Field(
        60, ge=0, le=3600,
        description="seconds before a lead of the tier is due that a lent agent is taken back from the general queue",
    )

    def route(self) -> TierRoute:
        return TierRoute(
            queue=self.queue,
            priority=self.priority,
            fallback_queue=self.fallback_queue,
            fallback_priority=self.fallback_priority,
            fallback_after=self.fallback_after,
            max_wait=self.max_wait,
        )


TierSource = Literal["column", "value", "crm"]
OrderBy = Literal["tier", "value", "next_attempt"]


class CampaignTiers(_Strict):
    sources: list[TierSource] = Field(
        ["column", "value"], description="where a customer's tier comes from, first that knows wins"
    )
    value_rule: ValueRuleConfig = ValueRuleConfig()
    crm: CrmConfig | None = None
    routing: dict[str, TierRouteConfig] = Field({}, description="tier -> queue, priority and fallback")
    order_by: OrderBy = Field("next_attempt", description="which due leads are dialed first")
    revisit_days: dict[str, float] = Field(
        {}, description="tier -> days after a call that reached the customer to call again (revisit cadence)"
    )

    @model_validator(mode="after")
    def _crm_configured(self) -> CampaignTiers:
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources: a source appears twice: {self.sources}")
        if "crm" in self.sources and self.crm is None:
            raise ValueError("sources has crm: give crm.url")
        for tier, days in self.revisit_days.items():
            if not 0 < days <= 3650:
                raise ValueError(f"revisit_days.{tier}: must be within (0, 3650], got {days}")
        return self

    def reserved_tiers(self, ladder: TierLadder) -> frozenset[str]:
        """Tiers dialed only with an agent free for them (never predictively)."""
        reserved = set()
        for tier in ladder.names():
            rule = self.routing.get(tier)
            flag = rule.reserve_agent if rule is not None else None
            if flag is None:
                flag = tier == ladder.top.name
            if flag:
                reserved.add(tier)
        return frozenset(reserved)

    def routes(self) -> dict[str, TierRoute]:
        return {tier: rule.route() for tier, rule in self.routing.items()}
