"""What one simulated run measured, and how it is printed."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SimulationResult:
    scenario: str
    mode: str
    agents: int
    hours: float
    seed: int
    occupancy: float
    """Share of agents' logged-in time spent talking or in wrap-up."""
    abandon_rate: float
    """Abandoned / live answered."""
    first_hour_occupancy: float
    """Occupancy over the first hour (or the whole run if shorter): how soon pacing pays."""
    worst_running_abandon_rate: float
    """The highest abandoned / live answered seen at any moment once 100 live answers are in:
    what a rolling window shows during a burst at the start."""
    attempts: int
    live_answered: int
    abandoned: int
    connects: int
    """Customers bridged to an agent."""
    connects_per_agent_hour: float
    mean_agent_wait: float
    """Seconds, from an agent becoming free to the next customer being bridged."""
    mean_lines: float
    """Time average of customer calls in progress."""
    peak_lines: int
    events: int
    wall_seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


_COLUMNS = (
    ("mode", "mode", "{}"),
    ("occupancy", "occupancy", "{:.3f}"),
    ("abandon", "abandon_rate", "{:.2%}"),
    ("attempts", "attempts", "{}"),
    ("answered", "live_answered", "{}"),
    ("abandoned", "abandoned", "{}"),
    ("conn/agent-h", "connects_per_agent_hour", "{:.1f}"),
    ("agent wait s", "mean_agent_wait", "{:.1f}"),
    ("lines mean", "mean_lines", "{:.1f}"),
    ("lines peak", "peak_lines", "{}"),
)


def format_table(results: list[SimulationResult]) -> str:
    """A plain-text table, one row per run."""
    header = [title for title, _, _ in _COLUMNS]
    rows = [[fmt.format(getattr(r, attr)) for _, attr, fmt in _COLUMNS] for r in results]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header, *rows]]
    return "\n".join(lines)
