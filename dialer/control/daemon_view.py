"""The narrow interfaces a running daemon offers its neighbours.

- `DaemonView`: what the HTTP app and the metrics may read (campaign statuses,
  agents, AMI up or down, the config), never a handle to change it.
- `DaemonCommands`: what operators may ask (pause/resume/stop/start a campaign,
  log an agent in or out or pause it, reload, wake the webhooks).
- `CampaignHost` and `ConfigHost`: what the campaign watcher and the SIGHUP
  reload may ask (apply a campaign file, a file gone, apply a new config).

`dialer.daemon.server.Daemon` implements them all; tests may implement only
the one they need. Nothing here imports the daemon, the HTTP app or the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dialer.config.models import Campaign, DialerConfig
from dialer.control.campaign_states import RunState
from dialer.core.abandon import AbandonState, AbandonWindow
from dialer.core.agents import AgentState
from dialer.core.attempt import Attempt
from dialer.core.campaign import LiveCounts
from dialer.core.trunks import TrunkView
from dialer.store.store import Store


@dataclass
class CampaignStatus:
    name: str
    total: int
    done: int
    placed: int
    ringing: int
    waiting: int
    talking: int
    outcomes: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    state: str = "running"


@dataclass
class Status:
    campaigns: list[CampaignStatus]
    agents_logged_in: int
    agents_busy: int
    ami_connected: bool
    elapsed: float
    failing: list[str] = field(default_factory=list)
    """Supervised tasks that keep dying (dialer.daemon.task_supervisor): the daemon needs a restart."""


@dataclass(frozen=True)
class AmiServerStatus:
    """One AMI server as the daemon sees it (dialer.daemon.server_watch)."""

    name: str
    state: str
    """"up" (logged in and fully booted: it may get calls), "shutting_down" (logged in, but Asterisk
    announced its shutdown: no new call) or "down" (not logged in: unreachable, refusing or booting)."""
    since: float
    """Epoch seconds: when the daemon first saw it in this state (within a tick)."""
    calls: int
    """Calls in progress on it that this daemon follows."""
    max_lines: int | None
    """Its line limit (None: no limit of its own)."""
    last_error: str | None

    @property
    def can_dial(self) -> bool:
        return self.state == "up"


@dataclass
class ConfigReload:
    """What a SIGHUP reload did: applied live, needs a restart, or refused (the file's issues)."""

    applied: list[str] = field(default_factory=list)
    need_restart: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)


class RunnerView(Protocol):
    """One running campaign, as far as a reader may see it."""

    @property
    def campaign(self) -> Campaign: ...

    @property
    def campaign_id(self) -> int: ...

    @property
    def placed(self) -> int: ...

    @property
    def attempts(self) -> Mapping[str, Attempt]: ...

    @property
    def abandon_window(self) -> AbandonWindow: ...

    @property
    def busy(self) -> bool: ...

    def live_counts(self) -> LiveCounts: ...

    def abandon_state(self, now: float) -> AbandonState:
        """The abandon window at `now`, against the campaign's limit."""


class WebhookFigures(Protocol):
    """The webhook dispatcher's counters since the start, by (campaign, webhook)."""

    @property
    def delivered(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def failed_tries(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def dead(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def in_flight(self) -> int: ...


class InboundView(Protocol):
    """Customers calling back: the calls in progress and their screen pops."""

    @property
    def calls(self) -> Mapping[str, Any]: ...

    async def screen_pop(self, call: Any) -> Any: ...


class MetricsText(Protocol):
    async def render(self) -> bytes:
        """The Prometheus exposition text."""


class DaemonView(Protocol):
    """What the HTTP app and the metrics may read of a running daemon."""

    @property
    def config(self) -> DialerConfig: ...

    @property
    def store(self) -> Store | None: ...

    @property
    def runners(self) -> Mapping[str, RunnerView]: ...

    @property
    def draining(self) -> bool: ...

    @property
    def ami_connected(self) -> bool: ...

    @property
    def ami_reconnects(self) -> int: ...

    @property
    def ami_servers(self) -> list[AmiServerStatus]:
        """Each AMI server of the config, in its order."""

    @property
    def webhooks(self) -> WebhookFigures | None: ...

    @property
    def inbound(self) -> InboundView | None: ...

    @property
    def metrics(self) -> MetricsText: ...

    @property
    def desk(self) -> Any:
        """The agent desk's live state (dialer.daemon.desk), None without desk users."""

    def clock(self) -> float: ...

    def agent(self, interface: str) -> AgentState | None:
        """A copy of the agent's state on the board: reading it changes nothing."""

    def agents(self) -> list[AgentState]: ...

    def agents_in_queue(self, queue: str) -> list[AgentState]: ...

    async def status(self) -> Status: ...

    def campaign_state(self, name: str) -> RunState: ...

    def campaign_file(self, name: str) -> Path | None: ...

    def known_campaigns(self) -> list[str]: ...

    def campaign_exists(self, name: str) -> bool: ...

    def config_issues(self) -> list[str]: ...

    def trunk_views(self) -> list[TrunkView]: ...


class DaemonCommands(Protocol):
    """What an operator may ask of a running daemon; each refusal is a ControlError or AmiError."""

    async def start_campaign(self, name: str) -> RunState: ...

    async def pause_campaign(self, name: str) -> RunState: ...

    async def resume_campaign(self, name: str) -> RunState: ...

    async def stop_campaign(self, name: str, now: bool = False) -> RunState:
        """At once if the abandon window is at or under its limit or `now`; else it settles first."""

    async def agent_login(self, agent_id: str, queues: Sequence[str]) -> None: ...

    async def agent_logout(self, agent_id: str, queues: Sequence[str]) -> None: ...

    async def agent_pause(self, agent_id: str, paused: bool, queue: str | None, reason: str | None) -> None: ...

    def reload(self) -> None:
        """Re-read the config and the campaign directory, as SIGHUP does."""

    def webhooks_due(self) -> None:
        """A disposition queued a webhook: send it now rather than at the next poll."""


class DaemonControl(DaemonView, DaemonCommands, Protocol):
    """The HTTP app's whole handle on the daemon: read the view, send commands."""


class CampaignHost(Protocol):
    """What the campaign watcher may ask: apply what the directory says."""

    @property
    def draining(self) -> bool: ...

    def runs(self, name: str) -> bool:
        """Whether the campaign has a runner (started once, paused or not)."""

    def prepared_media(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """The IVR flows and rendered messages prepared at the start (by name)."""

    async def apply_campaign_file(self, campaign: Campaign, file: Path) -> None:
        """A file holds this (new or changed) campaign: start it or swap it in."""

    def campaign_file_removed(self, name: str) -> None: ...

    def refresh_campaign_states(self) -> None:
        """Every runner's paused flag made to match its campaign's state."""


class ConfigHost(Protocol):
    """What a SIGHUP reload may ask: apply a new, valid config."""

    async def apply_config(self, new: DialerConfig) -> ConfigReload: ...
