"""Who may dial: the operator's choice, the file's `enabled` flag, the file's presence.

Operators pause, resume, stop and start campaigns (control API, desk wall);
the campaign watcher reports files seen, changed and removed. `CampaignControls`
turns both into each campaign's `RunState` and sets its runner's `paused` and
`settling` flags.

An end (stop, `enabled: false`, the file removed) asked while the campaign's abandon
window is over its limit settles first: the rules judge the rate over the campaign, so
one ended there would keep it. It dials progressively (one call per free agent) until
the window's rate is at or under the limit, then takes the state asked. A stop with
`now` ends at once anyway and says so in the log. A pause is a break, not an end, and
so is the daemon's own shutdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import structlog

from dialer.config.models import Campaign
from dialer.core.abandon import AbandonState

log = structlog.get_logger("dialer.campaigns")


class Pausable(Protocol):
    """What the controls set and read of a campaign's runner."""

    paused: bool
    settling: bool

    def abandon_state(self, now: float) -> AbandonState:
        """The campaign's abandon window at `now`, against its limit."""


class RunState(str, Enum):
    running = "running"
    paused = "paused"  # by an operator; resume continues
    settling = "settling"  # ended over its abandon limit: progressive until at or under it
    stopped = "stopped"  # by an operator; start begins again
    disabled = "disabled"  # `enabled: false` in its file
    removed = "removed"  # its file is gone
    draining = "draining"  # the daemon is shutting down


ENDS = frozenset({RunState.stopped, RunState.disabled, RunState.removed})
"""States asked that place no more calls until someone acts: the ones a campaign settles into."""


class ControlError(Exception):
    """An operator's request that cannot be done in the campaign's state."""


def abandon_figures(window: AbandonState) -> dict[str, Any]:
    """The window's figures as the log and the API give them."""
    return {
        "rate": round(window.rate, 4),
        "answered": window.answered,
        "abandoned": window.abandoned,
        "limit": window.limit,
        "answers_needed": window.answers_needed,
    }


def percent(fraction: float) -> str:
    return f"{fraction * 100:.2f} %"


def over_limit_note(state: RunState, window: AbandonState) -> str | None:
    """What an operator is told of a campaign whose window is over its limit; None when it is not."""
    needed = window.answers_needed
    if needed == 0:
        return None
    figures = (
        f"abandon rate {percent(window.rate)} ({window.abandoned} abandoned of {window.answered} live answers), "
        f"over its limit {percent(window.limit)}"
    )
    more = (
        "no number of answers brings it to the limit"
        if needed is None
        else f"{needed} more live answer(s) bridged in time bring it to the limit"
    )
    if state is RunState.settling:
        return f"{figures}; it dials progressively until {more}"
    return f"{state.value} with its {figures}; {more}"


@dataclass
class _Control:
    operator: RunState = RunState.running
    enabled: bool = True
    removed: bool = False
    file: Path | None = None
    settling: bool = False
    """An end was asked while the window was over its limit, and it is not at the limit yet."""


class CampaignControls:
    """Who may dial: the operator's choice, the file's `enabled` flag, the file's presence."""

    def __init__(
        self,
        runners: Callable[[], Mapping[str, Pausable]],
        draining: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runners = runners
        self._draining = draining
        self._clock = clock
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
        asked = self._asked(control)
        if control.settling and asked in ENDS:
            return RunState.settling
        return asked

    @staticmethod
    def _asked(control: _Control) -> RunState:
        if control.removed:
            return RunState.removed
        if not control.enabled:
            return RunState.disabled
        return control.operator

    def file(self, name: str) -> Path | None:
        return self._control(name).file

    def window(self, name: str) -> AbandonState | None:
        """The campaign's abandon window now; None for a campaign without a runner."""
        runner = self._runners().get(name)
        return None if runner is None else runner.abandon_state(self._clock())

    def apply(self) -> None:
        """Make every runner's `paused` and `settling` flags match its state."""
        for name, runner in self._runners().items():
            state = self.state(name)
            runner.paused = state not in (RunState.running, RunState.settling)
            runner.settling = state is RunState.settling

    def settle(self) -> None:
        """Settling campaigns whose window is at or under its limit now take the state asked.

        The daemon calls this before each round of ticks, so no call leaves once the
        rate is there.
        """
        changed = False
        for name, control in self._controls.items():
            if not control.settling:
                continue
            window = self.window(name)
            if window is not None and window.answers_needed != 0:
                continue
            control.settling = False
            changed = True
            figures = abandon_figures(window) if window is not None else {}
            log.info("campaign.settled", campaign=name, state=self._asked(control).value, **figures)
        if changed:
            self.apply()

    def _ended(self, name: str, was: RunState | None) -> None:
        """After a change of what is asked: an end asked over the limit settles first."""
        control = self._control(name)
        asked = self._asked(control)
        if asked not in ENDS:
            control.settling = False
            return
        if was is None or was in ENDS or self._draining():
            return  # no end now: it placed no calls already, or the daemon is stopping
        window = self.window(name)
        if was is RunState.paused:
            # Paused, it places no calls, and an end must not start it dialing again: an
            # operator often pauses because something is wrong. It keeps its rate, as a
            # pause left for good does, and says so.
            if window is not None and window.answers_needed != 0:
                log.warning("campaign.stopped_over_limit", campaign=name, asked=asked.value, **abandon_figures(window))
            return
        if window is not None and window.answers_needed != 0:
            control.settling = True
            log.warning("campaign.settling", campaign=name, asked=asked.value, **abandon_figures(window))

    def _was(self, name: str) -> RunState | None:
        """What was asked of a campaign before a change; None at its first sight."""
        control = self._controls.get(name)
        return None if control is None else self._asked(control)

    # -- what the files say -----------------------------------------------------

    def file_seen(self, campaign: Campaign, file: Path | None) -> None:
        was = self._was(campaign.name)
        control = self._control(campaign.name)
        control.enabled = campaign.enabled
        control.removed = False
        control.file = file
        self._ended(campaign.name, was)

    def file_removed(self, name: str) -> None:
        was = self._was(name)
        self._control(name).removed = True
        self._ended(name, was)

    # -- what operators ask ---------------------------------------------------------

    async def start(self, name: str) -> RunState:
        control = self._control(name)
        self._refuse_unless_dialable(name, "started")
        control.operator = RunState.running
        self._ended(name, None)
        return await self._changed(name)

    async def resume(self, name: str) -> RunState:
        control = self._control(name)
        self._refuse_unless_dialable(name, "resumed")
        if control.operator is RunState.stopped and not control.settling:
            raise ControlError(f"campaign {name!r} is stopped; start it instead")
        control.operator = RunState.running
        self._ended(name, None)
        return await self._changed(name)

    async def pause(self, name: str) -> RunState:
        control = self._control(name)
        if control.settling:
            # The brake must work while settling too: a pause ends the settling at once, as
            # `stop --now` does, and the campaign takes the end it was asked.
            control.settling = False
            window = self.window(name)
            if window is not None and window.answers_needed != 0:
                log.warning("campaign.stopped_over_limit", campaign=name, **abandon_figures(window))
            return await self._changed(name)
        if control.operator is RunState.running:
            control.operator = RunState.paused
        state = await self._changed(name)
        window = self.window(name)
        if state is RunState.paused and window is not None and window.answers_needed != 0:
            # A break, not an end: the window stays over its limit until the campaign runs again.
            log.warning("campaign.paused_over_limit", campaign=name, **abandon_figures(window))
        return state

    async def stop(self, name: str, *, now: bool = False) -> RunState:
        """Stop the campaign: at once if its window is at or under its limit (or with `now`),
        else once it is (settling)."""
        control = self._control(name)
        was = self._asked(control)
        ending = control.settling or was not in ENDS
        control.operator = RunState.stopped
        if not now:
            self._ended(name, was)
            return await self._changed(name)
        control.settling = False
        window = self.window(name)
        if ending and window is not None and window.answers_needed != 0:
            log.warning("campaign.stopped_over_limit", campaign=name, **abandon_figures(window))
        return await self._changed(name)

    def _refuse_unless_dialable(self, name: str, verb: str) -> None:
        state = RunState.draining if self._draining() else self._asked(self._control(name))
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
