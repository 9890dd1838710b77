"""Reconcile open attempts with Asterisk's channels at start and after every AMI login.

This replaces closing every open attempt blindly at start: calls still up
are adopted (their runner follows them again), the others get their final
row and their lead goes to retry or done by the campaign's policy. Nothing
is ever dialed again for the same attempt; a retry is a new attempt.

While reconciling, `gate` is clear and the daemon's event consumer waits:
events that arrive between the channel list and the adoption are then
applied to the adopted attempts instead of being dropped as unknown.

With several Asterisk servers there is one reconciler per server: after
server B's login only the attempts B carries are adopted or closed from B's
channel list; the other servers' calls are not B's to judge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from dialer.pbx.protocol import Pbx
from dialer.config.campaign_rules import DEFAULT_RETRIES, retry_rules
from dialer.core.attempt import Attempt, State
from dialer.core.reconcile import Adopt, LiveChannel, Vanished, catch_up, channel_from_event, closing, plan
from dialer.daemon.campaign_runner import CampaignRunner
from dialer.store.lead_outcomes import OpenAttempt, finish_with_rules, open_attempts
from dialer.store.store import Store

log = structlog.get_logger("dialer.reconcile")


@dataclass(frozen=True)
class ReconcileSummary:
    adopted: int
    closed: int
    left_open: int


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp()


class Reconciler:
    def __init__(
        self,
        store: Store,
        ami: Pbx,
        runners: Callable[[], Mapping[str, CampaignRunner]],
        clock: Callable[[], float],
        *,
        server: str | None = None,
        carrier_of: Callable[[str, str | None], str] | None = None,
        adopted: Callable[[str, str], None] | None = None,
        judges: Callable[[int], bool] | None = None,
    ) -> None:
        self.store = store
        self.ami = ami
        self._runners = runners
        self._clock = clock
        self.server = server
        """The one server this reconciler judges; None: every attempt (a daemon with one server)."""
        self._carrier_of = carrier_of
        """Attempt id and the server on its row -> the server carrying it."""
        self._adopted = adopted
        self._judges = judges
        """Campaign id -> whether its calls are this daemon's to judge (several daemons: the campaigns it holds)."""
        self.gate = asyncio.Event()
        self.gate.set()

    async def live_channels(self) -> list[LiveChannel]:
        reply = await self.ami.action({"Action": "CoreShowChannels"}, as_list=True)
        entries = reply if isinstance(reply, list) else [reply]
        return [c for entry in entries if (c := channel_from_event(dict(entry))) is not None]

    async def reconcile(
        self, cutoff: float, campaigns: frozenset[int] | None = None, *, sent: frozenset[str] | None = None
    ) -> ReconcileSummary:
        """Adopt or close every attempt sent before `cutoff` (epoch seconds) that is not ended.

        `campaigns`: only theirs (a campaign started after the login, or taken over from another daemon).
        `sent`: of the runners' own attempts, only these (their Originate went out before the
        login); None: those dialed before `cutoff`. A time is not enough: a tick computes its
        `now` before it leases, and its Originates may go out after the login.
        """
        self.gate.clear()
        try:
            return await self._reconcile(cutoff, campaigns, sent)
        finally:
            self.gate.set()

    def _ours(self, attempt_id: str, recorded: str | None) -> bool:
        if self.server is None or self._carrier_of is None:
            return True
        return self._carrier_of(attempt_id, recorded) == self.server

    def _judged(self, campaign_id: int, campaigns: frozenset[int] | None) -> bool:
        if campaigns is not None and campaign_id not in campaigns:
            return False
        return self._judges is None or self._judges(campaign_id)

    async def _reconcile(
        self, cutoff: float, campaigns: frozenset[int] | None = None, sent: frozenset[str] | None = None
    ) -> ReconcileSummary:
        runners = {r.campaign_id: r for r in self._runners().values()}
        in_memory = {aid: (runner, a) for runner in runners.values() for aid, a in runner.attempts.items()}
        rows = {
            row.id: row
            for row in await open_attempts(self.store)
            if ((_epoch(row.dialed_at) or 0.0) < cutoff or row.id in in_memory) and self._ours(row.id, row.server)
            and self._judged(row.campaign_id, campaigns)
        }
        candidates = [
            (aid, in_memory[aid][1].state.value if aid in in_memory else row.state)
            for aid, row in rows.items()
            if aid not in in_memory or (in_memory[aid][1].dialed_at < cutoff if sent is None else aid in sent)
        ]
        channels = await self.live_channels() if candidates else []
        now = self._clock()
        adopted = closed = left = 0
        # Calls this daemon was following when it lost Asterisk (it has no memory at start).
        followed = frozenset(aid for aid, _ in candidates if aid in in_memory)
        for decision in plan(candidates, channels, followed):
            row = rows[decision.attempt_id]
            runner = runners.get(row.campaign_id)
            memory = in_memory.get(decision.attempt_id)
            if memory and (memory[1].id not in memory[0].attempts or memory[1].state is State.ended):
                # The runner settled it while the channel list was on its way, or has
                # decided it and writes its final row (again, if the last write failed).
                continue
            if isinstance(decision, Adopt):
                if runner is None:
                    left += 1
                    log.warning("reconcile.no_runner", attempt=row.id, campaign_id=row.campaign_id)
                    continue
                attempt = memory[1] if memory else self._revive(runner, row)
                await self._catch_up(attempt, decision, now)
                runner.attempts[attempt.id] = attempt
                if self.server is not None and self._adopted is not None:
                    self._adopted(attempt.id, self.server)
                adopted += 1
                log.info("call.adopted", attempt=attempt.id, number=attempt.phone, state=attempt.state.value)
            else:
                if memory and memory[1].hangup_at is not None:
                    continue  # its Hangup was seen: the runner's own settle decides
                await self._close(decision, row, runner, memory[1] if memory else None, now)
                closed += 1
        summary = ReconcileSummary(adopted, closed, left)
        log.info("reconcile.done", adopted=adopted, closed=closed, left_open=left, channels=len(channels))
        return summary

    def _revive(self, runner: CampaignRunner, row: OpenAttempt) -> Attempt:
        return Attempt(
            id=row.id,
            lead_id=row.lead_id,
            phone=row.phone,
            queue=runner.campaign.queue,
            dialed_at=_epoch(row.dialed_at) or self._clock(),
            ring_timeout=runner.campaign.dialing.ring_timeout,
            answered_at=_epoch(row.answered_at),
            bridged_at=_epoch(row.bridged_at),
        )

    async def _catch_up(self, attempt: Attempt, decision: Adopt, now: float) -> None:
        """Bring the attempt to the state its channels show (`dialer.core.reconcile.catch_up`); write what changed."""
        caught = catch_up(attempt, decision, now)
        attempt.state = caught.state
        attempt.channel = caught.channel
        attempt.ringing_at = caught.ringing_at
        attempt.answered_at = caught.answered_at
        attempt.bridged_at = caught.bridged_at
        attempt.agent_interface = caught.agent_interface
        if caught.changes:
            await self.store.update_attempt(
                attempt.id,
                **{k: datetime.fromtimestamp(v, UTC) if isinstance(v, float) else v for k, v in caught.changes.items()},
            )

    async def _close(
        self,
        decision: Vanished,
        row: OpenAttempt,
        runner: CampaignRunner | None,
        attempt: Attempt | None,
        now: float,
    ) -> None:
        # A campaign not running now (disabled, file removed) still gets the default policy.
        rules = retry_rules(runner.campaign.retries if runner else DEFAULT_RETRIES)
        columns = {k: datetime.fromtimestamp(v, UTC) if isinstance(v, float) else v for k, v in closing(decision, now).items()}
        if attempt is not None and runner is not None:
            attempt.finish(now)
            attempt.cut_short = decision.cut_short
            runner.attempts.pop(attempt.id, None)
        step = await finish_with_rules(
            self.store, row.id, outcome=decision.outcome, now=datetime.fromtimestamp(now, UTC), rules=rules, **columns
        )
        log.warning(
            "call.closed_unseen",
            attempt=row.id,
            number=row.phone,
            outcome=decision.outcome,
            cut_short=decision.cut_short,
            next=type(step).__name__.lower() if step else None,
        )
