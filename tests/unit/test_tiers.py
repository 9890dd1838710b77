"""Tiers: the ladder and the 80/20 value rule (ties, zero values, one customer), and the
campaign's tier settings."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from dialer.config.models import Campaign, DialerConfig
from dialer.config.tiers import CampaignTiers, ladder
from dialer.core.tiers import Tier, TierLadder, first_known, value_tiers

KEY_80 = (("key", 0.8),)
THREE = (("key", 0.8), ("gold", 0.95))


def test_customers_making_up_the_first_80_percent_of_value_are_key() -> None:
    values = {"a": 50.0, "b": 30.0, "c": 15.0, "d": 5.0}
    assert value_tiers(values, KEY_80, "standard") == {"a": "key", "b": "key", "c": "standard", "d": "standard"}


def test_further_cut_offs_give_the_next_tiers() -> None:
    values = {"a": 50.0, "b": 30.0, "c": 15.0, "d": 5.0}
    assert value_tiers(values, THREE, "standard") == {"a": "key", "b": "key", "c": "gold", "d": "standard"}


def test_the_customer_who_crosses_the_cut_off_is_still_key() -> None:
    # 70 % before c; c takes the sum to 95 %: c is part of the first 80 %.
    values = {"a": 40.0, "b": 30.0, "c": 25.0, "d": 5.0}
    assert value_tiers(values, KEY_80, "standard")["c"] == "key"
    assert value_tiers(values, KEY_80, "standard")["d"] == "standard"


def test_equal_values_share_a_tier_whatever_the_order() -> None:
    values = {"a": 60.0, "b": 20.0, "c": 20.0}  # 60 % before b and c: both key, though together 100 %
    assert value_tiers(values, KEY_80, "standard") == {"a": "key", "b": "key", "c": "key"}
    tied = {"x": 10.0, "y": 10.0, "z": 10.0, "w": 10.0, "v": 60.0}  # 60 % before the four tied: all key
    assert set(value_tiers(tied, KEY_80, "standard").values()) == {"key"}
    split = {"p": 80.0, "q": 10.0, "r": 10.0}  # 80 % before q and r: neither is key
    assert value_tiers(split, KEY_80, "standard") == {"p": "key", "q": "standard", "r": "standard"}


def test_ties_do_not_depend_on_input_order() -> None:
    rng = random.Random(4)
    values = {f"c{i}": float(rng.choice([0, 5, 5, 10, 20, 20, 50])) for i in range(40)}
    expected = value_tiers(values, THREE, "standard")
    for _ in range(5):
        keys = list(values)
        rng.shuffle(keys)
        assert value_tiers({k: values[k] for k in keys}, THREE, "standard") == expected


def test_zero_values_are_never_key() -> None:
    assert value_tiers({"a": 100.0, "b": 0.0, "c": 0.0}, KEY_80, "standard") == {
        "a": "key", "b": "standard", "c": "standard"
    }
    # A cut-off of 100 % would take everyone with value; still not those with none.
    assert value_tiers({"a": 100.0, "b": 0.0}, (("key", 1.0),), "standard") == {"a": "key", "b": "standard"}


def test_all_values_zero_means_nobody_stands_out() -> None:
    assert value_tiers({"a": 0.0, "b": 0.0}, KEY_80, "standard") == {"a": "standard", "b": "standard"}


def test_a_single_customer_with_value_is_key() -> None:
    assert value_tiers({"only": 12.5}, THREE, "standard") == {"only": "key"}


def test_customers_without_a_value_get_no_value_tier() -> None:
    assert value_tiers({"a": 10.0, "b": None}, KEY_80, "standard") == {"a": "key"}
    assert value_tiers({}, KEY_80, "standard") == {}


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValueError):
        value_tiers({"a": -1.0}, KEY_80, "standard")


def test_exact_share_arithmetic() -> None:
    # 0.1 + 0.7 is not 0.8 in floats; the rule must not put c on the wrong side.
    values = {"a": 0.7, "b": 0.1, "c": 0.09, "d": 0.06, "e": 0.05}
    assert 0.7 + 0.1 < 0.8  # what a float sum would say of the value before c
    assert value_tiers(values, KEY_80, "standard") == {
        "a": "key", "b": "key", "c": "standard", "d": "standard", "e": "standard"
    }


def test_ladder_treats_unknown_tiers_as_the_lowest() -> None:
    tiers = TierLadder((Tier("standard", 3), Tier("key", 1), Tier("gold", 2)))
    assert tiers.names() == ("key", "gold", "standard")
    assert tiers.top.name == "key"
    assert tiers.effective("Gold ") == "gold"
    assert tiers.effective("platinum") == "standard"
    assert tiers.effective(None) == "standard"
    assert tiers.known("platinum") is None


def test_first_known_source_wins() -> None:
    assert first_known([None, "gold", "key"]) == "gold"
    assert first_known([None, None]) is None


def test_default_ladder_and_contact_policy() -> None:
    config = DialerConfig(ami=[{"username": "dialer", "secret": "x"}])
    assert [(t.name, t.rank, t.contact.min_days_between) for t in config.tiers] == [
        ("key", 1, 30), ("gold", 2, 14), ("standard", 3, 7)
    ]


def test_ladder_must_have_unique_names_and_ranks() -> None:
    with pytest.raises(ValidationError, match="share a rank"):
        DialerConfig(ami=[{"username": "d", "secret": "x"}], tiers=[{"name": "a", "rank": 1}, {"name": "b", "rank": 1}])
    with pytest.raises(ValidationError, match="appears twice"):
        DialerConfig(ami=[{"username": "d", "secret": "x"}], tiers=[{"name": "a", "rank": 1}, {"name": "a", "rank": 2}])


def test_value_rule_cut_offs_must_rise() -> None:
    with pytest.raises(ValidationError, match="rise"):
        CampaignTiers(value_rule={"cutoffs": {"key": 0.9, "gold": 0.8}})
    with pytest.raises(ValidationError, match="crm"):
        CampaignTiers(sources=["crm"])
    with pytest.raises(ValidationError, match=r"\{phone\}"):
        CampaignTiers(sources=["crm"], crm={"url": "http://crm/tier"})


def test_the_top_tier_is_reserved_unless_a_rule_says_otherwise() -> None:
    tiers = ladder(DialerConfig(ami=[{"username": "d", "secret": "x"}]).tiers)
    assert CampaignTiers().reserved_tiers(tiers) == {"key"}
    custom = CampaignTiers(routing={"key": {"reserve_agent": False}, "gold": {"reserve_agent": True}})
    assert custom.reserved_tiers(tiers) == {"gold"}


def test_campaign_takes_tier_settings_and_a_script() -> None:
    campaign = Campaign(
        name="key",
        type="callback",
        trunk="PJSIP/{number}@carrier",
        caller_id="+15550100",
        queue="sales",
        script="Hello {name}, this is your account team.",
        tiers={
            "sources": ["column", "value"],
            "routing": {"key": {"queue": "key-accounts", "priority": 10, "fallback_after": 1}},
            "order_by": "value",
            "revisit_days": {"key": 30},
        },
    )
    assert campaign.tiers.routes()["key"].queue == "key-accounts"
    assert campaign.tiers.order_by == "value"
