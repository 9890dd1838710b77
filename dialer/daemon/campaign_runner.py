"""One campaign at run time: read -> decide -> write.

Each tick reads the board and the store into a view, asks the campaign's
`dialer.core.campaign.CampaignCore` what to lease, how many calls to place
and how to route each, then writes the leases and sends the Originates; each
event is handed to the core and the changes it reports are written to the
store. `dialer simulate` drives the same core object.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from dialer.ami.errors import AmiActionFailed, AmiError, AmiTimeout, AmiUnsafeValue
from dialer.pbx.protocol import Pbx
from dialer.config.models import Campaign
from dialer.core import records as r
from dialer.core.agents import AgentBoard, AgentState
from dialer.core.abandon import AbandonState, AbandonWindow
from dialer.core.amd import FalsePositiveCounter
from dialer.core.attempt import REFUSED, Attempt
from dialer.core.campaign import (
    AgentView,
    CallToPlace,
    CampaignCore,
    CampaignView,
    CoreSettings,
    Finished,
    LiveCounts,
    PlacedCall,
    TierRules,
)
from dialer.core.estimators import CampaignStats
from dialer.core.originate import CampaignDialplan
from dialer.core.pacing import PacingMode, PacingPolicy, PacingSnapshot
from dialer.core.trunks import TrunkGate, Trunks, trunk_key
from dialer.config.campaign_rules import retry_rules
from dialer.daemon.lead_screen import screen_leases
from dialer.daemon.tier_dialing import TierDialing
from dialer.store.event_writes import EventWrites
from dialer.store.lead_outcomes import FinalRow, finish_with_rules, not_sent
from dialer.store.store import Store, StoreError

log = structlog.get_logger("dialer.campaign")

DIALPLAN_CONTEXT = "dialer-outbound"
ABANDON_WINDOWS = {"30d": 30 * 86400.0, "24h": 86400.0}
BORROW_BELOW = 200
LEADS_RECOUNT = 60.0
"""Seconds between counts of the leads left (the pacing's look-ahead); never per tick."""
"""Attempts of its own under which a campaign starts from a sibling's statistics, and the
sibling's latest attempts it takes (dialer.core.estimators.CampaignStats.adopt)."""
DIALPLAN_EXTEN = "answered"
__all__ = ["BORROW_BELOW", "DIALPLAN_CONTEXT", "CampaignRunner", "LiveCounts", "core_settings"]


@dataclass(frozen=True)
class _Refusal:
    """An Originate Asterisk refused, whose final row is still to be written."""

    not_sent: bool  # refused because the PBX is shutting down: no attempt counted
    message: str
    at: float


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def policy_of(campaign: Campaign) -> PacingPolicy:
    dialing = campaign.dialing
    return PacingPolicy(
        mode=PacingMode(dialing.mode.value),
        max_lines=dialing.max_lines,
        ratio=dialing.ratio,
        abandon_limit=dialing.abandon_limit,
        abandon_target=dialing.abandon_target,
        grace=float(dialing.agent_wait),
        override_ceiling=dialing.override_ceiling,
    )


def core_settings(campaign: Campaign, tiers: TierRules) -> CoreSettings:
    """What the campaign core needs of a campaign's file (and its tiers against the ladder)."""
    return CoreSettings(
        policy=policy_of(campaign),
        general_queue=campaign.queue,
        agent_wait=campaign.dialing.agent_wait,
        ring_timeout=campaign.dialing.ring_timeout,
        tiers=tiers,
        paced_by_lines=bool(campaign.ivr),
        abandon_window=ABANDON_WINDOWS[campaign.dialing.abandon_window],
        false_positive_rate=campaign.amd.false_positive_rate,
        false_positives_counted=campaign.amd.false_positives.value == "count_as_abandoned",
    )


def dialplan_of(campaign: Campaign, media: dict[str, str]) -> CampaignDialplan:
    return CampaignDialplan(
        campaign=campaign.name,
        queue=campaign.queue,
        agent_wait=campaign.dialing.agent_wait,
        abandon_message=campaign.abandon_message,
        media=media,
    )


def agent_view(agent: AgentState) -> AgentView:
    return AgentView(
        id=agent.id,
        free=agent.free,
        busy_since=agent.busy_since,
        wrapup_since=agent.wrapup_since,
        queues=frozenset(agent.queues),
    )


class CampaignRunner:
    def __init__(
        self,
        campaign: Campaign,
        campaign_id: int,
        store: Store,
        ami: Pbx,
        board: AgentBoard,
        agent_ids: dict[str, str],
        clock: Callable[[], float] = time.time,
        trunks: Trunks | None = None,
    ) -> None:
        self._clock = clock
        self.trunks = trunks or Trunks()
        """Calls per second and failure backoff per trunk; the daemon's is shared by all campaigns."""
        self.campaign = campaign
        self.number_region: str | None = None
        """The config's default_region: how a lead number without + is read at dial time."""
        self.campaign_id = campaign_id
        self.store = store
        self.ami = ami
        self.board = board
        self._agent_ids = {k.lower(): v for k, v in agent_ids.items()}  # interface -> agent id
        self.core = CampaignCore(core_settings(campaign, TierRules()))
        """The campaign's decisions and what they remember (dialer.core.campaign)."""
        self.placed = 0
        self.dialplan_variables: dict[str, str] = {}
        """Set by the daemon: IVR/AMD variables and rendered messages (dialer.ivr.service)."""
        self.board_synced = True
        """False while the daemon re-reads the queues' members after a login."""
        self.server_room: Callable[[str], int | None] | None = None
        """Set by a daemon with several Asterisk servers: calls its trunk may still get on them (None: no limit)."""
        self.paused = False
        self.settling = False
        """Ended over its abandon limit (dialer.control.campaign_states): progressive, whatever its mode."""
        self.lease_held = True
        """False while this daemon may not dial the campaign (several daemons: another holds its lease)."""
        self._sends: set[asyncio.Task[None]] = set()
        self._unplaced: set[str] = set()
        self._refusals: dict[str, _Refusal] = {}
        """Attempts leased by a tick that failed before dialing them: given back (`not_sent`)
        by the next ticks, or their leads would stay leased with nothing dialed."""
        self.unsent: set[str] = set()
        """Attempts placed whose Originate is not written (nor failed) yet: a login's
        reconciliation leaves them alone, they go out on the new session."""
        self.tiers = TierDialing(store, board, self.core)
        """Tier I/O: leases per tier, CRM, contact policy, lending, screen pop; the daemon sets its ladder."""
        self._log = log.bind(campaign=campaign.name)
        self._batches: dict[int, EventWrites] = {}
        """The event consumers' batches holding rows of this campaign's attempts, by identity, in
        order: a restarted consumer, or another server's, brings its own; each is kept until written."""
        self._writing: set[str] = set()
        """Attempts whose final row is in the consumer's batch: no other write of it meanwhile."""
        self._leads_counted_at = float("-inf")
        self._configure()

    # -- what the core holds ------------------------------------------------------

    @property
    def attempts(self) -> dict[str, Attempt]:
        return self.core.attempts

    @property
    def stats(self) -> CampaignStats:
        return self.core.stats

    @stats.setter
    def stats(self, stats: CampaignStats) -> None:
        self.core.stats = stats

    @property
    def abandon_window(self) -> AbandonWindow:
        return self.core.abandon_window

    @property
    def false_positives(self) -> FalsePositiveCounter:
        return self.core.false_positives

    @property
    def wrapup_from_desk(self) -> bool:
        """True when agents end their wrap-up on the agent desk, which teaches the pacing
        each measured wrap-up (dialer.daemon.desk); else wrap-up is taken as 0."""
        return self.core.wrapup_measured

    @wrapup_from_desk.setter
    def wrapup_from_desk(self, measured: bool) -> None:
        self.core.wrapup_measured = measured

    # -- read ---------------------------------------------------------------------

    def _configure(self) -> None:
        """The campaign's file or the tier ladder may have changed since the last tick."""
        settings = core_settings(self.campaign, self.tiers.rules(self.campaign))
        if self.settling:
            # One call per free agent: an answered customer always finds one, so each
            # answer brings the window's rate down, and no call is paced by lines alone.
            policy = replace(settings.policy, mode=PacingMode.progressive)
            settings = replace(settings, policy=policy, paced_by_lines=False)
        self.core.settings = settings

    def view(self) -> CampaignView:
        """The agents of every queue the campaign's decisions look at, as the board has them."""
        queues = self.core.settings.tiers.queues(self.campaign.queue)
        return CampaignView({q: tuple(agent_view(a) for a in self.board.in_queue(q)) for q in queues})

    def live_counts(self) -> LiveCounts:
        return self.core.live_counts()

    def abandon_state(self, now: float) -> AbandonState:
        """The abandon window at `now`, against the campaign's limit."""
        return self.core.abandon_window.state(now, self.campaign.dialing.abandon_limit)

    def snapshot(self, now: float) -> PacingSnapshot:
        self._configure()
        return self.core.snapshot(self.view(), now)

    def policy(self) -> PacingPolicy:
        return policy_of(self.campaign)

    def learn(
        self, outcome: str, dialed: float, answered: float | None, bridged: float | None, ended: float
    ) -> None:
        """Teach the pacing one finished attempt."""
        self._configure()
        self.core.learn(outcome, dialed, answered, bridged, ended)

    async def restore_memory(self, now: float) -> None:
        """Rebuild the statistics and abandon window from stored attempts after a restart."""
        self._configure()
        window = ABANDON_WINDOWS[self.campaign.dialing.abandon_window]
        rows = await self.store.recent_attempts(self.campaign_id, _dt(now - window), limit=self.stats.window)
        self.core.restore(
            (
                row["outcome"],
                _epoch(row["dialed_at"]),
                _epoch(row["answered_at"]),
                _epoch(row["bridged_at"]),
                _epoch(row["ended_at"]),
            )
            for row in rows
        )

    def borrow_history(self, others: Iterable[CampaignRunner]) -> str | None:
        """A campaign with little history of its own starts its pacing from a sibling's:
        the busiest one on the same queue, else of the same type. Returns its name."""
        if self.stats.attempts_seen >= BORROW_BELOW or self.campaign.ivr:
            return None
        candidates = [
            other
            for other in others
            if other is not self and other.stats.attempts_seen >= BORROW_BELOW and not other.campaign.ivr
        ]
        same_queue = [o for o in candidates if o.campaign.queue == self.campaign.queue]
        same_type = [o for o in candidates if o.campaign.type == self.campaign.type]
        pool = same_queue or same_type
        if not pool:
            return None
        sibling = max(pool, key=lambda o: o.stats.attempts_seen)
        self.stats.adopt(sibling.stats, samples=BORROW_BELOW)
        self._log.info("pacing.history_borrowed", sibling=sibling.campaign.name)
        return sibling.campaign.name

    # -- a tick: read -> decide -> write ------------------------------------------------

    async def tick(self, now: float) -> None:
        self._configure()
        await self._write_refusals()
        await self._settle(now)
        await self._give_back(now)
        if self.paused or not self.lease_held or not self.board_synced or not self.ami.connected.is_set():
            return
        # Before the pacing reads the board: a dedicated agent lent to the general
        # queue is counted on by the other tiers, one taken back by the key accounts.
        await self.tiers.lend(self.ami, self.campaign, self.campaign_id, self.attempts, now)
        if self.campaign.dialing.early_budget and now >= self._leads_counted_at + LEADS_RECOUNT:
            # At start and once a minute, one COUNT: a young abandon window's budget looks
            # ahead to the answers the leads left will bring (the core takes each call
            # placed off the count in between).
            self._leads_counted_at = now
            self.core.count_leads(await self.store.leads_to_dial(self.campaign_id))
        lines_left = self.campaign.dialing.max_lines - self.live_counts().lines
        if self.server_room is not None:
            # Several Asterisk servers: their own line limits and health bound this tick too.
            servers_left = self.server_room(self.campaign.trunk)
            lines_left = lines_left if servers_left is None else min(lines_left, servers_left)
        # The trunk's calls per second and failure backoff, shared with every campaign
        # on it, bound this tick like free lines do: nothing is leased that could not
        # be dialed now, and what is not dialed goes back to the trunk.
        gate = self.trunk()
        granted = gate.grant(self.campaign.name, lines_left, now)
        sent = 0
        try:
            sent = await self._place(min(lines_left, granted), now)
        finally:
            gate.give_back(self.campaign.name, granted - sent)

    def trunk(self) -> TrunkGate:
        return self.trunks.gate(trunk_key(self.campaign.trunk))

    async def _place(self, lines_left: int, now: float) -> int:
        """Lease and dial up to `lines_left` calls as the core says; returns how many were sent."""
        core = self.core
        # Before any lease: a dialplan the core refuses must not leave leads leased.
        dialplan = dialplan_of(self.campaign, self.dialplan_variables)
        view = self.view()
        # Reserved tiers (key accounts) first, one call per agent free for them; then
        # the other tiers as the pacing says (dialer.core.campaign).
        room = core.reserved_room(view, lines_left)
        due = core.asks_due(room) and await self.tiers.due(self.campaign, self.campaign_id, now)
        room = core.hold(room, due=due, lines_left=lines_left)
        reserved = await self.store.lease_due_leads(
            self.campaign_id, room.to_lease, _dt(now), tiers=self.tiers.lease_tiers(self.campaign, reserved=True)
        )
        leased = [lease.attempt_id for lease in reserved]
        try:
            wanted = core.decide(view, now, lines_left=lines_left, reserved_leased=len(reserved), room=room)
            others = await self.store.lease_due_leads(
                self.campaign_id, wanted, _dt(now), tiers=self.tiers.lease_tiers(self.campaign, reserved=False)
            )
            leased += [lease.attempt_id for lease in others]
            if room.to_lease <= 0 and wanted <= 0:
                return 0
            screened = await screen_leases(
                self.campaign, self.store, reserved + others, now, self.board, region=self.number_region
            )
            leases = await self.tiers.prepare(self.campaign, screened.leases, view, room=room, now=now)
            placed = core.place(
                (
                    CallToPlace(
                        lease.attempt_id,
                        lease.lead_id,
                        lease.phone,
                        customer=self.tiers.customer(lease.attempt_id),
                        callback_agent=screened.direct.get(lease.attempt_id),
                    )
                    for lease in leases
                ),
                now,
                dialplan,
            )
        except Exception:
            # The database locked between the lease and the dial: nothing was dialed.
            self._unplaced.update(leased)
            raise
        for call in placed:
            self.placed += 1
            self.unsent.add(call.attempt.id)
            task = asyncio.create_task(self._originate(call))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            task.add_done_callback(functools.partial(self._sent, call.attempt.id))
        return len(placed)

    def _sent(self, attempt_id: str, _task: asyncio.Task[None]) -> None:
        self.unsent.discard(attempt_id)

    async def _write_refusals(self) -> None:
        """Write the final rows of refused Originates; each attempt goes once its row is stored."""
        for attempt_id in sorted(self._refusals):
            # Taken out while written: a send task and a tick never write one row twice.
            refusal = self._refusals.pop(attempt_id, None)
            if refusal is None:
                continue
            try:
                if refusal.not_sent:
                    await not_sent(self.store, attempt_id, now=_dt(refusal.at))
                else:
                    await finish_with_rules(
                        self.store,
                        attempt_id,
                        outcome=REFUSED,
                        now=_dt(refusal.at),
                        rules=retry_rules(self.campaign.retries),
                        ended_at=_dt(refusal.at),
                        hangup_cause_text=refusal.message,
                    )
            except BaseException:
                self._refusals[attempt_id] = refusal
                raise
            self.attempts.pop(attempt_id, None)

    async def _give_back(self, now: float) -> None:
        """End the attempts a failed tick leased and never dialed (`not_sent`): their leads are due again."""
        for attempt_id in sorted(self._unplaced):
            await not_sent(self.store, attempt_id, now=_dt(now))
            self._unplaced.discard(attempt_id)
            self._log.warning("call.given_back", attempt=attempt_id)

    async def _originate(self, call: PlacedCall) -> None:
        campaign = self.campaign
        attempt = call.attempt
        gate = self.trunk()
        try:
            await self.ami.originate(
                attempt_id=attempt.id,
                channel=campaign.dial_string(attempt.phone),
                context=DIALPLAN_CONTEXT,
                exten=DIALPLAN_EXTEN,
                timeout_ms=campaign.dialing.ring_timeout * 1000,
                caller_id=campaign.caller_id,
                variables=call.variables,
            )
            self._log.info("call.dialing", attempt=attempt.id, number=attempt.phone)
        except AmiActionFailed as exc:
            # An Error reply: Asterisk queued nothing and nobody was called. Redialing at
            # once would loop hot on one lead (issue 11), so it is an attempt, `refused`,
            # due again after the campaign's `refused` delay, and the trunk backs off.
            now = self._clock()
            if not isinstance(exc, AmiUnsafeValue):
                # One the gateway would not even write (a bad value in this call)
                # says nothing about the trunk.
                gate.refused(now, exc.message)
            await self.tiers.after_attempt(campaign, attempt, REFUSED, now)
            shutting_down = "shutting down" in exc.message.lower()
            if shutting_down:
                # Neither the number nor the trunk: the PBX is going away, and the
                # backoff holds the campaign until it is back.
                self._log.warning("call.not_sent", attempt=attempt.id, number=attempt.phone, error=str(exc))
            else:
                self._log.warning(
                    "call.refused", attempt=attempt.id, number=attempt.phone, trunk=gate.name, error=str(exc)
                )
            # Kept among the attempts until its row is written: a write that fails (a
            # locked database) is tried again at the next tick, never left open.
            self._refusals[attempt.id] = _Refusal(not_sent=shutting_down, message=exc.message[:200], at=now)
            try:
                await self._write_refusals()
            except StoreError as write_exc:
                self._log.warning("call.refusal_unwritten", attempt=attempt.id, error=str(write_exc))
        except AmiError as exc:
            # The Originate may or may not have reached Asterisk (a timeout
            # says nothing): never send it again, let events or the settle
            # timer decide.
            self._log.warning(
                "call.originate_failed", attempt=attempt.id, error=str(exc), uncertain=isinstance(exc, AmiTimeout)
            )
            attempt.send_failed(self._clock())

    # -- events -----------------------------------------------------------------

    def set_agents(self, agent_ids: dict[str, str]) -> None:
        """Agents changed at a config reload: interface -> agent id."""
        self._agent_ids = {k.lower(): v for k, v in agent_ids.items()}

    def owns(self, uniqueid: str) -> bool:
        return uniqueid in self.attempts

    async def on_record(self, record: r.CallRecord, writes: EventWrites | None = None) -> None:
        """Apply one event. With `writes` (the daemon's event consumer), the attempt's columns
        join the burst's one transaction instead of a transaction of their own."""
        observed = self.core.observe(record)
        if observed is None:
            return
        attempt, changes = observed
        self._trunk_verdict(attempt, record)
        if isinstance(record, r.AgentRinging):
            agent_id = self._agent_ids.get(record.interface.lower(), record.interface)
            self.tiers.on_agent_ringing(self.ami, self.campaign, record, agent_id)
        if isinstance(record, r.AgentConnected):
            changes["agent_id"] = self._agent_ids.get(record.interface.lower(), record.interface)
            self._log.info("call.bridged", attempt=attempt.id, agent=changes["agent_id"])
        if changes:
            columns = {k: _dt(v) if k.endswith("_at") else v for k, v in changes.items()}
            if writes is None:
                await self.store.update_attempt(attempt.id, **columns)
            else:
                writes.attempt(attempt.id, **columns)
                self._batches[id(writes)] = writes
        if isinstance(record, r.ChannelHangup):
            self.board.ring_ended(attempt.id)
            if writes is None:
                await self._settle(record.at)
            else:
                self._settle_into(writes, attempt.id, record.at)

    def _trunk_verdict(self, attempt: Attempt, record: r.CallRecord) -> None:
        """A channel made means the trunk took the call; a Failure before any channel, that it refused."""
        if isinstance(record, r.ChannelCreated):
            self.trunk().accepted()
        elif isinstance(record, r.OriginateResult) and not record.success and attempt.channel is None:
            self.trunk().refused(record.at, f"Originate failed before a channel existed (reason {record.reason})")

    async def _settle(self, now: float) -> None:
        # Written first, dropped after: a write that fails (a locked database) leaves the
        # attempt in the core, and the next tick writes it again.
        done = [f for f in self.core.due(now) if f.attempt.id not in self._writing]
        stranded = any(b.orphaned for b in self._batches.values())
        if done or stranded:
            # Stranded: rows left in the batch of a consumer that was cancelled or restarted
            # before its burst was over (another consumer's batch may hold newer rows of ours
            # meanwhile: every batch is kept until written); no one else will write them.
            await self.write_pending()  # may write some of `done` itself (their rows were in the batch)
        for finished in done:
            if finished.attempt.id in self._writing or finished.attempt.id not in self.attempts:
                continue
            await self._write_finished(finished, now)
            self.core.written(finished.attempt.id)

    def _settle_into(self, writes: EventWrites, attempt_id: str, now: float) -> None:
        """A hung-up attempt settled by now has its final row join the consumer's batch: the
        calls that end in one burst share its transaction. It stays in the core until its row
        is committed; a failed write leaves it to the next tick's `_settle`, as are attempts
        that settle later (their time runs out) or whose earlier write failed."""
        self._batches[id(writes)] = writes
        finished = self.core.due_one(attempt_id, now)
        if finished is None or attempt_id in self._writing:
            return
        self._writing.add(attempt_id)
        row, agent_id = self._final_row(finished, now)
        writes.final(
            row,
            written=functools.partial(self._final_written, finished, now, agent_id),
            failed=functools.partial(self._writing.discard, attempt_id),
        )

    async def _final_written(self, finished: Finished, now: float, agent_id: str | None, _step: object) -> None:
        try:
            await self._after_final(finished, now, agent_id)
            self.core.written(finished.attempt.id)
        finally:
            self._writing.discard(finished.attempt.id)

    async def write_pending(self) -> None:
        """Write the event columns still waiting in the consumer's batch: an attempt's
        final row is written after them, never under them."""
        batches, self._batches = self._batches, {}
        failed: BaseException | None = None
        for writes in batches.values():
            try:
                await writes.flush()
            except Exception as exc:  # the other batches are still written; this one's rows wait
                failed = failed or exc
        if failed is not None:
            raise failed

    def _final_row(self, finished: Finished, now: float) -> tuple[FinalRow, str | None]:
        attempt = finished.attempt
        columns = attempt.final_columns()
        if attempt.agent_interface:
            columns["agent_id"] = self._agent_ids.get(attempt.agent_interface.lower(), attempt.agent_interface)
        row = FinalRow(
            attempt.id,
            finished.outcome,
            datetime.fromtimestamp(now, UTC),
            retry_rules(self.campaign.retries),
            {k: _dt(v) if k.endswith("_at") else v for k, v in columns.items()},
        )
        return row, columns.get("agent_id")

    async def _write_finished(self, finished: Finished, now: float) -> None:
        row, agent_id = self._final_row(finished, now)
        await finish_with_rules(
            self.store, row.attempt_id, outcome=row.outcome, now=row.now, rules=row.rules, **row.columns
        )
        await self._after_final(finished, now, agent_id)

    async def _after_final(self, finished: Finished, now: float, agent_id: str | None) -> None:
        """What follows an attempt's final row once it is stored."""
        attempt, outcome = finished.attempt, finished.outcome
        # A call cut short is due again: no revisit to book.
        await self.tiers.after_attempt(
            self.campaign, attempt, "interrupted" if attempt.cut_short else outcome, now, finished.plan
        )
        self._log.info(
            "call.finished",
            attempt=attempt.id,
            number=attempt.phone,
            outcome=outcome,
            cut_short=attempt.cut_short,
            cause=attempt.hangup_cause,
            agent=agent_id,
            ring_s=_round(attempt.answered_at or attempt.ended_at, attempt.dialed_at),
            talk_s=_round(attempt.ended_at, attempt.bridged_at),
        )

    def pbx_shutdown(self, record: r.PbxShutdown) -> None:
        """Asterisk announced its shutdown: every call up ends by its fault (dialer.core.attempt)."""
        self.core.pbx_shutdown(record)
        if self.attempts:
            self._log.warning("call.pbx_shutdown", calls=len(self.attempts), restart=record.restart)

    async def abort_live(self, now: float) -> int:
        """At the stop (drain deadline or second signal): finish calls that are over, leave the rest up.

        A call whose channel may still be up is left to Asterisk, its attempt
        open and its lead leased: the next start's reconciliation adopts it or
        closes it, as after a kill -9. Ending its attempt here would make the
        lead due while the customer may still be talking to an agent.
        Returns how many calls were left up.
        """
        left = 0
        await self.write_pending()
        await self._write_refusals()
        await self._settle(now)  # first those decided earlier whose write failed
        for attempt in list(self.attempts.values()):
            over = attempt.hangup_at is not None or (attempt.channel is None and attempt.originate_success is False)
            if over:
                # only its settle time was still running
                await self._write_finished(self.core.finish(attempt, now), now)
                continue
            left += 1
            self._log.warning("call.left_up", attempt=attempt.id, number=attempt.phone, state=attempt.state.value)
        self.core.leave_all()
        return left

    @property
    def busy(self) -> bool:
        return bool(self.attempts) or bool(self._sends) or bool(self._unplaced)

    async def wait_sends(self) -> None:
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)


def _epoch(moment: datetime | None) -> float | None:
    # The store keeps naive UTC datetimes.
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp()


def _round(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return round(end - start, 2)
