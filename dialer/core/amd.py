"""Answering-machine verdicts in the abandon rate.

A call AMD takes for a machine is no live answer and is counted apart (outcome
`machine`). Some rules (UK Ofcom) want AMD's false positives, people taken for
machines and hung up on, counted as abandoned calls, using a reasoned estimate of how
many there were. With `rate` the estimated share of machine verdicts that were people,
`n` machine verdicts count as ceil(n * rate) abandoned live answers: rounding up, so
the estimate never flatters the rate. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from dialer.core.outcomes import Outcome, abandon_rate, live_answers

# Tolerance for float products such as 10 * 0.1 landing a hair above 1.
_EPS = 1e-9


def estimated_false_positives(machines: int, rate: float) -> int:
    if machines < 0 or not 0.0 <= rate <= 1.0:
        raise ValueError(f"need machines >= 0 and 0 <= rate <= 1, got {machines}, {rate}")
    return math.ceil(machines * rate - _EPS)


@dataclass
class FalsePositiveCounter:
    """Says, machine verdict by machine verdict, which ones to count as abandoned calls."""

    rate: float
    counted: bool = True
    machines: int = 0

    def machine(self) -> bool:
        """One more machine verdict: True if it tips the estimate up by one abandoned call."""
        if not self.counted:
            return False
        before = estimated_false_positives(self.machines, self.rate)
        self.machines += 1
        return estimated_false_positives(self.machines, self.rate) > before


@dataclass(frozen=True)
class AbandonFigures:
    live_answered: int
    abandoned: int
    false_positives: int
    """Of `abandoned` (and of `live_answered`): machine verdicts counted as abandoned people."""

    @property
    def rate(self) -> float:
        return round(abandon_rate(self.abandoned, self.live_answered), 4)


def abandon_figures(outcomes: Mapping[str, int], *, count_false_positives: bool, rate: float) -> AbandonFigures:
    """The abandon rate's counts from a campaign's outcome counts."""
    fp = estimated_false_positives(outcomes.get(Outcome.machine, 0), rate) if count_false_positives else 0
    return AbandonFigures(
        live_answered=live_answers(outcomes) + fp, abandoned=outcomes.get(Outcome.abandoned, 0) + fp, false_positives=fp
    )
