"""The campaign drop directory and live reloads, as ops teams use them.

- A new campaign file starts its campaign (unless `enabled: false`).
- A changed file is swapped into the running campaign: pacing limits and the
  rest are read on every tick, so calls in progress are not touched.
- A removed file pauses its campaign; its leads and attempts stay stored.
- An invalid file is reported (`file:line: field: message`, in the log and in
  the status) and the last good version keeps running.
- Editors' temporary files are ignored (`yaml_files_in`), and the watcher waits
  for a quiet moment before reading: a file changed less than `SETTLE_S` ago is
  taken as still being written and read once it has been left alone that long
  (one caught half-written anyway is a broken edit: it changes nothing).
- Files are read and parsed in a worker thread, never on the event loop, and
  only those whose (device, inode, size, mtime) changed since the last read;
  the loader's size, alias and nesting limits bound what one file can cost,
  and a symbolic link is followed only to a file inside the directory.
- Many files at once (50 dropped in one `mv`) are applied one by one while the
  daemon runs on: the runners are a `RunnerTable`, safe to walk across awaits.

SIGHUP reloads the daemon config the same way (`reload_config`): agents added
or removed, logging level, tick interval, drain time. Settings that need a new
connection (AMI, database, HTTP, campaign directory) are reported as needing a
restart.

Operators pause, resume, stop and start campaigns through `CampaignControls`,
which also decides whether a runner may place calls at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from watchfiles import awatch

from dialer.ami.errors import AmiError
from dialer.config.loader import YAML_SUFFIXES, ConfigError, ConfigIssue, load_campaign, load_config, yaml_files_in
from dialer.config.models import AgentConfig, Campaign, DialerConfig
from dialer.config.yaml_loader import FileStamp, file_stamp
from dialer.ivr.settings import OnMachine

if TYPE_CHECKING:
    from dialer.daemon.server import Daemon

log = structlog.get_logger("dialer.campaigns")

# Milliseconds without a change before the directory is read: long enough for
# an editor's save (write temp, rename) or a `cp` to finish.
QUIET_MS = 300
# Seconds a file must have been left alone before the watcher reads it: a slow
# writer (a script, a copy over the network) is not read half-way. Short enough
# that a dropped file still dials within a second or two.
SETTLE_S = 0.5


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

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._controls: dict[str, _Control] = {}

    def _control(self, name: str) -> _Control:
        return self._controls.setdefault(name, _Control())

    def known(self) -> list[str]:
        return sorted(set(self._controls) | set(self._daemon.runners))

    def exists(self, name: str) -> bool:
        return name in self._controls or name in self._daemon.runners

    def state(self, name: str) -> RunState:
        control = self._control(name)
        if self._daemon.should_exit:
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
        for name, runner in self._daemon.runners.items():
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


@dataclass(frozen=True)
class _Reading:
    """What a file held when it was last read: a campaign, or its problems."""

    stamp: FileStamp | None
    campaign: Campaign | None
    issues: list[ConfigIssue]


class CampaignWatcher:
    """Follows the campaign directory and applies what changes in it."""

    def __init__(self, daemon: Daemon, directory: Path) -> None:
        self._daemon = daemon
        self.directory = directory
        self.good: dict[Path, Campaign] = {}
        """The last good version of each file."""
        self.issues: dict[Path, list[ConfigIssue]] = {}
        """Current problems of each file that has some."""
        self._readings: dict[Path, _Reading] = {}
        # The watch task and SIGHUP may both ask for a reload; one at a time.
        self._lock = asyncio.Lock()

    def issue_lines(self) -> list[str]:
        return [str(issue) for file in sorted(self.issues) for issue in self.issues[file]]

    async def reload(self, *, settle: float = 0.0) -> bool:
        """Read the directory and apply every difference from what the daemon runs.

        With `settle`, a file changed less than `settle` seconds ago is left as it was
        (still being written); returns whether any was, so the caller looks again.
        """
        async with self._lock:
            readings, unsettled = await asyncio.to_thread(
                _read_directory, self.directory, dict(self._readings), settle, time.time()
            )
            self._readings = readings
            if self._daemon.should_exit:
                return False  # shutting down: nothing new starts
            await self._apply_readings(readings)
            return unsettled

    async def _apply_readings(self, readings: dict[Path, _Reading]) -> None:
        daemon = self._daemon
        files = list(readings)
        names: dict[str, Path] = {}
        # Names a file stopped holding: gone only if no file holds them once all are read
        # (two files swapping their names, or a name moved into a file read later).
        renamed_away: list[str] = []
        for file, reading in readings.items():
            if daemon.should_exit:
                return  # the drain began while files were being applied: nothing new starts
            try:
                if reading.campaign is None:
                    raise ConfigError(reading.issues)
                campaign = reading.campaign
                owner = names.setdefault(campaign.name, file)
                if owner != file:
                    raise ConfigError(
                        [ConfigIssue(file, None, "name", f"campaign {campaign.name!r} is also defined in {owner}")]
                    )
                unprepared = self._unprepared(campaign, file)
                if unprepared:
                    raise ConfigError(unprepared)
            except ConfigError as exc:
                self._report(file, exc.issues)
                if file in self.good:
                    names.setdefault(self.good[file].name, file)  # the last good version keeps its name
                continue
            self._report(file, [])
            previous = self.good.get(file)
            if previous is not None and previous.name != campaign.name:
                renamed_away.append(previous.name)
            if previous != campaign or campaign.name not in daemon.runners:
                try:
                    await self._apply(campaign, file, started=previous is None)
                except Exception:
                    # One campaign that cannot start (its database write failed) must
                    # not keep the others in the directory from starting.
                    log.exception("campaign.apply_failed", campaign=campaign.name, file=str(file))
                    continue
            self.good[file] = campaign
        for name in renamed_away:
            if name not in names:
                self._gone(name)
        for file in [f for f in self.good if f not in files]:
            name = self.good.pop(file).name
            if name not in names:  # not merely moved to another file
                self._gone(name, file)
            self.issues.pop(file, None)
        for file in [f for f in self.issues if f not in files]:
            del self.issues[file]
        daemon.controls.apply()

    def _unprepared(self, campaign: Campaign, file: Path) -> list[ConfigIssue]:
        """What an enabled campaign needs that the daemon prepares only when it starts.

        Flows are loaded, and texts rendered, at the start (`IvrService.prepare`). Started
        without them, an IVR campaign dialed customers only to hang up on each answered
        call (no flow over FastAGI), and an abandon text played the generic sound instead.
        """
        if not campaign.enabled:
            return []
        ivr = self._daemon.ivr
        flows = ivr.flows if ivr is not None else {}
        messages = ivr.messages if ivr is not None else {}
        later = "restart the daemon to dial this campaign"
        issues = []
        if campaign.ivr and campaign.ivr not in flows:
            issues.append(ConfigIssue(
                file, None, "ivr", f"flow {campaign.ivr!r} was not loaded when the daemon started; {later}"
            ))
        texts = [("abandon_text", campaign.abandon_text)]
        if campaign.amd.enabled and campaign.amd.on_machine is OnMachine.leave_message:
            texts.append(("amd.message", campaign.amd.message))
        for field_name, text in texts:
            if text and text not in messages:
                issues.append(ConfigIssue(
                    file, None, field_name, f"this text was not rendered to sound when the daemon started; {later}"
                ))
        return issues

    async def _apply(self, campaign: Campaign, file: Path, *, started: bool) -> None:
        daemon = self._daemon
        daemon.controls.file_seen(campaign, file)
        if campaign.enabled or campaign.name in daemon.runners:
            await daemon.apply_campaign(campaign)
        log.info(
            "campaign.loaded" if started else "campaign.changed",
            campaign=campaign.name,
            file=str(file),
            enabled=campaign.enabled,
            max_lines=campaign.dialing.max_lines,
        )

    def _gone(self, name: str, file: Path | None = None) -> None:
        self._daemon.controls.file_removed(name)
        log.warning("campaign.file_removed", campaign=name, file=str(file) if file else None, action="paused")

    def _report(self, file: Path, issues: list[ConfigIssue]) -> None:
        if issues == self.issues.get(file, []):
            return
        if issues:
            self.issues[file] = issues
            kept = self.good.get(file)
            for issue in issues:
                log.error(
                    "campaign.file_invalid",
                    problem=str(issue),
                    kept=kept.name if kept else None,
                )
        else:
            self.issues.pop(file, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set; every batch of changes triggers one `reload`."""
        if not self.directory.is_dir():
            # Ending here would leave the directory dead to the operator once it is
            # made: wait for it (the daemon's supervisor restarts a watcher that ends).
            log.error("campaign.dir_missing", directory=str(self.directory))
            while not self.directory.is_dir():
                try:
                    await asyncio.wait_for(stop.wait(), SETTLE_S * 2)
                    return
                except asyncio.TimeoutError:
                    pass
            log.info("campaign.dir_found", directory=str(self.directory))
            await self._settled_reload()
        recheck: asyncio.Task[None] | None = None
        try:
            async for _changes in awatch(
                self.directory,
                watch_filter=_campaign_file_event,
                debounce=2000,
                step=QUIET_MS,
                stop_event=stop,
                recursive=False,
                rust_timeout=500,
            ):
                if await self._settled_reload() and (recheck is None or recheck.done()):
                    # No further event may come once the writer is done: look again.
                    recheck = asyncio.create_task(self._recheck(stop), name="campaign-recheck")
        finally:
            if recheck is not None:
                recheck.cancel()
                await asyncio.gather(recheck, return_exceptions=True)

    async def _recheck(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(SETTLE_S / 4)
            if not await self._settled_reload():
                return

    async def _settled_reload(self) -> bool:
        try:
            return await self.reload(settle=SETTLE_S)
        except Exception:
            # A watcher that dies silently would leave the directory dead to
            # the operator: log and keep watching.
            log.exception("campaign.reload_failed")
            return False


def _read_directory(
    directory: Path, known: dict[Path, _Reading], settle: float, now: float
) -> tuple[dict[Path, _Reading], bool]:
    """Each campaign file's reading, re-reading only changed files; runs in a worker thread.

    Returns the readings in file-name order and whether a file was left unread
    because it changed less than `settle` seconds before `now`.
    """
    if not directory.is_dir():
        return {}, False  # gone: every campaign in it is removed
    try:
        files = yaml_files_in(directory)
    except OSError as exc:
        # Unreadable for now (permissions being fixed?): change nothing.
        log.error("campaign.dir_unreadable", directory=str(directory), error=exc.strerror or str(exc))
        return known, False
    readings: dict[Path, _Reading] = {}
    unsettled = False
    for file in files:
        stamp = file_stamp(file)
        before = known.get(file)
        if stamp is not None and before is not None and before.stamp == stamp:
            readings[file] = before
            continue
        if settle and stamp is not None and 0 <= now - stamp[3] / 1e9 < settle:
            unsettled = True
            if before is not None:
                readings[file] = before  # what it held before this write began
            continue
        try:
            readings[file] = _Reading(stamp, load_campaign(file, within=directory), [])
        except ConfigError as exc:
            readings[file] = _Reading(stamp, None, exc.issues)
        except Exception:
            # A defect in a validator must not keep the other files from loading.
            log.exception("campaign.read_failed", file=str(file))
            readings[file] = _Reading(stamp, None, [ConfigIssue(file, None, "", "could not be read; see the log")])
    return readings, unsettled


def _campaign_file_event(_change: object, path: str) -> bool:
    # Renames onto a .yaml name show as that name being added or modified, so
    # only YAML names matter; temp files are filtered again when reading.
    return Path(path).suffix in YAML_SUFFIXES


# -- SIGHUP: the daemon config ----------------------------------------------------------

_NEED_RESTART = ("ami", "database", "http", "campaign_dir")


@dataclass
class ConfigReload:
    applied: list[str] = field(default_factory=list)
    need_restart: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)


async def reload_config(daemon: Daemon, path: Path) -> ConfigReload:
    """Re-read the daemon config and apply what can change live; an invalid file changes nothing."""
    result = ConfigReload()
    try:
        new = await asyncio.to_thread(load_config, path)  # parsing never holds up the loop
    except ConfigError as exc:
        result.issues = [str(issue) for issue in exc.issues]
        for issue in result.issues:
            log.error("config.reload_invalid", problem=issue)
        return result
    old = daemon.config
    for name in _NEED_RESTART:
        if getattr(old, name) != getattr(new, name):
            result.need_restart.append(name)
    if old.logging.level != new.logging.level:
        logging.getLogger().setLevel(new.logging.level.upper())
        result.applied.append("logging.level")
    if old.agents != new.agents:
        await _apply_agents(daemon, old, new)
        result.applied.append("agents")
    if old.tick_interval != new.tick_interval:
        result.applied.append("tick_interval")
    if old.drain_timeout != new.drain_timeout:
        daemon.drain_timeout = new.drain_timeout
        result.applied.append("drain_timeout")
    # What needs a restart keeps its running value, so status tells the truth.
    daemon.config = new.model_copy(update={name: getattr(old, name) for name in _NEED_RESTART})
    log.info("config.reloaded", applied=result.applied, need_restart=result.need_restart)
    return result


async def _apply_agents(daemon: Daemon, old: DialerConfig, new: DialerConfig) -> None:
    # In place: the runners, their tier code, the desk and inbound calls all hold this one board.
    daemon.board.set_agents({a.id: a.interface for a in new.agents})
    if daemon.desk is not None:
        daemon.desk.set_agents(new.agents)
    agent_ids = {a.interface: a.id for a in new.agents}
    for runner in daemon.runners.values():
        runner.set_agents(agent_ids)
    if daemon.inbound is not None:
        daemon.inbound.agent_ids = {k.lower(): v for k, v in agent_ids.items()}
    if daemon.store is not None:
        await daemon.store.sync_agents(new.agents, datetime.fromtimestamp(daemon.clock(), UTC))
    ami = daemon.ami
    if ami is None or not ami.connected.is_set():
        return  # the next login adds the members of the new config
    await _sync_queue_members(daemon, _memberships(old.agents), _memberships(new.agents), new)


def _memberships(agents: Iterable[AgentConfig]) -> set[tuple[str, str]]:
    return {(queue, agent.interface) for agent in agents for queue in agent.queues}


async def _sync_queue_members(
    daemon: Daemon, before: set[tuple[str, str]], after: set[tuple[str, str]], config: DialerConfig
) -> None:
    assert daemon.ami is not None
    by_interface = {a.interface: a for a in config.agents}
    for queue, interface in sorted(before - after):
        try:
            await daemon.ami.queue_remove(queue, interface)
        except AmiError as exc:
            log.warning("agent.queue_remove_failed", queue=queue, interface=interface, error=str(exc))
        agent = daemon.board.agent(interface)
        if agent is not None:
            agent.queues.discard(queue)
    for queue, interface in sorted(after - before):
        agent_config = by_interface[interface]
        try:
            await daemon.ami.queue_add(queue, interface, agent_config.id, agent_config.penalty)
        except AmiError as exc:
            log.warning("agent.queue_add_failed", queue=queue, interface=interface, error=str(exc))
    log.info("agents.reloaded", removed=sorted(before - after), added=sorted(after - before))
