"""Which Asterisk server carries the next call, when the daemon drives several.

Each server has its own trunks, line limit and agents (a phone registers on
one server, and a queue only reaches the members on its own server). A call
is best placed where a free agent in the campaign's queue can take it when
answered, then where most lines are free; a server that is down or shutting
down gets nothing, and no server goes over its line limit. Pure: the daemon
gathers the views (dialer.daemon.pbx_pool) and asks here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerView:
    name: str
    up: bool
    """Logged in and not announcing a shutdown."""
    lines_in_use: int
    max_lines: int | None
    """None: no limit of its own (the campaigns' limits still hold)."""
    trunks: frozenset[str] = frozenset()
    """The trunk names it carries; empty: every trunk."""
    free_agents: int = 0
    """Agents free in the campaign's queue whose phone is on this server, less the calls already
    on their way to it (each will take one of them)."""

    def carries(self, trunk: str) -> bool:
        return not self.trunks or trunk in self.trunks

    @property
    def free_lines(self) -> int | None:
        """Lines still free; None without a limit."""
        return None if self.max_lines is None else max(0, self.max_lines - self.lines_in_use)


def _open(server: ServerView, trunk: str) -> bool:
    return server.up and server.carries(trunk) and server.free_lines != 0


def choose(servers: Sequence[ServerView], trunk: str, *, agent_needed: bool = False) -> str | None:
    """The server for one call on `trunk`, or None when no server that is up carries it with a line free
    (with `agent_needed`, and an agent free for it: a call the pacing meant for another server's agent).

    Free agents first (an answered call waits least there), then free lines (an
    unlimited server counts as having the most), then the fewest lines in use,
    then the order of the config (stable, so one server is filled predictably).
    """
    best: tuple[int, float, int, int] | None = None
    chosen: str | None = None
    for index, server in enumerate(servers):
        if not _open(server, trunk) or (agent_needed and server.free_agents <= 0):
            continue
        free = server.free_lines
        key = (-server.free_agents, -(float("inf") if free is None else free), server.lines_in_use, index)
        if best is None or key < best:
            best, chosen = key, server.name
    return chosen


def room(servers: Iterable[ServerView], trunk: str) -> int | None:
    """Calls on `trunk` the servers could still take together; None when one that is up has no limit."""
    total = 0
    for server in servers:
        if not server.up or not server.carries(trunk):
            continue
        free = server.free_lines
        if free is None:
            return None
        total += free
    return total
