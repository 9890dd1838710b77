"""Who may dial: the operator's choice, the file's `enabled` flag, the file's presence.

Operators pause, resume, stop and start campaigns (control API, desk wall);
the campaign watcher reports files seen, changed and removed. `CampaignControls`
turns both into each campaign's `RunState` and sets its runner's `paused` flag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

import structlog

from dialer.config.models import Campaign

log = structlog.get_logger("dialer.campaigns")


class Pausable(Protocol):
    paused: bool


class RunState(str, Enum):
    running = "running"
    paused = "paused"  # by an operator; resume continues
    stopped = "stopped"  # by an operator; start begins again
    disabled = "disabled"  # `enabled: false` in its file
    removed = "removed"  # its file is gone
    draining = "draining"  # the daemon is shutting down


class ControlError(Exception):
    """An operator's request that cannot be done in the campaign's state."""


@dataclass
class _Control:
    operator: RunState = RunState.running
    enabled: bool = True
    removed: bool = False
    file: Path | None = None


class CampaignControls:
    """Who may dial: the operator's choice, the file's `enabled` flag, the file's presence."""

    def __init__(self, runners: Callable[[], Mapping[str, Pausable]], draining: Callable[[], bool]) -> None:
        self._runners = runners
        self._draining = draining
        self._controls: dict[str, _Control] = {}

    def _control(self, name: str) -> _Control:
        return self._controls.setdefault(name, _Control())

    def known(self) -> list[str]:
        return sorted(set(self._controls) | set(self._runners()))

    def exists(self, name: str) -> bool:
        return name in self._controls or name in self._runners()

    def state(self, name: str) -> RunState:
        control = self._control(name)
        if self._draining():
            return RunState.draining
        if control.removed:
            return RunState.removed
        if not control.enabled:
            return RunState.disabled
        return control.operator

    def file(self, name: str) -> Path | None:
        return self._control(name).file

    def apply(self) -> None:
        """Make every runner's `paused` flag match its state."""
        for name, runner in self._runners().items():
            runner.paused = self.state(name) is not RunState.running

    # -- what the files say -----------------------------------------------------

    def file_seen(self, campaign: Campaign, file: Path | None) -> None:
        control = self._control(campaign.name)
        control.enabled = campaign.enabled
        control.removed = False
        control.file = file

    def file_removed(self, name: str) -> None:
        self._control(name).removed = True

    # -- what operators ask ---------------------------------------------------------

    async def start(self, name: str) -> RunState:
        control = self._control(name)
        self._refuse_unless_dialable(name, "started")
        control.operator = RunState.running
        return await self._changed(name)

    async def resume(self, name: str) -> RunState:
        control = self._control(name)
        self._refuse_unless_dialable(name, "resumed")
        if control.operator is RunState.stopped:
            raise ControlError(f"campaign {name!r} is stopped; start it instead")
        control.operator = RunState.running
        return await self._changed(name)

    async def pause(self, name: str) -> RunState:
        control = self._control(name)
        if control.operator is RunState.running:
            control.operator = RunState.paused
        return await self._changed(name)

    async def stop(self, name: str) -> RunState:
        self._control(name).operator = RunState.stopped
        return await self._changed(name)

    def _refuse_unless_dialable(self, name: str, verb: str) -> None:
        state = self.state(name)
        if state is RunState.draining:
            raise ControlError("the daemon is shutting down")
        if state is RunState.removed:
            raise ControlError(f"campaign {name!r} has no file in the campaign directory any more")
        if state is RunState.disabled:
            raise ControlError(f"campaign {name!r} is disabled in its file (enabled: false); it cannot be {verb}")

    async def _changed(self, name: str) -> RunState:
        self.apply()
        state = self.state(name)
        log.info("campaign.control", campaign=name, state=state.value)
        return state
