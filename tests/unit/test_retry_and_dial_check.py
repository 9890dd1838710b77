"""Retry scheduling, deny patterns and the dial-time check, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dialer.config.campaign_rules import DEFAULT_RETRIES, retry_rules
from dialer.core.calling_window import CallingWindow
from dialer.core.dial_check import Wait, check_lead
from dialer.core.dialable import Blocked, DenyList, dial_block
from dialer.core.retry import PRIORITY_ABANDONED, PRIORITY_NORMAL, Close, Retry, RetryRule, after_attempt

NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
RULES = {
    "busy": RetryRule(timedelta(minutes=10), 3),
    "abandoned": RetryRule(timedelta(hours=1), 2),
}


def test_a_busy_lead_is_retried_after_its_delay_until_its_attempts_are_used() -> None:
    assert after_attempt("busy", 1, NOW, RULES) == Retry(NOW + timedelta(minutes=10), PRIORITY_NORMAL)
    assert after_attempt("busy", 2, NOW, RULES) == Retry(NOW + timedelta(minutes=10), PRIORITY_NORMAL)
    assert after_attempt("busy", 3, NOW, RULES) == Close("max_attempts_busy")


def test_abandoned_calls_are_retried_with_priority() -> None:
    step = after_attempt("abandoned", 1, NOW, RULES)
    assert step == Retry(NOW + timedelta(hours=1), PRIORITY_ABANDONED)
    assert PRIORITY_ABANDONED > PRIORITY_NORMAL


def test_outcomes_without_a_rule_close_the_lead_with_the_outcome_as_reason() -> None:
    assert after_attempt("answered", 1, NOW, RULES) == Close("answered")
    assert after_attempt("rejected", 1, NOW, RULES) == Close("rejected")
    assert after_attempt("busy", 1, NOW, {}) == Close("busy")


def test_default_retries_cover_the_issues_outcomes() -> None:
    rules = retry_rules(DEFAULT_RETRIES)
    assert set(rules) >= {"busy", "no_answer", "congestion", "machine", "abandoned"}
    assert all(rule.max_attempts >= 2 for rule in rules.values())


def test_emergency_and_premium_numbers_are_denied_whatever_the_lists_say() -> None:
    deny = DenyList.with_defaults()
    for number in ("911", "112", "+112", "999", "9110", "+19005550123", "+449012345678", "+33891234567"):
        assert dial_block(number, deny, set()) == Blocked("denied_number"), number
    for number in ("+12125550123", "+442079460018", "1030200007"):
        assert dial_block(number, deny, set()) is None, number


def test_campaign_deny_patterns_add_to_the_built_in_ones() -> None:
    deny = DenyList.with_defaults([r"^\+1212"])
    assert dial_block("+12125550123", deny, set()) == Blocked("denied_number")
    assert deny.denies("911")


def test_a_number_on_a_dnc_list_is_blocked() -> None:
    assert dial_block("+12125550123", DenyList.with_defaults(), {"+12125550123"}) == Blocked("dnc")


def test_check_lead_waits_for_the_window_in_the_customers_zone() -> None:
    window = CallingWindow(days=frozenset(range(7)), start_minute=8 * 60, end_minute=21 * 60)
    deny = DenyList.with_defaults()
    new_york = ZoneInfo("America/New_York")
    early = datetime(2026, 6, 1, 11, 0, tzinfo=UTC)  # 07:00 EDT
    assert check_lead("+12125550123", [new_york], now=early, window=window, deny=deny, on_dnc_list=set()) == Wait(
        datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    )
    assert check_lead("+12125550123", [new_york], now=NOW, window=window, deny=deny, on_dnc_list=set()) is None
    # DNC wins over the window: the lead is closed, not deferred.
    assert check_lead(
        "+12125550123", [new_york], now=early, window=window, deny=deny, on_dnc_list={"+12125550123"}
    ) == Blocked("dnc")
    # No known zone: the window cannot hold the lead.
    assert check_lead("1030200007", [], now=early, window=window, deny=deny, on_dnc_list=set()) is None


def test_check_lead_closes_a_lead_whose_zones_never_share_an_open_hour() -> None:
    window = CallingWindow(days=frozenset(range(7)), start_minute=9 * 60, end_minute=10 * 60)
    zones = [ZoneInfo("Europe/Berlin"), ZoneInfo("America/Los_Angeles")]
    verdict = check_lead("+1800", zones, now=NOW, window=window, deny=DenyList(()), on_dnc_list=set())
    assert verdict == Blocked("no_calling_window")


def test_a_due_callback_goes_to_its_agent_while_free_waits_while_busy_and_falls_back_after_grace() -> None:
    from dialer.core.agents import AgentState
    from dialer.core.dial_check import CALLBACK_RECHECK, Direct, callback_route

    due = NOW
    grace = timedelta(minutes=2)
    free = AgentState(id="agent2", interface="PJSIP/agent2", queues={"sales"}, device_status=1)
    busy = AgentState(id="agent2", interface="PJSIP/agent2", queues={"sales"}, device_status=2, on_call="x")
    logged_out = AgentState(id="agent2", interface="PJSIP/agent2")
    assert callback_route(free, due, NOW, grace) == Direct("PJSIP/agent2")
    assert callback_route(busy, due, NOW, grace) == Wait(NOW + CALLBACK_RECHECK)
    assert callback_route(busy, due, NOW + timedelta(seconds=119), grace) == Wait(NOW + grace)
    assert callback_route(busy, due, NOW + grace, grace) is None  # anyone now
    assert callback_route(logged_out, due, NOW, grace) is None
    assert callback_route(None, due, NOW, grace) is None
