"""Plain event records: what the core learns from Asterisk, with no AMI in sight.

`dialer.ami.events.to_record` builds these from raw AMI events. Every record
carries `at`, the time (epoch seconds) the shell received it. Customer-call
records are keyed by `uniqueid`, which is the attempt id because every
Originate sets `ChannelId` to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OriginateResult:
    attempt_id: str
    at: float
    success: bool
    reason: int | None


@dataclass(frozen=True)
class ChannelCreated:
    uniqueid: str
    at: float
    channel: str


@dataclass(frozen=True)
class ChannelState:
    uniqueid: str
    at: float
    state: int  # Asterisk channel state: 5 ringing, 6 up


@dataclass(frozen=True)
class ChannelHangup:
    uniqueid: str
    at: float
    cause: int | None
    cause_text: str | None


@dataclass(frozen=True)
class QueueJoined:
    uniqueid: str
    at: float
    queue: str


@dataclass(frozen=True)
class AgentRinging:
    uniqueid: str  # the customer's channel
    at: float
    queue: str
    interface: str


@dataclass(frozen=True)
class AgentConnected:
    uniqueid: str
    at: float
    queue: str
    interface: str


@dataclass(frozen=True)
class AgentCompleted:
    uniqueid: str
    at: float
    queue: str
    interface: str
    talk_time: float | None


@dataclass(frozen=True)
class DialerAbandoned:
    """The dialplan's UserEvent: no agent took the call within the grace time."""

    uniqueid: str
    at: float


@dataclass(frozen=True)
class AmdVerdict:
    """The dialplan's UserEvent DialerAmd: what AMD() made of the answering party."""

    uniqueid: str
    at: float
    status: str  # HUMAN, MACHINE, NOTSURE, HANGUP
    cause: str | None


@dataclass(frozen=True)
class MachineDetected:
    """The dialplan's UserEvent DialerMachine: an answering machine; the call ends there."""

    uniqueid: str
    at: float
    left_message: bool


@dataclass(frozen=True)
class IvrStarted:
    """The FastAGI server took the call into an IVR flow."""

    uniqueid: str
    at: float
    flow: str


@dataclass(frozen=True)
class IvrEnded:
    """The IVR flow is over: completed, transferred, opted_out or partial."""

    uniqueid: str
    at: float
    status: str


@dataclass(frozen=True)
class DispositionRequested:
    """The UserEvent `DialerDisposition` (dialplan or agent phone): what the call came to."""

    attempt_id: str
    at: float
    code: str
    callback_at: str | None
    """As sent: ISO 8601 with an offset, or epoch seconds; parsed by `dialer.dispositions`."""
    agent: str | None
    notes: str | None = None
    """What the agent wrote (the UserEvent's `Notes`); sent with the disposition's webhooks."""


@dataclass(frozen=True)
class MemberStatus:
    """A queue member's state (QueueMemberStatus/Added, or a QueueStatus list entry)."""

    at: float
    queue: str
    interface: str
    status: int  # device state: 1 not in use, 2 in use, 6 ringing, 5 unavailable...
    paused: bool
    in_call: bool


@dataclass(frozen=True)
class MemberRemoved:
    at: float
    queue: str
    interface: str


@dataclass(frozen=True)
class ShutdownHangup:
    """Asterisk is hanging this channel up because it is shutting down (AMI
    `SoftHangupRequest` with Cause 4, AST_SOFTHANGUP_SHUTDOWN). `core restart now`
    sends these, then the Hangups (cause 0 ringing, 16 answered), and only about
    a second later its `Shutdown`."""

    uniqueid: str
    at: float


@dataclass(frozen=True)
class PbxShutdown:
    """AMI `Shutdown`: Asterisk is stopping or restarting and hangs up every channel.

    It concerns every call up, not one: calls that end after it ended because
    the PBX went away, whatever cause their Hangup shows.
    """

    at: float
    restart: bool


CallRecord = (
    OriginateResult
    | ChannelCreated
    | ChannelState
    | ChannelHangup
    | QueueJoined
    | AgentRinging
    | AgentConnected
    | AgentCompleted
    | DialerAbandoned
    | AmdVerdict
    | MachineDetected
    | IvrStarted
    | IvrEnded
    | ShutdownHangup
)
AgentRecord = MemberStatus | MemberRemoved | AgentRinging | AgentConnected | AgentCompleted
