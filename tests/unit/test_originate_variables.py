"""The Originate's variables: one function, one source per variable, a fixed precedence
(`dialer.core.originate`, the contract of `asterisk-conf/README.md`)."""

from __future__ import annotations

import pytest

from dialer.core.originate import MEDIA_VARIABLES, CampaignDialplan, originate_variables
from dialer.core.routing import Routing

PLAN = CampaignDialplan(campaign="spring", queue="sales", agent_wait=2, abandon_message="custom/abandon")
KEY = Routing("key", "key-accounts", 10, 1, fallback_queue="sales", fallback_priority=20, fallback_timeout=19,
              reason="dedicated")


def test_a_plain_call_carries_the_campaigns_part_only() -> None:
    assert originate_variables("a1", PLAN) == {
        "DIALER_ATTEMPT": "a1",
        "DIALER_CAMPAIGN": "spring",
        "DIALER_QUEUE": "sales",
        "DIALER_AGENT_WAIT": "2",
        "DIALER_ABANDON_MSG": "custom/abandon",
    }


def test_the_routing_sets_the_queue_and_wait_and_the_customer_goes_with_it() -> None:
    variables = originate_variables("a1", PLAN, routing=KEY, customer="C1001")
    assert (variables["DIALER_QUEUE"], variables["DIALER_AGENT_WAIT"], variables["DIALER_PRIORITY"]) == (
        "key-accounts", "1", "10")
    assert (variables["DIALER_FALLBACK_QUEUE"], variables["DIALER_FALLBACK_PRIORITY"],
            variables["DIALER_FALLBACK_WAIT"]) == ("sales", "20", "19")
    assert (variables["DIALER_TIER"], variables["DIALER_CUSTOMER"]) == ("key", "C1001")
    # Without a routing there is no customer variable at all.
    assert "DIALER_CUSTOMER" not in originate_variables("a1", PLAN, customer="C1001")


def test_the_rendered_abandon_message_replaces_the_sound_name_and_the_callback_agent_comes_last() -> None:
    rendered = CampaignDialplan(
        campaign="spring", queue="sales", agent_wait=2, abandon_message="custom/abandon",
        media={"DIALER_ABANDON_MSG": "/var/lib/dialer/abandon", "DIALER_AMD": "1"},
    )
    variables = originate_variables("a1", rendered, routing=KEY, callback_agent="PJSIP/agent2")
    assert variables["DIALER_ABANDON_MSG"] == "/var/lib/dialer/abandon"
    assert variables["DIALER_AMD"] == "1"
    assert variables["DIALER_AGENT"] == "PJSIP/agent2"
    assert "DIALER_AGENT" not in originate_variables("a1", rendered, callback_agent=None)


@pytest.mark.parametrize("name", ["DIALER_ATTEMPT", "DIALER_CAMPAIGN", "DIALER_QUEUE", "DIALER_AGENT", "X"])
def test_the_campaigns_media_cannot_override_the_call_or_its_routing(name: str) -> None:
    # Before, a dict merged after the routing could replace any of them, silently.
    assert name not in MEDIA_VARIABLES
    with pytest.raises(ValueError, match=name):
        CampaignDialplan(campaign="spring", queue="sales", agent_wait=2, media={name: "other"})
