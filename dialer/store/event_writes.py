"""What a burst of AMI events changes in the store, written in one transaction.

One event used to be one transaction: 600 calls ending together are thousands
of events, and each UPDATE's own begin/commit and statement set-up made the
daemon fall behind the PBX. The event consumer collects an attempt's columns
and each agent's state here and writes them when the burst is over (its queue
is empty), grouped so each group is one executemany. The final rows of the calls
that ended in the burst are written in the same transaction, after the columns
(`dialer.store.lead_outcomes.finish_many`); whoever queued one learns of it only
once it is committed, so nothing is dropped from memory before it is stored.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, update

from dialer.core.retry import Close, Retry
from dialer.store import dialect
from dialer.store.lead_outcomes import FinalRow, finish_many
from dialer.store.schema import agents, call_attempts
from dialer.store.store import Store, _naive_utc

_ID = "attempt_id_"  # a bind name no column has


@dataclass(frozen=True)
class _Final:
    row: FinalRow
    written: Callable[[Retry | Close | None], Awaitable[None]]
    failed: Callable[[], None]


class EventWrites:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._attempts: dict[str, dict[str, Any]] = {}
        self._agents: dict[str, tuple[str, datetime]] = {}
        self._finals: dict[str, _Final] = {}
        self.orphaned = False
        """Set when the consumer that collects this batch stops: the runners' next tick writes
        what it still holds."""

    def __len__(self) -> int:
        return len(self._attempts) + len(self._agents) + len(self._finals)

    def attempt(self, attempt_id: str, **values: Any) -> None:
        """Columns of one attempt; a later value of a column replaces an earlier one."""
        columns = {k: _naive_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
        self._attempts.setdefault(attempt_id, {}).update(dialect.fit(call_attempts, columns))

    def agent_state(self, agent_id: str, state: str, now: datetime) -> None:
        self._agents[agent_id] = (state, _naive_utc(now))

    def final(
        self,
        row: FinalRow,
        *,
        written: Callable[[Retry | Close | None], Awaitable[None]],
        failed: Callable[[], None],
    ) -> None:
        """An attempt's final row, written after the columns. Once committed, `written` is
        awaited with the lead's step; if the write fails, `failed` is called (the caller
        still holds the attempt and writes it again)."""
        earlier = self._finals.get(row.attempt_id)
        if earlier is not None:
            # The later row stands (as a later column value does); whoever gave the earlier
            # one still hears how the write went.
            written, failed = _both(earlier.written, written), _both_now(earlier.failed, failed)
        self._finals[row.attempt_id] = _Final(row, written, failed)

    async def flush(self) -> None:
        """Write what was collected in one transaction. Columns that fail are not kept (as a
        single failed update was not): the next event's columns are written on their own."""
        if not self._attempts and not self._agents and not self._finals:
            return
        attempts, self._attempts = self._attempts, {}
        agent_states, self._agents = self._agents, {}
        finals, self._finals = list(self._finals.values()), {}
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for attempt_id, columns in attempts.items():
            if columns:
                by_columns[tuple(sorted(columns))].append({_ID: attempt_id, **columns})
        try:
            async with self.store._write() as conn:
                for names, rows in by_columns.items():
                    await conn.execute(_attempt_update(names), rows)
                if agent_states:
                    await conn.execute(
                        _AGENT_UPDATE,
                        [{"agent_id_": a, "state_": s, "at_": at} for a, (s, at) in agent_states.items()],
                    )
                steps = await finish_many(conn, [f.row for f in finals])
        except BaseException:
            for final in finals:
                final.failed()
            raise
        failures: list[BaseException] = []
        for final in finals:
            try:
                await final.written(steps[final.row.attempt_id])
            except Exception as exc:  # every caller learns of its row, whatever one of them does
                failures.append(exc)
        if failures:
            raise failures[0]


def _both(
    first: Callable[[Retry | Close | None], Awaitable[None]], second: Callable[[Retry | Close | None], Awaitable[None]]
) -> Callable[[Retry | Close | None], Awaitable[None]]:
    async def written(step: Retry | Close | None) -> None:
        try:
            await first(step)
        finally:
            await second(step)

    return written


def _both_now(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def failed() -> None:
        try:
            first()
        finally:
            second()

    return failed


_AGENT_UPDATE = (
    update(agents)
    .where(agents.c.id == bindparam("agent_id_"))
    .values(state=bindparam("state_"), state_changed_at=bindparam("at_"))
)


@functools.cache
def _attempt_update(names: tuple[str, ...]) -> Update:
    # Few column sets ever occur (one per kind of event): each statement is built once.
    return update(call_attempts).where(call_attempts.c.id == bindparam(_ID)).values({n: bindparam(n) for n in names})
