"""`dialer tune`'s search: replay a campaign's history through the simulator under
candidate pacing settings and keep the one that keeps agents busiest while the
simulated abandon rate stays under the campaign's limit, with a margin.

Every candidate runs on the same seeds (common random numbers), so the
comparison is between settings, not between lucky draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from dialer.config.models import DialingConfig
from dialer.core.outcomes import ABANDON_CEILING, DialingMode, abandon_rate
from dialer.simulation import SimulationResult, simulate
from dialer.simulation.scenario import Scenario
from dialer.tuning.history import History, Profile

MARGIN = 0.005
"""Simulated abandons must stay this far under the limit: a day of real calls swings more."""
RATIOS = (1.5, 2.0, 2.5, 3.0)
TARGETS = (0.01, 0.015, 0.02, 0.025)


@dataclass(frozen=True)
class Settings:
    mode: DialingMode
    ratio: float
    abandon_target: float
    max_lines: int

    def label(self) -> str:
        if self.mode is DialingMode.ratio:
            return f"ratio {self.ratio:g}, max_lines {self.max_lines}"
        if self.mode is DialingMode.predictive:
            return f"predictive at {self.abandon_target:.1%}, max_lines {self.max_lines}"
        return f"progressive, max_lines {self.max_lines}"

    @classmethod
    def of(cls, dialing: DialingConfig) -> Settings:
        return cls(dialing.mode, dialing.ratio, dialing.abandon_target, dialing.max_lines)


@dataclass
class Outcome:
    settings: Settings
    runs: list[SimulationResult] = field(default_factory=list)

    @property
    def occupancy(self) -> float:
        return sum(r.occupancy for r in self.runs) / len(self.runs)

    @property
    def abandon_rate(self) -> float:
        return abandon_rate(sum(r.abandoned for r in self.runs), sum(r.live_answered for r in self.runs))

    @property
    def worst_abandon_rate(self) -> float:
        return max(r.abandon_rate for r in self.runs)

    @property
    def connects_per_agent_hour(self) -> float:
        return sum(r.connects_per_agent_hour for r in self.runs) / len(self.runs)

    @property
    def peak_lines(self) -> int:
        return max(r.peak_lines for r in self.runs)


@dataclass
class Proposal:
    current: Outcome
    best: Outcome
    tried: list[Outcome]
    agents: int
    ceiling: float
    """The simulated abandon rate a setting had to stay under."""
    why: list[str]

    @property
    def changes(self) -> dict[str, object]:
        """The `dialing` fields to write: those that differ from the campaign's."""
        now, best = self.current.settings, self.best.settings
        changed: dict[str, object] = {}
        if best.mode != now.mode:
            changed["mode"] = best.mode.value
        if best.mode is DialingMode.ratio and best.ratio != now.ratio:
            changed["ratio"] = best.ratio
        if best.mode is DialingMode.predictive and best.abandon_target != now.abandon_target:
            changed["abandon_target"] = best.abandon_target
        if best.max_lines != now.max_lines:
            changed["max_lines"] = best.max_lines
        return changed


def _distribution(samples: list[float], fallback: float) -> dict[str, object] | float:
    return {"kind": "empirical", "values": samples} if samples else fallback


def scenario_for(
    profile: Profile, *, agents: int, dialing: DialingConfig, settings: Settings, hours: float, seed: int
) -> Scenario:
    """The campaign's day as a simulator scenario, under `settings`."""
    return Scenario.model_validate({
        "name": "tune",
        "seed": seed,
        "hours": hours,
        "agents": agents,
        "customers": {
            "live_answer": profile.live_share,
            "busy": profile.busy_share,
            "time_to_answer": _distribution(profile.answer_seconds, 8.0),
            "busy_after": _distribution(profile.busy_seconds, 3.0),
            "ring_timeout": max(15, dialing.ring_timeout),
        },
        "talk": _distribution(profile.talk_seconds, 60.0),
        "wrapup": _distribution(profile.wrapup_seconds, 0.0),
        "grace": dialing.agent_wait,
        "pacing": {
            "mode": settings.mode.value,
            "max_lines": settings.max_lines,
            "ratio": settings.ratio,
            "abandon_limit": dialing.abandon_limit,
            "abandon_target": min(settings.abandon_target, dialing.abandon_limit),
            "override_ceiling": dialing.override_ceiling,
        },
    })


def candidates(dialing: DialingConfig, ceiling: float) -> list[Settings]:
    lines = dialing.max_lines
    found = [Settings.of(dialing), Settings(DialingMode.progressive, dialing.ratio, dialing.abandon_target, lines)]
    found += [Settings(DialingMode.ratio, r, dialing.abandon_target, lines) for r in RATIOS]
    found += [Settings(DialingMode.predictive, dialing.ratio, t, lines) for t in TARGETS if t <= ceiling]
    unique: list[Settings] = []
    for s in found:
        if s not in unique:
            unique.append(s)
    return unique


def tune(
    history: History,
    dialing: DialingConfig,
    *,
    agents: int,
    hours: float = 4.0,
    seeds: int = 2,
    progress: Callable[[int, int, str], None] | None = None,
) -> Proposal:
    """Simulate every candidate on the campaign's history; the best one and why."""
    ceiling = min(dialing.abandon_limit, ABANDON_CEILING if not dialing.override_ceiling else 1.0) - MARGIN
    ceiling = max(round(ceiling, 6), 0.0)
    tried: list[Outcome] = []
    todo = candidates(dialing, ceiling)
    total = len(todo) + 1  # and one more for max_lines

    def run(settings: Settings) -> Outcome:
        outcome = Outcome(settings)
        for seed in range(1, seeds + 1):
            scenario = scenario_for(history.day, agents=agents, dialing=dialing, settings=settings, hours=hours,
                                    seed=seed)
            outcome.runs.append(simulate(scenario))
        if progress is not None:
            progress(len(tried) + 1, total, settings.label())
        tried.append(outcome)
        return outcome

    for settings in todo:
        run(settings)
    current = tried[0]

    def fits(o: Outcome) -> bool:
        return o.worst_abandon_rate <= ceiling + 1e-12 or o.settings.mode is DialingMode.progressive

    best = max((o for o in tried if fits(o)), key=lambda o: (round(o.occupancy, 3), -o.abandon_rate))
    # The lines cap may be what holds the best setting back: try it with room to spare.
    if best.peak_lines >= best.settings.max_lines and best.settings.max_lines < 1000:
        wider = Settings(best.settings.mode, best.settings.ratio, best.settings.abandon_target,
                         min(1000, max(best.settings.max_lines * 2, agents * 4)))
        more = run(wider)
        if fits(more) and more.occupancy >= best.occupancy + 0.005:
            best = more
    elif progress is not None:
        progress(total, total, "done")
    if fits(current) and round(current.occupancy, 3) >= round(best.occupancy, 3):
        best = current  # no change beats a change that is only noise
    return Proposal(current, best, tried, agents, ceiling, explain(history, agents, current, best, ceiling))


def explain(history: History, agents: int, current: Outcome, best: Outcome, ceiling: float) -> list[str]:
    day = history.day
    talk = sum(day.talk_seconds) / len(day.talk_seconds) if day.talk_seconds else 0.0
    wrap = sum(day.wrapup_seconds) / len(day.wrapup_seconds) if day.wrapup_seconds else 0.0
    answer = sum(day.answer_seconds) / len(day.answer_seconds) if day.answer_seconds else 0.0
    lines = [
        f"In {day.attempts} recent calls a live person answered {day.live_share:.0%} "
        f"({day.busy_share:.0%} busy), after {answer:.0f} s of ringing on average; conversations "
        f"lasted {talk:.0f} s and wrap-ups {wrap:.0f} s{'' if day.wrapup_seconds else ' (none recorded)'}.",
    ]
    hours = {h: p for h, p in history.by_hour.items() if p.attempts >= 30}
    if len(hours) >= 2:
        low = min(hours, key=lambda h: hours[h].live_share)
        high = max(hours, key=lambda h: hours[h].live_share)
        lines.append(
            f"By hour (UTC) the answer rate ran from {hours[low].live_share:.0%} at {low:02d}:00 "
            f"to {hours[high].live_share:.0%} at {high:02d}:00; the simulation replays the whole mix."
        )
    per_talk = 1 / day.live_share if day.live_share else math.inf
    lines.append(
        f"With {agents} agents and one call per free agent, an agent waits through about "
        f"{per_talk - 1:.1f} unanswered calls per conversation."
    )
    if best.settings == current.settings:
        lines.append(
            f"The current settings ({current.settings.label()}) are already the best the simulator found: "
            f"occupancy {current.occupancy:.2f} at {current.abandon_rate:.2%} abandoned."
        )
    else:
        lines.append(
            f"{best.settings.label().capitalize()} keeps agents busy {best.occupancy:.0%} of the time instead of "
            f"{current.occupancy:.0%} ({current.settings.label()}), with {best.abandon_rate:.2%} of live answers "
            f"abandoned in simulation (worst run {best.worst_abandon_rate:.2%}; every setting had to stay under "
            f"{ceiling:.1%}, half a point below the limit, as a real day swings more than a simulated one)."
        )
    return lines
