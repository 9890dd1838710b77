"""The dialer's vocabulary of calls: outcomes, their named sets, dialing modes, the abandon rate (pure).

Every attempt ends with one `Outcome`, stored as its value in `call_attempts.outcome`
(and, when it closes the lead, in `leads.final_outcome`). A new outcome is added here,
then put in the sets below that it belongs to; nothing else lists outcomes.

The abandon rate is abandoned calls over live answers, the abandoned ones included
(a live answer is a person who picked up and needed an agent). Where the rules count
AMD's false positives as abandoned calls, `dialer.core.amd` adds its estimate to both
counts before they get here. Regulators cap the rate at 3 % (`ABANDON_CEILING`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Outcome(StrEnum):
    """How one attempt ended. The values are what the database holds: never rename one."""

    answered = "answered"
    """A person answered and an agent took the call."""
    busy = "busy"
    no_answer = "no_answer"
    rejected = "rejected"
    """The callee declined the call (Q.850 cause 21)."""
    congestion = "congestion"
    """The network or the carrier had no room for the call."""
    machine = "machine"
    """AMD took the answer for a machine and hung up: no live answer."""
    abandoned = "abandoned"
    """A person answered and no agent was bridged within the grace time."""
    failed = "failed"
    """A bad number, or an end nothing else explains."""
    interrupted = "interrupted"
    """The PBX (or the dialer's link to it) ended the call, not the far end."""
    refused = "refused"
    """Asterisk or the trunk refused the Originate: nobody was called."""
    not_sent = "not_sent"
    """The Originate never left the dialer."""
    completed = "completed"
    """An IVR flow (survey) reached its end with no agent."""
    partial = "partial"
    """The customer hung up in the middle of an IVR flow."""
    opted_out = "opted_out"
    """The customer pressed the IVR flow's opt-out key."""


LIVE_ANSWER = frozenset({Outcome.answered, Outcome.abandoned})
"""A person answered and needed an agent: the abandon rate's denominator."""

LEARNABLE = frozenset(
    {
        Outcome.answered,
        Outcome.busy,
        Outcome.no_answer,
        Outcome.rejected,
        Outcome.congestion,
        Outcome.failed,
        Outcome.abandoned,
        Outcome.machine,
    }
)
"""What the pacing learns ring and answer times from: the far end's doing. Left out: a
fault's (`interrupted`, `not_sent`), `refused` (nobody was called) and an IVR flow's
ends, which no agent waits for."""

RETRYABLE = (
    Outcome.busy,
    Outcome.no_answer,
    Outcome.congestion,
    Outcome.machine,
    Outcome.abandoned,
    Outcome.failed,
    Outcome.interrupted,
    Outcome.refused,
)
"""Outcomes a campaign's `retries` may name; any other closes the lead with the outcome as
its reason. A tuple: the config's error messages list them in this order."""

LINE_BUSY = frozenset({Outcome.busy, Outcome.congestion})
"""No ringing at all: the line or the network was busy (`dialer tune` models their time apart)."""

NOT_PLACED = frozenset({Outcome.not_sent, Outcome.refused})
"""Attempts that reached nobody: they count as no contact with the customer."""

UNTOLD = frozenset({Outcome.refused, Outcome.interrupted, Outcome.failed})
"""Outcomes `dialer tune` takes as saying nothing about the customers it models."""

REACHED = frozenset({Outcome.answered, Outcome.completed})
"""The customer was served, by an agent or by an IVR flow to its end: a call back from
them answers nothing."""

IVR_ENDS = frozenset({Outcome.completed, Outcome.partial, Outcome.opted_out})
"""How an IVR flow with no agent ends, named as the flow's own status."""


class DialingMode(StrEnum):
    """How a campaign paces its calls; the values are the names campaign files use."""

    progressive = "progressive"
    """One call per free agent."""
    ratio = "ratio"
    """A fixed number of calls per free agent."""
    predictive = "predictive"
    """As many as the forecast says keep the abandon rate on target."""


ABANDON_CEILING = 0.03
"""The regulators' 3 %: a campaign may set a lower limit, a higher one only by override."""


def abandon_rate(abandoned: int, live_answered: int) -> float:
    """Abandoned calls over live answers (the abandoned included); 0 before any live answer."""
    if abandoned < 0 or live_answered < 0:
        raise ValueError(f"counts must not be negative: {abandoned} abandoned of {live_answered}")
    return abandoned / live_answered if live_answered else 0.0


def live_answers(counts: Mapping[str, int]) -> int:
    """Live answers among counts per outcome (outcomes missing from `counts` count 0)."""
    return sum(counts.get(o, 0) for o in LIVE_ANSWER)
