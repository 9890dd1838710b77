"""A lead's next step after a call the PBX ended, not the customer (pure).

An `interrupted` attempt (Asterisk restarted, the AMI connection was lost
and the channel was gone, a Hangup with no cause) or a conversation cut short
says nothing about the customer: it never uses up one of the lead's attempts,
and the lead is due again by the campaign's `interrupted` rule. A campaign
without that rule still gets the default one: a fault never closes a lead
for good on its own. Only the rule's own limit, counted in faults, ends it.

A `refused` attempt (Asterisk refused the Originate: nobody was called) is the
same kind of thing: it gives its attempt back, and only the `refused` rule's own
count, of refusals, closes the lead. Counted among the lead's attempts, one
refusal closed a lead that had had four customer attempts (two busy, two no
answer), each under its own rule's limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from dialer.core.outcomes import Outcome
from dialer.core.retry import Close, Retry, RetryRule, after_attempt

FAULT_OUTCOME = Outcome.interrupted.value
# The same as DEFAULT_RETRIES["interrupted"] in dialer.config.campaign_rules.
DEFAULT_FAULT_RULE = RetryRule(delay=timedelta(minutes=30), max_attempts=3)


def is_fault(outcome: str, cut_short: bool) -> bool:
    """Whether an attempt ended by a fault of the PBX or of the dialer's link to it."""
    return outcome == FAULT_OUTCOME or cut_short


REFUSED_OUTCOME = Outcome.refused.value


def after_refusal(refusals: int, now: datetime, rules: Mapping[str, RetryRule]) -> Retry | Close:
    """The lead's next step; `refusals` counts the lead's refused attempts, this one included.

    The campaign's rules always hold a `refused` rule (dialer.config.campaign_rules).
    """
    return after_attempt(REFUSED_OUTCOME, refusals, now, rules)


def after_fault(faults: int, now: datetime, rules: Mapping[str, RetryRule]) -> Retry | Close:
    """The lead's next step; `faults` counts the lead's attempts ended by a fault, this one included."""
    rule = rules.get(FAULT_OUTCOME, DEFAULT_FAULT_RULE)
    return after_attempt(FAULT_OUTCOME, faults, now, {FAULT_OUTCOME: rule})
