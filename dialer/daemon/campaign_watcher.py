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

SIGHUP reloads the daemon config the same way (`reload_config`): the file is
read here, and the daemon applies what can change live (`ConfigHost.apply_config`).

The watcher sees the daemon only through `dialer.control.daemon_view.CampaignHost`;
operators' states (pause, resume ...) are `dialer.control.campaign_states`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchfiles import awatch

from dialer.config.loader import YAML_SUFFIXES, ConfigError, ConfigIssue, load_campaign, load_config, yaml_files_in
from dialer.config.models import Campaign
from dialer.config.yaml_loader import FileStamp, file_stamp
from dialer.control.campaign_states import CampaignControls, ControlError, RunState
from dialer.control.daemon_view import CampaignHost, ConfigHost, ConfigReload
from dialer.config.ivr import OnMachine

__all__ = [
    "CampaignControls", "CampaignWatcher", "ConfigReload", "ControlError", "RunState", "reload_config",
]  # the campaign states' old home: its names stay importable from here

log = structlog.get_logger("dialer.campaigns")

# Milliseconds without a change before the directory is read: long enough for
# an editor's save (write temp, rename) or a `cp` to finish.
QUIET_MS = 300
# Seconds a file must have been left alone before the watcher reads it: a slow
# writer (a script, a copy over the network) is not read half-way. Short enough
# that a dropped file still dials within a second or two.
SETTLE_S = 0.5


@dataclass(frozen=True)
class _Reading:
    """What a file held when it was last read: a campaign, or its problems."""

    stamp: FileStamp | None
    campaign: Campaign | None
    issues: list[ConfigIssue]


class CampaignWatcher:
    """Follows the campaign directory and applies what changes in it."""

    def __init__(self, host: CampaignHost, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._host = host
        self.directory = directory
        self._clock = clock
        """Epoch seconds, compared with the files' modification times."""
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
                _read_directory, self.directory, dict(self._readings), settle, self._clock()
            )
            self._readings = readings
            if self._host.draining:
                return False  # shutting down: nothing new starts
            await self._apply_readings(readings)
            return unsettled

    async def _apply_readings(self, readings: dict[Path, _Reading]) -> None:
        host = self._host
        files = list(readings)
        names: dict[str, Path] = {}
        # Names a file stopped holding: gone only if no file holds them once all are read
        # (two files swapping their names, or a name moved into a file read later).
        renamed_away: list[str] = []
        for file, reading in readings.items():
            if host.draining:
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
            if previous != campaign or not host.runs(campaign.name):
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
        host.refresh_campaign_states()

    def _unprepared(self, campaign: Campaign, file: Path) -> list[ConfigIssue]:
        """What an enabled campaign needs that the daemon prepares only when it starts.

        Flows are loaded, and texts rendered, at the start (`IvrService.prepare`). Started
        without them, an IVR campaign dialed customers only to hang up on each answered
        call (no flow over FastAGI), and an abandon text played the generic sound instead.
        """
        if not campaign.enabled:
            return []
        flows, messages = self._host.prepared_media()
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
        await self._host.apply_campaign_file(campaign, file)
        log.info(
            "campaign.loaded" if started else "campaign.changed",
            campaign=campaign.name,
            file=str(file),
            enabled=campaign.enabled,
            max_lines=campaign.dialing.max_lines,
        )

    def _gone(self, name: str, file: Path | None = None) -> None:
        self._host.campaign_file_removed(name)
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


async def reload_config(host: ConfigHost, path: Path) -> ConfigReload:
    """Re-read the daemon config; the daemon applies what can change live. An invalid file changes nothing."""
    try:
        new = await asyncio.to_thread(load_config, path)  # parsing never holds up the loop
    except ConfigError as exc:
        result = ConfigReload(issues=[str(issue) for issue in exc.issues])
        for issue in result.issues:
            log.error("config.reload_invalid", problem=issue)
        return result
    return await host.apply_config(new)
