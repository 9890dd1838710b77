"""The scenario a simulation runs: agents, customers, lines, pacing; and its YAML loader.

Errors name the file, the line and the field (`talk.mean`), so a typo in a scenario is
as easy to find as one in a campaign file.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from dialer.config.yaml_loader import YamlError, load_yaml_mapping
from dialer.core.abandon import DEFAULT_WINDOW
from dialer.core.outcomes import ABANDON_CEILING
from dialer.core.pacing import PacingMode, PacingPolicy

Sampler = Callable[[], float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constant(_Strict):
    kind: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    def sampler(self, rng: random.Random) -> Sampler:
        value = self.value
        return lambda: value

    @property
    def mean(self) -> float:
        return self.value


class LogNormal(_Strict):
    """Given by its mean and coefficient of variation (standard deviation / mean)."""

    kind: Literal["lognormal"]
    mean: float = Field(gt=0)
    cv: float = Field(ge=0)

    def sampler(self, rng: random.Random) -> Sampler:
        sigma = math.sqrt(math.log1p(self.cv**2))
        mu = math.log(self.mean) - sigma**2 / 2
        draw = rng.lognormvariate
        return lambda: draw(mu, sigma)


class Empirical(_Strict):
    """Drawn uniformly from the given values (e.g. durations taken from call records)."""

    kind: Literal["empirical"]
    values: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)

    def sampler(self, rng: random.Random) -> Sampler:
        values = tuple(self.values)
        choice = rng.choice
        return lambda: choice(values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)


def _number_is_constant(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"kind": "constant", "value": value}
    return value


DistributionSpec = Annotated[
    Constant | LogNormal | Empirical,
    Field(discriminator="kind"),
    BeforeValidator(_number_is_constant),
]
"""A number (a constant) or a mapping with `kind: constant | lognormal | empirical`."""


class Customers(_Strict):
    live_answer: float = Field(ge=0, le=1, description="share of calls a live person answers")
    busy: float = Field(0.0, ge=0, le=1, description="share of calls that get a busy signal; the rest ring out")
    time_to_answer: DistributionSpec
    busy_after: DistributionSpec = Constant(value=3.0)
    ring_timeout: float = Field(25.0, ge=15, description="seconds before a ringing call is given up")

    @model_validator(mode="after")
    def _shares(self) -> Customers:
        if self.live_answer + self.busy > 1.0 + 1e-9:
            raise ValueError("live_answer + busy must not exceed 1")
        return self


class PacingSettings(_Strict):
    """The `PacingPolicy` fields, by the same names."""

    mode: PacingMode = PacingMode.predictive
    max_lines: int = Field(1000, ge=1)
    ratio: float = Field(2.0, ge=1)
    abandon_limit: float = Field(ABANDON_CEILING, gt=0, le=1)
    abandon_target: float = Field(0.025, gt=0, le=1)
    horizon: float = Field(25.0, gt=0)
    step: float = Field(1.0, gt=0)
    safety: float = 2.0
    feedback_gain: float = Field(1.0, ge=0)
    max_per_tick: int | None = Field(None, ge=0)
    ramp_per_tick: float = Field(0.1, gt=0)
    cold_evidence: float = Field(3.0, ge=0)
    budget_gain: float = Field(3.0, ge=0)
    override_ceiling: bool = False

    def policy(self, mode: PacingMode | None = None, grace: float = 2.0) -> PacingPolicy:
        values = self.model_dump()
        if mode is not None:
            values["mode"] = mode
        return PacingPolicy(grace=grace, **values)

    @model_validator(mode="after")
    def _valid_policy(self) -> PacingSettings:
        self.policy()  # the policy's own checks (target under limit, 3 % ceiling)
        return self


class EstimatorSettings(_Strict):
    min_samples: int = Field(30, ge=1)
    window: int = Field(2000, ge=10)
    refresh_every: int = Field(200, ge=1)


class Scenario(_Strict):
    name: str = "scenario"
    seed: int = 1
    hours: float = Field(8.0, gt=0, le=24 * 31)
    agents: int = Field(ge=0, le=10_000)
    tick: float = Field(0.5, gt=0, le=10, description="seconds between pacing decisions, as the daemon's tick_interval")
    customers: Customers
    talk: DistributionSpec
    wrapup: DistributionSpec = Constant(value=0.0)
    grace: float = Field(2.0, ge=0, description="seconds an answered customer waits for an agent")
    abandon_message: float = Field(5.0, ge=0, description="seconds the line is held by the abandon message")
    abandon_window: float = Field(DEFAULT_WINDOW, gt=0, description="seconds of the abandon-rate window")
    leads: int | None = Field(
        None,
        ge=0,
        description="leads in the list, each dialed once, their count told to the campaign as the daemon tells it;"
        " none: an endless list the campaign is told nothing of",
    )
    pacing: PacingSettings = PacingSettings()
    estimator: EstimatorSettings = EstimatorSettings()
    baselines: list[PacingMode] = Field(default_factory=list, description="modes run alongside for comparison")

    @property
    def duration(self) -> float:
        return self.hours * 3600.0


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names file, line and field."""


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        document = load_yaml_mapping(path)
    except YamlError as exc:
        raise ScenarioError(str(exc)) from exc
    try:
        return Scenario.model_validate(document.data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = _field_path(tuple(error["loc"]), document.data)
            field = ".".join(str(part) for part in loc) or "(top level)"
            lines.append(f"{path}:{document.line_of(loc)}: {field}: {error['msg']}")
        raise ScenarioError("\n".join(lines)) from exc


def _field_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The error's location without pydantic's union tags (`talk.lognormal.mean` is `talk.mean`)."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif part in {"constant", "lognormal", "empirical"}:
            continue
        else:
            node = None  # a missing key: keep it in the name, nothing below it exists
        path.append(part)
    return tuple(path)
