"""Several Asterisk servers seen by the campaigns as one PBX.

The runners, the tier lending, the desk and the inbound calls keep talking to
one `Pbx`; this pool sends each action where it belongs: an Originate to the
server `dialer.core.servers.choose` picks (its name written on the attempt's
row before the call leaves, so a reconciliation after a crash asks the right
server), an agent's queue actions and a supervisor's monitor call on an agent
(`beside` it) to the server its phone registers on. Each
server keeps its own connection, supervision and event consumer in the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from dialer.ami.errors import AmiActionFailed, AmiNotConnected
from dialer.config.models import AmiServer
from dialer.core.agents import AgentBoard
from dialer.core.attempt import Attempt
from dialer.core.servers import ServerView, choose, room
from dialer.core.trunks import trunk_key
from dialer.pbx.protocol import OnAction, OnLogin, Pbx

RecordServer = Callable[[str, str], Awaitable[None]]
"""Writes an attempt's server on its row (attempt id, server name)."""

LiveCalls = Callable[[], Iterable[tuple[str, Mapping[str, Attempt]]]]
"""Each running campaign's trunk template and live attempts."""


class _AnyUp(asyncio.Event):
    """Set while at least one server is logged in: the runners dial while one is."""

    def __init__(self, servers: Mapping[str, Pbx]) -> None:
        super().__init__()
        self._servers = servers

    def is_set(self) -> bool:
        return any(p.connected.is_set() for p in self._servers.values())


class PbxPool:
    def __init__(
        self,
        servers: Mapping[str, Pbx],
        configs: Iterable[AmiServer],
        *,
        agent_servers: Mapping[str, str],
        board: AgentBoard,
        live: LiveCalls,
        record_server: RecordServer,
    ) -> None:
        self.servers = dict(servers)
        self._configs = {c.name: c for c in configs}
        self.first = next(iter(self.servers))
        self._agent_servers = {k.lower(): v for k, v in agent_servers.items()}
        """Agent interface (lower case) -> the server its phone registers on."""
        self._board = board
        self._live = live
        self._record_server = record_server
        self.server_of: dict[str, str] = {}
        """Attempt id -> the server carrying it, for calls placed or adopted in this run."""
        self.shutting_down: set[str] = set()
        """Servers that announced a shutdown since their last login: they get no new call."""
        self.connected: asyncio.Event = _AnyUp(self.servers)
        self.events: asyncio.Queue[tuple[dict[str, str], float]] = asyncio.Queue()
        """Unused: each server's own queue has its own consumer in the daemon."""
        self.last_error: str | None = None
        self._on_action: OnAction | None = None

    # -- what the daemon tells it ---------------------------------------------------

    def set_agent_servers(self, agent_servers: Mapping[str, str]) -> None:
        self._agent_servers = {k.lower(): v for k, v in agent_servers.items()}

    def logged_in(self, server: str) -> None:
        self.shutting_down.discard(server)

    def going_away(self, server: str) -> None:
        self.shutting_down.add(server)
        self._forget_agents(server)

    def forget_agents_of_down_servers(self) -> None:
        """Agents on a server that is not logged in take no call: the pacing must not count them
        free (its queue would leave calls sent elsewhere waiting). Its next login reads them again."""
        for name, pbx in self.servers.items():
            if not pbx.connected.is_set():
                self._forget_agents(name)

    def _forget_agents(self, server: str) -> None:
        for interface, on in self._agent_servers.items():
            if on == server and (agent := self._board.agent(interface)) is not None:
                agent.queues.clear()

    def adopted(self, attempt_id: str, server: str) -> None:
        self.server_of[attempt_id] = server

    def carrier_of(self, attempt_id: str, recorded: str | None = None) -> str:
        """The server an attempt is on: as placed in this run, else as its row says, else the first."""
        return self.server_of.get(attempt_id) or recorded or self.first

    # -- the views the chooser reads ------------------------------------------------

    def views(self, queue: str | None = None) -> list[ServerView]:
        in_use = dict.fromkeys(self.servers, 0)
        heading = dict.fromkeys(self.servers, 0)
        live: set[str] = set()
        for _, attempts in self._live():
            for attempt_id, attempt in attempts.items():
                live.add(attempt_id)
                server = self.server_of.get(attempt_id)
                if server in in_use:
                    in_use[server] += 1
                    if attempt.bridged_at is None:
                        heading[server] += 1
        # Calls that ended are forgotten here, once the runners have let go of them.
        for gone in [a for a in self.server_of if a not in live]:
            del self.server_of[gone]
        free = dict.fromkeys(self.servers, 0)
        if queue is not None:
            for agent in self._board.in_queue(queue):
                server = self._agent_servers.get(agent.interface.lower(), self.first)
                if agent.free and server in free:
                    free[server] += 1
        # An agent a call already on its way will take is not free for the next one.
        free = {name: max(0, count - heading[name]) for name, count in free.items()}
        return [
            ServerView(
                name=name,
                up=pbx.connected.is_set() and name not in self.shutting_down,
                lines_in_use=in_use[name],
                max_lines=self._configs[name].max_lines if name in self._configs else None,
                trunks=frozenset(self._configs[name].trunks) if name in self._configs else frozenset(),
                free_agents=free[name],
            )
            for name, pbx in self.servers.items()
        ]

    def calls_by_server(self) -> dict[str, int]:
        """Calls in progress on each server: those placed or adopted in this run, until they end."""
        calls = dict.fromkeys(self.servers, 0)
        for _, attempts in self._live():
            for attempt_id in attempts:
                server = self.server_of.get(attempt_id)
                if server in calls:
                    calls[server] += 1
        return calls

    def room(self, trunk_template: str) -> int | None:
        """Calls the campaign's trunk may still get on all servers together (None: no server limit)."""
        return room(self.views(), trunk_key(trunk_template))

    # -- Pbx ---------------------------------------------------------------------------

    @property
    def reconnects(self) -> int:
        return sum(p.reconnects for p in self.servers.values())

    @property
    def on_action(self) -> OnAction | None:
        return self._on_action

    @on_action.setter
    def on_action(self, callback: OnAction | None) -> None:
        self._on_action = callback
        for pbx in self.servers.values():
            pbx.on_action = callback

    def on_login(self, callback: OnLogin) -> None:
        raise NotImplementedError("each server's login is watched by the daemon, server by server")

    async def connect_once(self) -> None:
        for pbx in self.servers.values():
            await pbx.connect_once()

    async def run(self, stopping: asyncio.Event) -> None:
        raise NotImplementedError("each server is run by its own supervised task")

    async def close(self) -> None:
        for pbx in self.servers.values():
            await pbx.close()

    def _up(self, name: str) -> Pbx:
        pbx = self.servers.get(name)
        if pbx is None:
            # An agent's server added to the config since the start: connected only by a restart.
            raise AmiNotConnected(f"AMI server {name} is not connected in this run (added since the start?)")
        if not pbx.connected.is_set():
            raise AmiNotConnected(f"not logged in to AMI server {name} right now")
        return pbx

    def _any_up(self) -> Pbx:
        for name, pbx in self.servers.items():
            if pbx.connected.is_set() and name not in self.shutting_down:
                return pbx
        return self._up(self.first)

    def _of_interface(self, interface: str) -> Pbx:
        return self._up(self._agent_servers.get(interface.lower(), self.first))

    async def action(self, fields: Mapping[str, Any], *, as_list: bool = False, timeout: float | None = None) -> Any:
        interface = fields.get("Interface")
        pbx = self._of_interface(str(interface)) if interface else self._any_up()
        return await pbx.action(fields, as_list=as_list, timeout=timeout)

    async def originate(
        self,
        *,
        attempt_id: str,
        channel: str,
        context: str,
        exten: str,
        timeout_ms: int,
        caller_id: str,
        variables: Mapping[str, str],
        beside: str | None = None,
    ) -> None:
        async def send(pbx: Pbx) -> None:
            await pbx.originate(
                attempt_id=attempt_id,
                channel=channel,
                context=context,
                exten=exten,
                timeout_ms=timeout_ms,
                caller_id=caller_id,
                variables=variables,
            )

        if beside is not None:
            # A supervisor's ChanSpy on an agent's call: only the agent's server has the channel.
            await send(self._of_interface(beside))
            return
        queue, trunk = self._call_of(attempt_id)
        if trunk is None:
            # Neither a campaign's call nor beside an agent: any server that is up.
            await send(self._any_up())
            return
        redirected = False
        while True:
            server = choose(self.views(queue), trunk, agent_needed=redirected)
            if server is None:
                # The words the runner reads: nobody was called, the lead is due again.
                raise AmiActionFailed(
                    "Originate", f"no AMI server can take a call on {trunk}: each is down, shutting down or full"
                )
            self.server_of[attempt_id] = server
            await self._record_server(attempt_id, server)
            try:
                await send(self._up(server))
                return
            except AmiActionFailed as exc:
                if "shutting down" not in exc.message.lower():
                    raise
                # Asterisk refused it before its Shutdown event: nobody was called, so the
                # call may go to another server where an agent is free for it (the pacing may
                # have counted one of this server's agents); this one gets none until it logs in again.
                self.going_away(server)
                redirected = True

    def _call_of(self, attempt_id: str) -> tuple[str | None, str | None]:
        for template, attempts in self._live():
            attempt = attempts.get(attempt_id)
            if attempt is not None:
                return attempt.queue, trunk_key(template)
        return None, None

    async def queue_add(self, queue: str, interface: str, member_name: str, penalty: int = 0) -> None:
        await self._of_interface(interface).queue_add(queue, interface, member_name, penalty)

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self._of_interface(interface).queue_remove(queue, interface)

    async def queue_members(self, queue: str) -> list[dict[str, str]]:
        members: list[dict[str, str]] = []
        for pbx in self.servers.values():
            if pbx.connected.is_set():
                members += await pbx.queue_members(queue)
        return members
