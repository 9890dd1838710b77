"""`dialer simulate`: a discrete-event simulation of agents, customers and lines that runs
the daemon's own pacing and estimator code on a virtual clock."""

from dialer.simulation.engine import simulate
from dialer.simulation.results import SimulationResult, format_table
from dialer.simulation.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["Scenario", "ScenarioError", "SimulationResult", "format_table", "load_scenario", "simulate"]
