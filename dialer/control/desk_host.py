"""What the agent desk (dialer.daemon.desk) may use of the running daemon: `DeskHost`.

The desk reads the agents' config, the clock, the live board, the campaigns'
calls and the inbound calls, reads leads from the store, and asks the PBX for
queue pauses and the supervisor's monitor call. Nothing more: it cannot start a
campaign, reload the config or reach the HTTP app. `dialer.daemon.server.Daemon`
implements it; tests may hand the desk anything of this shape. Nothing here
imports the daemon, so the desk and the daemon need not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from dialer.config.models import AgentConfig, Campaign
from dialer.core.agents import AgentState
from dialer.core.attempt import Attempt
from dialer.core.routing import Routing
from dialer.pbx.protocol import Pbx
from dialer.store.inbound_calls import KnownCaller
from dialer.store.store import Store


class AgentsConfig(Protocol):
    @property
    def agents(self) -> Sequence[AgentConfig]: ...


class LiveBoard(Protocol):
    def agent(self, interface: str) -> AgentState | None:
        """The agent's live state (not a copy): the desk marks its pause and wrap-up on it."""


class WrapupLearner(Protocol):
    def observe_wrapup(self, seconds: float) -> None: ...


class TieredCall(Protocol):
    """How a placed call was routed, for its screen pop."""

    @property
    def tier(self) -> str: ...

    @property
    def routing(self) -> Routing: ...


class TieredCalls(Protocol):
    @property
    def calls(self) -> Mapping[str, TieredCall]:
        """Attempt id -> how it was routed."""


class DeskRunner(Protocol):
    """One running campaign, as far as the desk reads it."""

    @property
    def campaign(self) -> Campaign: ...

    @property
    def attempts(self) -> Mapping[str, Attempt]: ...

    @property
    def wrapup_from_desk(self) -> bool:
        """Whether its pacing learns wrap-up times from the desk."""

    @property
    def stats(self) -> WrapupLearner: ...

    @property
    def tiers(self) -> TieredCalls: ...


class DeskInboundCall(Protocol):
    """A customer calling in, as far as the desk shows it."""

    @property
    def id(self) -> str: ...

    @property
    def caller(self) -> str | None: ...

    @property
    def campaign(self) -> Campaign: ...

    @property
    def customer(self) -> KnownCaller | None: ...


class DeskInbound(Protocol):
    @property
    def calls(self) -> Mapping[str, DeskInboundCall]:
        """The caller channel's Uniqueid -> the call."""

    async def screen_pop(self, call: Any) -> dict[str, Any] | None:
        """The screen pop of `call`, one of `calls` (the service takes its own call type)."""


class DeskHost(Protocol):
    """What the desk may use of a running daemon."""

    @property
    def config(self) -> AgentsConfig: ...

    @property
    def runners(self) -> Mapping[str, DeskRunner]: ...

    @property
    def board(self) -> LiveBoard: ...

    @property
    def inbound(self) -> DeskInbound | None: ...

    @property
    def store(self) -> Store | None: ...

    @property
    def ami(self) -> Pbx | None:
        """Queue pauses go to the agent's server by their Interface; the monitor call is sent
        `beside` the agent's interface (with several servers, to the one its phone is on)."""

    def clock(self) -> float: ...
