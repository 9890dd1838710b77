"""The daemon's lifecycle: startup, main loop, shutdown, each its own step.

Signal handlers only set flags: the first SIGINT/SIGTERM stops placing calls
and lets the calls in progress finish (up to the drain time), a second one
ends at once. Every wait is interruptible by shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from dialer.ami.errors import AmiActionFailed, AmiError, AmiLoginFailed, AmiNotConnected
from dialer.ami.events import SUBSCRIBED, WANTED, to_record
from dialer.ami.gateway import AmiGateway, subscribe
from dialer.config.models import AgentConfig, AmiServer, Campaign, DialerConfig
from dialer.control.campaign_states import CampaignControls, RunState
from dialer.control.daemon_view import AmiServerStatus, CampaignStatus, ConfigReload, Status
from dialer.control.startup import StartupError
from dialer.core import records as r
from dialer.core.agents import AgentBoard, AgentState
from dialer.core.attempt import record_key
from dialer.core.reconcile import LiveChannel
from dialer.core.trunks import Trunks, TrunkView
from dialer.core.ownership import LeaseTerms
from dialer.daemon.campaign_leases import CampaignLeases, default_daemon_id
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.daemon.desk import Desk
from dialer.daemon.pbx_pool import PbxPool
from dialer.daemon.reconcile import Reconciler
from dialer.daemon.runner_table import RunnerTable
from dialer.daemon.server_watch import ServerWatch
from dialer.dispositions import on_disposition_event
from dialer.daemon.campaign_watcher import CampaignWatcher, reload_config
from dialer.daemon.systemd import Notifier
from dialer.daemon.task_supervisor import TaskSupervisor
from dialer.http.service import HttpService, start_http
from dialer.metrics import DaemonMetrics
from dialer.pbx.protocol import Pbx
from dialer.ivr.service import IvrService, IvrSetupError
from dialer.inbound.service import InboundService
from dialer.store.event_writes import EventWrites
from dialer.store.store import CampaignProgress, Store
from dialer.store.survey_store import SurveyStore
from dialer.webhook_dispatcher import WebhookDispatcher

log = structlog.get_logger("dialer.daemon")

_AGENT_RECORDS = (r.MemberStatus, r.MemberRemoved, r.AgentRinging, r.AgentConnected, r.AgentCompleted)
_CALL_RECORDS = (
    r.OriginateResult,
    r.ChannelCreated,
    r.ChannelState,
    r.ChannelHangup,
    r.QueueJoined,
    r.AgentRinging,
    r.AgentConnected,
    r.AgentCompleted,
    r.DialerAbandoned,
    r.AmdVerdict,
    r.MachineDetected,
    r.IvrStarted,
    r.IvrEnded,
    r.ShutdownHangup,
)


__all__ = ["CampaignStatus", "Daemon", "ProgressCallback", "StartupError", "Status", "status_line"]

ProgressCallback = Callable[[Status], None]

PbxFactory = Callable[[AmiServer, Callable[[], float]], Pbx]
"""Builds the daemon's PBX from its AMI server and clock (a simulated PBX in tests)."""


def ami_gateway(server: AmiServer, clock: Callable[[], float]) -> Pbx:
    return AmiGateway(server, wanted_events=WANTED, clock=clock)


class Daemon:
    def __init__(
        self,
        config: DialerConfig,
        campaigns: dict[str, Campaign],
        *,
        until_done: bool = False,
        on_progress: ProgressCallback | None = None,
        drain_timeout: float | None = None,
        login_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        watch_campaigns: bool = False,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        pbx_factory: PbxFactory | None = None,
        monotonic_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: epoch seconds (the calls, the files); `monotonic_clock`: for backoffs and the
        watchdog, never set back (a simulation passes its virtual time to both)."""
        self.config = config
        self.monotonic_clock = monotonic_clock
        self.pbx_factory = pbx_factory or ami_gateway
        self.campaigns = campaigns
        self.until_done = until_done
        self.on_progress = on_progress
        self.drain_timeout = config.drain_timeout if drain_timeout is None else drain_timeout
        self.watch_campaigns = watch_campaigns
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        # Walked across awaits while the watcher and the API add to it (runner_table).
        self.runners = RunnerTable()
        self.controls = CampaignControls(lambda: self.runners, lambda: self.should_exit, clock)
        self.watcher: CampaignWatcher | None = None
        self.metrics = DaemonMetrics(self)
        self.http: HttpService | None = None
        self._reload_requested = False
        self._stop_watch = asyncio.Event()
        self.login_timeout = login_timeout
        self.clock = clock
        self.should_exit = False
        self.force_exit = False
        self.store: Store | None = None
        self.ami: Pbx | None = None
        """The PBX the campaigns dial on: the one server, or with several a PbxPool over them."""
        self.pbxs: dict[str, Pbx] = {}
        """Each AMI server's own connection, by name."""
        self.pool: PbxPool | None = None
        """Set with several AMI servers: spreads the calls and routes each agent's actions."""
        self.server_watch = ServerWatch(clock)
        self.reconcilers: dict[str, Reconciler] = {}
        """With several AMI servers: each one's reconciler, by name (one server: `reconciler`)."""
        self._unreconciled: dict[int, float] = {}
        """Campaign id -> the moment its runner started, for campaigns started after the start-up
        (see `_reconcile_owed`); dropped once judged."""
        self._owed_logins: dict[str | None, tuple[Reconciler, Callable[[], Awaitable[object]]]] = {}
        """A login's reconciliation that failed (the database locked), by server: tried again
        each turn (see `_reconcile_owed`) until it succeeds or a new login supersedes it."""
        self.board = AgentBoard({a.id: a.interface for a in config.agents})
        self.desk = Desk(self) if config.http is not None and config.http.desk_users_file is not None else None
        """The agent and supervisor pages' live state (wrap-up, pauses, screen pops); None without desk users."""
        self.trunks = Trunks(config.trunk_rates(), config.tick_interval)
        """One calls-per-second limit and failure backoff per trunk, shared by every campaign on it."""
        self.reconciler: Reconciler | None = None
        self.leases: CampaignLeases | None = None
        """Several daemons on one database (config `daemons:`): the campaign leases this one holds."""
        self.ivr: IvrService | None = None
        self.inbound: InboundService | None = None
        """Customers calling a campaign's number back (FastAGI routes, their AMI events)."""
        self.webhooks: WebhookDispatcher | None = None
        """Sends the disposition webhooks' outbox; runs until the very end, the drain included."""
        self._stop_ami = asyncio.Event()
        self._wake = asyncio.Event()
        self._ticks_done = asyncio.Event()
        self._ticks_done.set()
        """Clear while the main loop's campaign ticks run (a login's reconciliation waits for them)."""
        self.tasks = TaskSupervisor(on_done=self._wake.set, clock=monotonic_clock)
        """The AMI reader, the event consumer, the watcher and the webhooks, restarted if they die."""
        self._failed = False
        self._started_at = clock()
        self._status: Status | None = None
        self._progress_read: dict[int, tuple[int, float, CampaignProgress]] = {}
        """Per campaign: the store's write count and the time when its progress was read, and what it was."""

    # -- signals ------------------------------------------------------------------

    def handle_exit(self) -> None:
        if self.should_exit:
            self.force_exit = True
            log.warning("daemon.force_exit")
        else:
            self.should_exit = True
            log.info("daemon.stopping", drain_timeout=self.drain_timeout)
        self._wake.set()

    def handle_reload(self) -> None:
        """SIGHUP: re-read the config and the campaign directory at the next loop turn."""
        self._reload_requested = True
        self._wake.set()

    # -- lifecycle -------------------------------------------------------------------

    async def serve(self) -> int:
        try:
            await self.startup()
        except StartupError:
            await self.shutdown()
            raise
        try:
            await self.main_loop()
        finally:
            await self.shutdown()
        # Without a systemd watchdog to stop, a daemon that gave up says so by its exit status.
        return 1 if self._failed else 0

    async def startup(self) -> None:
        try:
            self.store = await Store.open(self.config.database.url)
        except Exception as exc:  # translated: StoreError and driver errors alike
            raise StartupError(str(exc)) from exc
        now = self.clock()
        # Attempts a previous run left open are reconciled with Asterisk's
        # channels after the first login (see _after_login), not closed blindly.
        await self.store.sync_agents(self.config.agents, datetime.fromtimestamp(now, UTC))
        if self.config.daemons is not None:
            shared = self.config.daemons
            self.leases = CampaignLeases(
                self.store, shared.id or default_daemon_id(), LeaseTerms(shared.takeover_after, shared.heartbeat)
            )
            log.info("daemon.shares_database", daemon=self.leases.me, takeover_after=shared.takeover_after)

        self._build_pbxs()
        agent_ids = {a.interface: a.id for a in self.config.agents}
        for campaign in self.campaigns.values():
            if not campaign.enabled:
                continue
            campaign_id = await self.store.sync_campaign(campaign.name, campaign.type.value)
            runner = CampaignRunner(
                campaign, campaign_id, self.store, self.ami, self.board, agent_ids, clock=self.clock, trunks=self.trunks
            )
            runner.tiers.set_ladder(self.config.tiers)
            runner.number_region = self.config.default_region
            runner.wrapup_from_desk = self.desk is not None
            runner.server_room = self.pool.room if self.pool is not None else None
            await runner.restore_memory(now)
            self.runners[campaign.name] = runner
        for runner in self.runners.values():
            runner.borrow_history(self.runners.values())
        await self._start_ivr()
        # An Asterisk that is down (or restarting) at our start is a fault like
        # a later drop: come up, say "not ready" on /readyz and let the
        # supervisor retry with backoff; runners dial only while logged in.
        # A login Asterisk *refuses* is a wrong user or secret, which no retry
        # mends: that one still fails the start, loudly.
        reachable: list[Pbx] = []
        several = self.pool is not None
        for name, pbx in self.pbxs.items():
            where = f" (AMI server {name})" if several else ""
            try:
                await pbx.connect_once()
                reachable.append(pbx)
            except AmiLoginFailed as exc:
                raise StartupError(f"{exc}{where} (check the AMI username and secret)") from exc
            except (OSError, LookupError) as exc:  # secret_file unreadable, secret_env unset
                raise StartupError(f"the AMI secret{where} cannot be read: {exc}") from exc
            except AmiError as exc:
                # Several servers: say which (one server: the log line it always was).
                named = {"server": name} if several else {}
                log.warning("daemon.ami_unreachable_at_start", **named, error=str(exc), note="starting anyway; retrying")
            await pbx.close()
        for name, pbx in self.pbxs.items():
            # Each server has its own reader and consumer, supervised and restarted on its own.
            suffix, server = (f":{name}", name) if several else ("", None)
            self.tasks.start(f"ami{suffix}", functools.partial(pbx.run, self._stop_ami), self._stop_ami)
            self.tasks.start(f"events{suffix}", functools.partial(self._consume_events, server))
        for pbx in reachable:
            # So READY=1 and the first STATUS= say "AMI up" in the usual case.
            try:
                await asyncio.wait_for(pbx.connected.wait(), self.login_timeout)
            except asyncio.TimeoutError:
                log.warning("daemon.ami_login_slow", seconds=self.login_timeout, error=pbx.last_error)
        await self._start_ops()
        log.info("daemon.started", campaigns=list(self.runners), agents=len(self.config.agents))
        self.notifier.ready(status_line(await self.status()))

    def _build_pbxs(self) -> None:
        """One PBX per AMI server; with several, a pool in front that the campaigns dial on."""
        assert self.store is not None
        servers = self.config.ami
        self.pbxs = {server.name: self.pbx_factory(server, self.clock) for server in servers}
        if len(servers) == 1:
            self.ami = self.pbxs[servers[0].name]
            self.ami.on_login(self._after_login)
            self.reconciler = Reconciler(self.store, self.ami, lambda: self.runners, self.clock, judges=self._judges())
            return
        store = self.store
        pool = PbxPool(
            self.pbxs,
            servers,
            agent_servers={a.interface: self.config.server_of(a) for a in self.config.agents},
            board=self.board,
            live=lambda: [(runner.campaign.trunk, runner.attempts) for runner in self.runners.values()],
            record_server=lambda attempt_id, name: store.update_attempt(attempt_id, server=name),
        )
        self.pool = self.ami = pool
        for name, pbx in self.pbxs.items():
            pbx.on_login(functools.partial(self._after_login, name))
            self.reconcilers[name] = Reconciler(
                self.store, pbx, lambda: self.runners, self.clock,
                server=name, carrier_of=pool.carrier_of, adopted=pool.adopted, judges=self._judges(),
            )

    async def main_loop(self) -> None:
        next_progress = 0.0
        while not self.should_exit:
            self._supervise()
            if self._reload_requested:
                await self._reload()
            if self._unreconciled or self._owed_logins:
                await self._reconcile_owed()
            now = self.clock()
            if self.leases is not None:
                await self._hold_campaigns(now)
            if self.pool is not None:
                self.pool.forget_agents_of_down_servers()
            self._server_states()  # each server's state change is timed to a tick
            self.controls.settle()  # before the ticks: nothing leaves once a settling campaign is there
            self._ticks_done.clear()
            try:
                for runner in self.runners.values():
                    try:
                        await runner.tick(now)
                    except Exception:
                        log.exception("campaign.tick_failed", campaign=runner.campaign.name)
            finally:
                self._ticks_done.set()
            if now >= next_progress:
                next_progress = now + 1.0
                try:
                    status = await self.status()
                except Exception:
                    # The database locked for a while: no progress this turn, the next one reads it.
                    log.exception("daemon.status_failed")
                else:
                    if self.on_progress:
                        self.on_progress(status)
                    self.notifier.status(status_line(status))
                    if self.until_done and all(c.finished for c in status.campaigns):
                        log.info("daemon.all_campaigns_done")
                        return
            restart = self.tasks.seconds_to_next_restart()
            pause = min(self.config.tick_interval, self.notifier.watchdog_interval or 10.0)
            await self._sleep(pause if restart is None else min(pause, restart))

    def _judges(self) -> Callable[[int], bool] | None:
        leases = self.leases
        return None if leases is None else leases.holds

    async def _hold_campaigns(self, now: float) -> None:
        """Several daemons: renew the leases, reconcile campaigns gained, dial only those held."""
        assert self.leases is not None
        by_id = {runner.campaign_id: runner for runner in self.runners.values()}
        for campaign_id in await self.leases.beat(by_id, now):
            runner = by_id[campaign_id]
            if runner.attempts:
                # Their new owner has adopted them from the channel lists: two followers would write two ends.
                log.warning("lease.calls_handed_over", campaign=runner.campaign.name, count=len(runner.attempts))
                runner.attempts.clear()
        for campaign_id in self.leases.unreconciled():
            if await self._reconcile_taken_over(campaign_id):
                self.leases.reconciled(campaign_id)
        for runner in self.runners.values():
            runner.lease_held = self.leases.may_dial(runner.campaign_id, now)

    async def _reconcile_taken_over(self, campaign_id: int) -> bool:
        """The calls a gained campaign's previous owner left open, judged on every server reachable now.

        A server down now keeps its calls open, their leads leased (never dialed again
        meanwhile): its login reconciles them, as this daemon holds the campaign.
        """
        reconcilers = [self.reconciler] if self.reconciler is not None else list(self.reconcilers.values())
        for reconciler in reconcilers:
            if not reconciler.ami.connected.is_set():
                if self.pool is None:
                    return False  # the one server: nothing is dialed until its calls are known
                continue
            try:
                await reconciler.reconcile(self.clock(), frozenset({campaign_id}))
            except Exception:
                log.exception("lease.reconcile_failed", campaign_id=campaign_id)
                return False
        return True

    def _supervise(self) -> None:
        """Restart dead tasks; feed the watchdog only while none of them keeps dying."""
        self.tasks.check()
        failing = self.tasks.failing
        if not failing:
            self.notifier.watchdog(self.monotonic_clock())
            return
        if self.notifier.watchdog_interval is None and not self._failed:
            # Nobody would restart a daemon that merely stops its pings: stop it.
            log.critical("daemon.giving_up", failing=failing, action="stopping")
            self._failed = True
            self.handle_exit()
        # STATUS= says why the pings stopped: status_line names the failing tasks.

    async def shutdown(self) -> None:
        self.should_exit = True  # also when the loop ended by itself: the API says "draining"
        self.notifier.stopping()
        self._stop_watch.set()
        for runner in self.runners.values():
            runner.paused = True
        deadline = self.clock() + self.drain_timeout
        while any(r.busy for r in self.runners.values()) and not self.force_exit and self.clock() < deadline:
            # The calls still up need their events: the reader and consumer are kept alive.
            self._supervise()
            if self._owed_logins:
                await self._reconcile_owed()  # a call whose end was lost with the link is over only so
            now = self.clock()
            if self.leases is not None:
                # Still ours while draining: nobody else adopts (and ends a second time) the calls up.
                leases = self.leases
                await leases.beat([r.campaign_id for r in self.runners.values() if leases.holds(r.campaign_id)], now)
            for runner in self.runners.values():
                try:
                    await runner.tick(now)
                except Exception:
                    # The database locked for a while: the next turn writes what this one could not.
                    log.exception("campaign.tick_failed", campaign=runner.campaign.name)
            await self._sleep(0.2)
        for runner in self.runners.values():
            try:
                await runner.wait_sends()
                # Calls still up are left to Asterisk with their leads leased; the next
                # start adopts them (dialer.daemon.reconcile): never up and due at once.
                left = await runner.abort_live(self.clock())
                if left:
                    log.warning("daemon.calls_left_up", campaign=runner.campaign.name, count=left)
            except Exception:
                # What could not be closed now stays open for the next start's reconciliation,
                # as after a kill -9; the other campaigns and the agents are still seen to.
                log.exception("daemon.drain_failed", campaign=runner.campaign.name)
            await runner.tiers.close()
        if self.ivr is not None:
            await self.ivr.stop()
        if self.inbound is not None:
            await self.inbound.close()
        if self.leases is None:
            await self._log_agents_out()  # with several daemons, another may still dial for them
        self._stop_ami.set()
        await self.tasks.cancel_all()
        if self.desk is not None:
            await self.desk.close()
        if self.http is not None:
            await self.http.stop()
        if self.ami is not None:
            await self.ami.close()
        if self.store is not None:
            if self.leases is not None:
                # After the drain: calls left up are adopted by the next owner, at once.
                await self.leases.release_all()
            if self.on_progress and self.runners:
                self.on_progress(await self.status())
            await self.store.close()
        log.info("daemon.stopped")
        self.notifier.close()

    async def _log_agents_out(self) -> None:
        """Take our agents out of their queues: with no dialer, nobody paces calls to them.

        Best effort: Asterisk may already be gone, and the next start adds them again.
        """
        if self.ami is None or not self.ami.connected.is_set():
            return
        for agent in self.config.agents:
            if self.pool is not None and not self.pbxs[self.config.server_of(agent)].connected.is_set():
                continue  # its server is gone: the others' agents are still taken out
            for queue in agent.queues:
                try:
                    await self.ami.queue_remove(queue, agent.interface)
                except AmiError as exc:
                    log.warning("daemon.agent_logout_failed", agent=agent.id, queue=queue, error=str(exc))
                    return

    # -- operations: drop directory, reload, HTTP -----------------------------------

    async def apply_campaign(self, campaign: Campaign) -> CampaignRunner:
        """Start a campaign, or swap a new version into its runner (calls in progress go on)."""
        assert self.store is not None and self.ami is not None
        runner = self.runners.get(campaign.name)
        if runner is not None:
            runner.campaign = campaign
            if self.ivr is not None:
                runner.dialplan_variables = self.ivr.variables(campaign)
            return runner
        campaign_id = await self.store.sync_campaign(campaign.name, campaign.type.value)
        agent_ids = {a.interface: a.id for a in self.config.agents}
        runner = CampaignRunner(
            campaign, campaign_id, self.store, self.ami, self.board, agent_ids, clock=self.clock, trunks=self.trunks
        )
        runner.tiers.set_ladder(self.config.tiers)
        runner.number_region = self.config.default_region
        runner.wrapup_from_desk = self.desk is not None
        runner.server_room = self.pool.room if self.pool is not None else None
        await runner.restore_memory(self.clock())
        runner.borrow_history(self.runners.values())
        if self.ivr is not None:
            runner.dialplan_variables = self.ivr.variables(campaign)
        # Its own calls come after this moment: never judged as left over.
        self._unreconciled[campaign_id] = self.clock()
        self.runners[campaign.name] = runner
        return runner

    async def _reconcile_owed(self) -> None:
        """The reconciliations still owed: a login's that failed, and campaigns started since the login.

        A login's reconciliation that failed leaves the calls it was to judge open, their
        ends perhaps lost with the connection; a live call whose campaign had no runner
        at the login (the file was broken at the start) is left open too. Each is judged
        now, against the live channels, or its lead would stay leased for ever. A server
        not logged in now judges them at its next login; a failure (the database locked)
        is tried again next turn.
        """
        for server, (owed, again) in list(self._owed_logins.items()):
            if owed.ami.connected.is_set():
                try:
                    await again()
                except Exception:
                    log.exception("daemon.reconcile_failed", server=server)
                    continue
            del self._owed_logins[server]
        reconcilers = [self.reconciler] if self.reconciler is not None else list(self.reconcilers.values())
        for campaign_id, cutoff in list(self._unreconciled.items()):
            try:
                for reconciler in reconcilers:
                    if reconciler.ami.connected.is_set():
                        await reconciler.reconcile(cutoff, frozenset({campaign_id}))
            except Exception:
                log.exception("campaign.reconcile_failed", campaign_id=campaign_id)
                continue
            del self._unreconciled[campaign_id]

    async def apply_config(self, new: DialerConfig) -> ConfigReload:
        """A reloaded config (SIGHUP), valid: apply what can change live, report what needs a restart."""
        result = ConfigReload()
        old = self.config
        for name in _NEED_RESTART:
            if getattr(old, name) != getattr(new, name):
                result.need_restart.append(name)
        # What needs a restart keeps its running value, so status tells the truth and the
        # servers in use (their connections, calls and agents) are left as they are.
        running = new.model_copy(update={name: getattr(old, name) for name in _NEED_RESTART})
        servers = {server.name for server in old.ami}
        stranded = sorted(a.id for a in running.agents if running.server_of(a) not in servers)
        if stranded:
            # An agent on a server not connected yet has nowhere to be logged in: the new
            # agents wait for the restart that connects it.
            running = running.model_copy(update={"agents": old.agents})
            result.need_restart.append("agents")
        if old.logging.level != new.logging.level:
            logging.getLogger().setLevel(new.logging.level.upper())
            result.applied.append("logging.level")
        if old.agents != running.agents:
            await self._apply_agents(old, running)
            result.applied.append("agents")
        if old.tick_interval != new.tick_interval:
            result.applied.append("tick_interval")
        if old.drain_timeout != new.drain_timeout:
            self.drain_timeout = new.drain_timeout
            result.applied.append("drain_timeout")
        self.config = running
        self.trunks.configure(self.config.trunk_rates(), self.config.tick_interval, self.clock())
        if result.need_restart:
            log.warning(
                "config.reload_needs_restart", settings=result.need_restart,
                note="changed in the file but kept as running until the daemon restarts",
                **({"agents_on_servers_not_running": stranded} if stranded else {}),
            )
        log.info("config.reloaded", applied=result.applied, need_restart=result.need_restart)
        return result

    async def _apply_agents(self, old: DialerConfig, new: DialerConfig) -> None:
        # In place: the runners, their tier code, the desk and inbound calls all hold this one board.
        self.board.set_agents({a.id: a.interface for a in new.agents})
        if self.pool is not None:
            self.pool.set_agent_servers({a.interface: new.server_of(a) for a in new.agents})
        if self.desk is not None:
            self.desk.set_agents(new.agents)
        agent_ids = {a.interface: a.id for a in new.agents}
        for runner in self.runners.values():
            runner.set_agents(agent_ids)
        if self.inbound is not None:
            self.inbound.agent_ids = {k.lower(): v for k, v in agent_ids.items()}
        if self.store is not None:
            await self.store.sync_agents(new.agents, datetime.fromtimestamp(self.clock(), UTC))
        if self.ami is None or not self.ami.connected.is_set():
            return  # the next login adds the members of the new config
        await self._sync_queue_members(_memberships(old.agents), _memberships(new.agents), new)

    async def _sync_queue_members(
        self, before: set[tuple[str, str]], after: set[tuple[str, str]], config: DialerConfig
    ) -> None:
        assert self.ami is not None
        by_interface = {a.interface: a for a in config.agents}
        for queue, interface in sorted(before - after):
            try:
                await self.ami.queue_remove(queue, interface)
            except AmiError as exc:
                log.warning("agent.queue_remove_failed", queue=queue, interface=interface, error=str(exc))
            agent = self.board.agent(interface)
            if agent is not None:
                agent.queues.discard(queue)
        for queue, interface in sorted(after - before):
            agent_config = by_interface[interface]
            try:
                await self.ami.queue_add(queue, interface, agent_config.id, agent_config.penalty)
            except AmiError as exc:
                log.warning("agent.queue_add_failed", queue=queue, interface=interface, error=str(exc))
        log.info("agents.reloaded", removed=sorted(before - after), added=sorted(after - before))

    # -- what the campaign watcher may ask (dialer.control.daemon_view.CampaignHost) -------

    @property
    def draining(self) -> bool:
        return self.should_exit

    def runs(self, name: str) -> bool:
        return name in self.runners

    def prepared_media(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        if self.ivr is None:
            return {}, {}
        return self.ivr.flows, self.ivr.messages

    async def apply_campaign_file(self, campaign: Campaign, file: Path) -> None:
        self.controls.file_seen(campaign, file)
        if campaign.enabled or campaign.name in self.runners:
            await self.apply_campaign(campaign)

    def campaign_file_removed(self, name: str) -> None:
        self.controls.file_removed(name)

    def refresh_campaign_states(self) -> None:
        self.controls.apply()

    # -- what the HTTP app and the metrics may read (DaemonView) --------------------------

    @property
    def ami_connected(self) -> bool:
        return bool(self.ami and self.ami.connected.is_set())

    @property
    def ami_reconnects(self) -> int:
        return self.ami.reconnects if self.ami is not None else 0

    @property
    def ami_servers(self) -> list[AmiServerStatus]:
        return self._server_states()

    def _server_states(self) -> list[AmiServerStatus]:
        if self.pool is not None:
            return self.server_watch.look(self.pbxs, self.config.ami, shutting_down=self.pool.shutting_down,
                                          calls=self.pool.calls_by_server())
        # One server: its connection is `ami` (which a test may have set without `pbxs`).
        one = {self.config.ami[0].name: self.ami} if self.ami is not None else {}
        calls = {name: sum(len(r.attempts) for r in self.runners.values()) for name in one}
        return self.server_watch.look(one, self.config.ami, calls=calls)

    def agent(self, interface: str) -> AgentState | None:
        state = self.board.agent(interface)
        return _copy_agent(state) if state is not None else None

    def agents(self) -> list[AgentState]:
        return [_copy_agent(a) for a in self.board.agents()]

    def agents_in_queue(self, queue: str) -> list[AgentState]:
        return [_copy_agent(a) for a in self.board.in_queue(queue)]

    def campaign_state(self, name: str) -> RunState:
        return self.controls.state(name)

    def campaign_file(self, name: str) -> Path | None:
        return self.controls.file(name)

    def known_campaigns(self) -> list[str]:
        return self.controls.known()

    def campaign_exists(self, name: str) -> bool:
        return self.controls.exists(name)

    def config_issues(self) -> list[str]:
        return self.watcher.issue_lines() if self.watcher is not None else []

    def trunk_views(self) -> list[TrunkView]:
        return self.trunks.views(self.clock())

    # -- what operators may ask (DaemonCommands) -------------------------------------------

    async def start_campaign(self, name: str) -> RunState:
        return await self.controls.start(name)

    async def pause_campaign(self, name: str) -> RunState:
        return await self.controls.pause(name)

    async def resume_campaign(self, name: str) -> RunState:
        return await self.controls.resume(name)

    async def stop_campaign(self, name: str, now: bool = False) -> RunState:
        return await self.controls.stop(name, now=now)

    def _agent_config(self, agent_id: str) -> AgentConfig:
        [agent] = [a for a in self.config.agents if a.id == agent_id]
        return agent

    def _logged_in_pbx(self) -> Pbx:
        if self.ami is None or not self.ami.connected.is_set():
            raise AmiNotConnected("not logged in to AMI right now")
        return self.ami

    async def agent_login(self, agent_id: str, queues: Sequence[str]) -> None:
        agent, pbx = self._agent_config(agent_id), self._logged_in_pbx()
        for queue in queues:
            await pbx.queue_add(queue, agent.interface, agent.id, agent.penalty)

    async def agent_logout(self, agent_id: str, queues: Sequence[str]) -> None:
        agent, pbx = self._agent_config(agent_id), self._logged_in_pbx()
        for queue in queues:
            await pbx.queue_remove(queue, agent.interface)

    async def agent_pause(self, agent_id: str, paused: bool, queue: str | None, reason: str | None) -> None:
        agent, pbx = self._agent_config(agent_id), self._logged_in_pbx()
        fields = {"Action": "QueuePause", "Interface": agent.interface, "Paused": str(paused).lower()}
        if queue:
            fields["Queue"] = queue
        if reason:
            fields["Reason"] = reason
        await pbx.action(fields)

    def reload(self) -> None:
        self.handle_reload()

    def webhooks_due(self) -> None:
        if self.webhooks is not None:
            self.webhooks.wake()

    # -- IVR (FastAGI), AMD and rendered messages ----------------------------------

    async def _start_ivr(self) -> None:
        assert self.store is not None
        try:
            self.ivr = await IvrService.prepare(self.config, self.campaigns.values())
            for runner in self.runners.values():
                runner.dialplan_variables = self.ivr.variables(runner.campaign)
            self.inbound = InboundService(
                self.store, self.board, self._inbound_campaigns, tiers=self.config.tiers,
                agent_ids={a.interface: a.id for a in self.config.agents}, default_region=self.config.default_region,
                ami=self.ami, clock=self.clock,
            )
            self.inbound.abandon_sounds = {
                c.name: self.ivr.messages[c.abandon_text] for c in self.campaigns.values()
                if c.abandon_text and c.abandon_text in self.ivr.messages
            }
            if self.ivr.needed or self.inbound.wanted:
                await self.ivr.start(
                    lambda: self.runners.values(), SurveyStore(self.store), self._on_ivr_record, self.clock,
                    extra_routes=self.inbound.routes(),
                )
        except IvrSetupError as exc:
            raise StartupError(str(exc)) from exc

    def _inbound_campaigns(self) -> list[Campaign]:
        """Every campaign file the daemon knows: a paused or finished campaign still takes its callers."""
        found = {c.name: c for c in self.campaigns.values()}
        found.update({r.campaign.name: r.campaign for r in self.runners.values()})
        return list(found.values())

    async def _on_ivr_record(self, record: r.CallRecord) -> None:
        key = record_key(record)
        for runner in self.runners.values():
            if runner.owns(key):
                await runner.on_record(record)
                return

    async def _start_ops(self) -> None:
        assert self.store is not None and self.ami is not None
        self.metrics.instrument_engine(self.store.engine)
        self.ami.on_action = self.metrics.observe_ami_action
        for campaign in self.campaigns.values():
            self.controls.file_seen(campaign, None)
        if self.watch_campaigns:
            self.watcher = CampaignWatcher(self, self.config.campaign_dir, clock=self.clock)
            await self.watcher.reload()
            watcher = self.watcher
            self.tasks.start("campaign-watcher", lambda: watcher.run(self._stop_watch), self._stop_watch)
        self.controls.apply()
        self.webhooks = WebhookDispatcher(
            self.store, lambda: {n: x.campaign for n, x in self.runners.items()}, clock=self.clock
        )
        # Never set: the task is cancelled with the others once the drain is over.
        webhooks = self.webhooks
        self.tasks.start("webhooks", lambda: webhooks.run(asyncio.Event()))
        if self.config.http is not None:
            self.http = await start_http(self)  # its errors are StartupErrors

    async def _reload(self) -> None:
        self._reload_requested = False
        # A reload that fails (the database locked by an import past its busy timeout)
        # is logged and may be asked again; it must never end the main loop.
        if self.config_path is not None:
            try:
                await reload_config(self, self.config_path)
            except Exception:
                log.exception("config.reload_failed")
        if self.watcher is not None:
            try:
                await self.watcher.reload()
            except Exception:
                log.exception("campaign.reload_failed")

    # -- internals ---------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _after_login(self, server: str | None = None) -> None:
        """After a login to the one server, or (several) to `server`: only its agents and its calls."""
        pbx = self.ami if server is None else self.pbxs[server]
        assert pbx is not None
        # At the login itself, before any await. No runner dials on a half-known board (a key
        # call would borrow a general agent while the key team is still being added), nor
        # before the reconciliation. Only calls whose Originate went out before this login
        # are judged: one not written yet, or placed by a tick in flight, goes out on this
        # session, and Asterisk's channel list may not show it yet (closed as vanished while
        # it rings, its lead would be due again: a double dial).
        for runner in self.runners.values():
            runner.board_synced = False
        sent = frozenset(aid for runner in self.runners.values() for aid in runner.attempts if aid not in runner.unsent)
        cutoff = self.clock()  # rows a previous run left open, dialed before this login, are reconciled
        await subscribe(pbx, SUBSCRIBED)
        if server is not None and self.pool is not None:
            self.pool.logged_in(server)
        agents = [a for a in self.config.agents if server is None or self.config.server_of(a) == server]
        if server is None:
            self.board.logged_out_all()
        else:
            for agent in agents:
                state = self.board.agent(agent.interface)
                if state is not None:
                    state.queues.clear()
        queues: set[str] = set()
        for agent in agents:
            for queue in agent.queues:
                try:
                    await pbx.queue_add(queue, agent.interface, agent.id, agent.penalty)
                except AmiActionFailed as exc:
                    # Asterisk refused this one (no such queue in queues.conf): failing the
                    # login for it would log in again for ever and no campaign would dial.
                    log.error("agent.queue_add_refused", agent=agent.id, queue=queue, error=exc.message)
                    continue
                queues.add(queue)
        now = self.clock()
        for queue in sorted(queues):
            try:
                members = await pbx.queue_members(queue)
            except AmiActionFailed as exc:
                log.error("agent.queue_status_refused", queue=queue, error=exc.message)
                continue
            for member in members:
                member.setdefault("Event", "QueueMember")
                record = to_record(member, now)
                if isinstance(record, r.MemberStatus):
                    self.board.apply(record)
        reconciler = self.reconciler if server is None else self.reconcilers[server]
        if reconciler is None:
            for runner in self.runners.values():
                runner.board_synced = True
        if reconciler is not None:
            try:
                # A tick that passed its checks before the login places its calls now: they
                # must be in the runners' memory (not judged), not read as rows left open.
                await self._ticks_done.wait()
                await reconciler.reconcile(cutoff, sent=sent)
                self._owed_logins.pop(server, None)  # this one covers every call an earlier one was to judge
            except AmiError:
                raise
            except Exception:
                log.exception("daemon.reconcile_failed")
                self._owed_logins[server] = (reconciler, functools.partial(reconciler.reconcile, cutoff, sent=sent))
            finally:
                for runner in self.runners.values():
                    runner.board_synced = True
            if self.inbound is not None and (server is None or self._all_servers_up()):
                # Inbound rows do not say their server: judged on every server's channels at once.
                try:
                    await self.inbound.adopt(reconciler.live_channels if server is None else self._all_channels)
                except AmiError:
                    raise
                except Exception:
                    log.exception("daemon.inbound_adopt_failed")

    def _all_servers_up(self) -> bool:
        return all(pbx.connected.is_set() for pbx in self.pbxs.values())

    async def _all_channels(self) -> list[LiveChannel]:
        return [c for reconciler in self.reconcilers.values() for c in await reconciler.live_channels()]

    def _server_shutdown(self, server: str, record: r.PbxShutdown) -> None:
        """One of several servers announced its shutdown: only its calls end by its fault; it gets no new call."""
        assert self.pool is not None
        self.pool.going_away(server)
        for runner in list(self.runners.values()):
            for attempt_id, attempt in list(runner.attempts.items()):
                if self.pool.carrier_of(attempt_id) == server:
                    attempt.apply(record)

    async def _consume_events(self, server: str | None = None) -> None:
        """The one server's events, or (several) `server`'s: each server has its own consumer."""
        pbx = self.ami if server is None else self.pbxs[server]
        assert pbx is not None
        reconciler = self.reconciler if server is None else self.reconcilers[server]
        # A burst's attempt columns, agent states and final rows, written when the burst is
        # over and _BURST_SPAN has passed since the first of them (or _BURST_WRITES are held).
        writes = EventWrites(self.store) if self.store is not None else None
        try:
            await self._consume(server, pbx, reconciler, writes)
        finally:
            if writes is not None:
                writes.orphaned = True  # what it still holds is written by the runners' next tick

    async def _consume(
        self, server: str | None, pbx: Pbx, reconciler: Reconciler | None, writes: EventWrites | None
    ) -> None:
        loop = asyncio.get_running_loop()
        unwritten_since = 0.0
        while True:
            event: tuple[dict[str, str], float] | None = None
            if writes is not None and len(writes):
                idle = pbx.events.empty()
                if len(writes) >= _BURST_WRITES or (idle and loop.time() >= unwritten_since + _BURST_SPAN):
                    await _write_burst(writes)
                elif idle:
                    try:
                        async with asyncio.timeout(unwritten_since + _BURST_SPAN - loop.time()):
                            event = await pbx.events.get()
                    except TimeoutError:
                        continue
            raw, at = event if event is not None else await pbx.events.get()
            if writes is not None and not len(writes):
                unwritten_since = loop.time()
            if reconciler is not None:
                if writes is not None and not reconciler.gate.is_set():
                    await _write_burst(writes)  # what the reconciliation reads is written first
                await reconciler.gate.wait()
            record = to_record(raw, at)
            if record is None:
                continue
            try:
                if isinstance(record, r.PbxShutdown):
                    log.warning("ami.pbx_shutdown", restart=record.restart, **({"server": server} if server else {}))
                    if server is not None:
                        self._server_shutdown(server, record)
                    else:
                        for runner in list(self.runners.values()):
                            runner.pbx_shutdown(record)
                if isinstance(record, r.DispositionRequested) and self.store is not None:
                    if writes is not None:
                        await _write_burst(writes)  # the call's final row before its disposition
                    applied = await on_disposition_event(
                        self.store, {n: x.campaign for n, x in self.runners.items()}, record
                    )
                    if applied is not None and applied.event_id and self.webhooks is not None:
                        self.webhooks.wake()
                if isinstance(record, _AGENT_RECORDS):
                    agent = self.board.apply(record)
                    if agent is not None and self.desk is not None:
                        self.desk.on_agent_record(agent, record, at)
                    if agent is not None and writes is not None:
                        # The stored state is for reports, written with the burst; the call must
                        # still learn of its agent (a lost AgentConnect would make an answered
                        # call abandoned).
                        writes.agent_state(agent.id, agent.label, datetime.fromtimestamp(at, UTC))
                if isinstance(record, _CALL_RECORDS):
                    key = record_key(record)
                    if self.inbound is not None and self.inbound.owns(key):
                        await self.inbound.on_record(record)
                        continue
                    for runner in self.runners.values():
                        if runner.owns(key):
                            await runner.on_record(record, writes)
                            break
            except Exception:
                log.exception("daemon.event_failed", ami_event=raw.get("Event"))  # `event` is structlog's own

    async def _progress(self, campaign_id: int) -> CampaignProgress:
        """The campaign's counts of leads and outcomes: its two queries only when this daemon
        wrote since they were read, or _PROGRESS_REREAD seconds later (an idle tick reads nothing)."""
        assert self.store is not None
        now = self.monotonic_clock()  # a wall clock set back must not keep the progress for an hour
        read = self._progress_read.get(campaign_id)
        if read is not None and read[0] == self.store.writes and now < read[1] + _PROGRESS_REREAD:
            return read[2]
        writes = self.store.writes  # before the read: a write committed meanwhile is read next time
        progress = await self.store.progress(campaign_id)
        self._progress_read[campaign_id] = (writes, now, progress)
        return progress

    async def status(self) -> Status:
        assert self.store is not None
        campaigns = []
        for runner in self.runners.values():
            progress = await self._progress(runner.campaign_id)
            counts = runner.live_counts()
            campaigns.append(
                CampaignStatus(
                    name=runner.campaign.name,
                    total=progress.pending + progress.leased + progress.done,
                    done=progress.done,
                    placed=runner.placed,
                    ringing=counts.ringing,
                    waiting=counts.waiting,
                    talking=counts.talking,
                    outcomes=progress.outcomes,
                    finished=progress.finished and not runner.busy,
                    state=self.controls.state(runner.campaign.name).value,
                )
            )
        agents = [a for a in self.board.agents() if a.queues]
        return Status(
            campaigns=campaigns,
            agents_logged_in=len(agents),
            agents_busy=sum(1 for a in agents if not a.free),
            ami_connected=bool(self.ami and self.ami.connected.is_set()),
            elapsed=self.clock() - self._started_at,
            failing=self.tasks.failing,
        )


_PROGRESS_REREAD = 30.0
"""Seconds after which a campaign's progress is read again though this daemon wrote nothing:
another process's writes (a lead import from the command line, another daemon)."""


_NEED_RESTART = ("ami", "database", "http", "campaign_dir", "daemons")
"""Config settings a reload cannot change: each needs a new connection or listener."""


_BURST_WRITES = 500
"""Attempts and agents collected at most before a write, however long the burst."""
_BURST_SPAN = 0.5
"""Seconds a burst's writes wait at most for more (the default tick): events that come a few
at a time (calls ending one by one) share a transaction too, each a handful of statements
whatever it holds. Nothing is dropped from memory before its write; what a kill -9 loses
meanwhile is reconciled at the next start, as before; a reconciliation or a disposition
writes the batch first."""


async def _write_burst(writes: EventWrites) -> None:
    try:
        await writes.flush()
    except Exception:
        # As a failed single update was: logged, and the calls go on.
        log.exception("daemon.event_writes_failed")


def _memberships(agents: Iterable[AgentConfig]) -> set[tuple[str, str]]:
    return {(queue, agent.interface) for agent in agents for queue in agent.queues}


def _copy_agent(state: AgentState) -> AgentState:
    return dataclasses.replace(state, queues=set(state.queues))


def status_line(status: Status) -> str:
    """One line for `systemctl status` (STATUS=)."""
    lines = sum(c.ringing + c.waiting + c.talking for c in status.campaigns)
    running = sum(1 for c in status.campaigns if c.state == "running")
    ami = "AMI up" if status.ami_connected else "AMI DOWN"
    failed = f"FAILED: task(s) {', '.join(status.failing)} keep dying; watchdog stopped; " if status.failing else ""
    return (
        f"{failed}{ami}; {running}/{len(status.campaigns)} campaign(s) running; {lines} call(s) up; "
        f"agents {status.agents_busy}/{status.agents_logged_in} busy"
    )
