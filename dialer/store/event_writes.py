"""What a burst of AMI events changes in the store, written in one transaction.

One event used to be one transaction: 600 calls ending together are thousands
of events, and each UPDATE's own begin/commit and statement set-up made the
daemon fall behind the PBX. The event consumer collects an attempt's columns
and each agent's state here and writes them when the burst is over (its queue
is empty), grouped so each group is one executemany.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, update

from dialer.store import dialect
from dialer.store.schema import agents, call_attempts
from dialer.store.store import Store, _naive_utc

_ID = "attempt_id_"  # a bind name no column has


class EventWrites:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._attempts: dict[str, dict[str, Any]] = {}
        self._agents: dict[str, tuple[str, datetime]] = {}

    def __len__(self) -> int:
        return len(self._attempts) + len(self._agents)

    def attempt(self, attempt_id: str, **values: Any) -> None:
        """Columns of one attempt; a later value of a column replaces an earlier one."""
        columns = {k: _naive_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
        self._attempts.setdefault(attempt_id, {}).update(dialect.fit(call_attempts, columns))

    def agent_state(self, agent_id: str, state: str, now: datetime) -> None:
        self._agents[agent_id] = (state, _naive_utc(now))

    async def flush(self) -> None:
        """Write what was collected in one transaction. What fails is not kept (as a single
        failed update was not): the next event's columns are written on their own."""
        if not self._attempts and not self._agents:
            return
        attempts, self._attempts = self._attempts, {}
        agent_states, self._agents = self._agents, {}
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for attempt_id, columns in attempts.items():
            if columns:
                by_columns[tuple(sorted(columns))].append({_ID: attempt_id, **columns})
        async with self.store._write() as conn:
            for names, rows in by_columns.items():
                await conn.execute(_attempt_update(names), rows)
            if agent_states:
                await conn.execute(
                    _AGENT_UPDATE, [{"agent_id_": a, "state_": s, "at_": at} for a, (s, at) in agent_states.items()]
                )


_AGENT_UPDATE = (
    update(agents)
    .where(agents.c.id == bindparam("agent_id_"))
    .values(state=bindparam("state_"), state_changed_at=bindparam("at_"))
)


@functools.cache
def _attempt_update(names: tuple[str, ...]) -> Update:
    # Few column sets ever occur (one per kind of event): each statement is built once.
    return update(call_attempts).where(call_attempts.c.id == bindparam(_ID)).values({n: bindparam(n) for n in names})
