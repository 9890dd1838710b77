"""The state machine of one call attempt, fed by plain records (`dialer.core.records`).

States: dialing -> ringing -> up (answered, waiting for an agent) -> bridged -> ended.
The outcome is decided once the customer's channel is gone (or, when no
channel was ever made, once the Originate's failure is known), from the
hangup cause first and the Originate reason second: a busy Originate reports
Reason 0, so the reason alone cannot tell busy from a bad number.

A call the PBX ended (a shutdown's SoftHangupRequest or its `Shutdown`
before the Hangup, or a Hangup with cause 0: no
final response from the far end, nobody said busy or no) is the fault's, not
the customer's: never answered, it is `interrupted`; answered, it is also
`cut_short`, and a conversation with an agent stays `answered`. The store
then retries its lead without using up one of its attempts
(`dialer.core.faults`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dialer.core import records as r
from dialer.core.outcomes import IVR_ENDS, Outcome

# Q.850 causes as Asterisk reports them on Hangup.
CAUSE_OUTCOMES: dict[int, Outcome] = {
    17: Outcome.busy,
    18: Outcome.no_answer,
    19: Outcome.no_answer,
    21: Outcome.rejected,
    34: Outcome.congestion,
    38: Outcome.congestion,
    41: Outcome.congestion,
    42: Outcome.congestion,
    44: Outcome.congestion,
    1: Outcome.failed,  # unallocated number (SIP 404)
    3: Outcome.failed,
    27: Outcome.failed,
    28: Outcome.failed,
}
# OriginateResponse reasons: 3 = no answer before Timeout, 5 = busy, 8 = congestion.
REASON_OUTCOMES: dict[int, Outcome] = {
    3: Outcome.no_answer,
    5: Outcome.busy,
    8: Outcome.congestion,
    1: Outcome.no_answer,
}

# What an IVR flow's end makes of a call no agent took (a transferred call is
# answered or abandoned like any queued one): the flow's status names the outcome.
IVR_OUTCOMES: dict[str, Outcome] = {o.value: o for o in IVR_ENDS}

# OriginateResponse reasons that are a far end's answer even when the Hangup had no cause.
_REASONS_WITHOUT_CAUSE = (3, 5, 8)
CAUSE_UNKNOWN = 0

# Asterisk refused the Originate (an Error reply, or a Failure before any channel
# existed): an attempt that reached nobody, retried by the campaign's `refused`
# rule and never taught to the pacing.
REFUSED = Outcome.refused.value

# How long to wait for the missing half (Hangup or OriginateResponse) before deciding anyway.
SETTLE_SECONDS = 2.0


def record_key(record: r.CallRecord) -> str:
    """The attempt id a record is about (ActionID on OriginateResponse, Uniqueid elsewhere)."""
    return record.attempt_id if isinstance(record, r.OriginateResult) else record.uniqueid


class State(str, Enum):
    dialing = "dialing"
    ringing = "ringing"
    up = "up"
    bridged = "bridged"
    ended = "ended"


@dataclass
class Attempt:
    id: str
    lead_id: int
    phone: str
    queue: str
    dialed_at: float
    ring_timeout: float
    state: State = State.dialing
    channel: str | None = None
    ringing_at: float | None = None
    answered_at: float | None = None
    bridged_at: float | None = None
    ended_at: float | None = None
    hangup_at: float | None = None
    originate_at: float | None = None
    originate_success: bool | None = None
    originate_reason: int | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    agent_interface: str | None = None
    abandoned: bool = False
    outcome: str | None = None
    send_failed_at: float | None = None
    amd_status: str | None = None
    amd_cause: str | None = None
    machine: bool = False
    ivr_started_at: float | None = None
    ivr_status: str | None = None
    pbx_gone_at: float | None = None
    """When Asterisk began hanging this call up for its shutdown (or announced it)."""
    cut_short: bool = False
    """The customer had answered when a PBX fault ended the call."""
    history: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.state is not State.ended

    def apply(self, record: r.CallRecord | r.PbxShutdown) -> dict[str, object]:
        """Feed one record; return the columns that changed (for the store)."""
        if self.state is State.ended:
            return {}
        if isinstance(record, r.PbxShutdown):
            # Every call up hears it; the first one counts.
            if self.pbx_gone_at is None:
                self.pbx_gone_at = record.at
            self.history.append(type(record).__name__)
            return {}
        if record_key(record) != self.id:
            return {}
        changes: dict[str, object] = {}
        match record:
            case r.OriginateResult(success=success, reason=reason, at=at):
                self.originate_at = at
                self.originate_success = success
                self.originate_reason = reason
                changes["originate_reason"] = reason
                if success and self.answered_at is None:
                    changes.update(self._answer(at))
            case r.ChannelCreated(channel=channel):
                self.channel = channel
                changes["channel"] = channel
                changes["uniqueid"] = self.id
            case r.ChannelState(state=5, at=at) if self.state is State.dialing:
                self.state = State.ringing
                self.ringing_at = at
                changes.update(state=self.state.value, ringing_at=at)
            case r.ChannelState(state=6, at=at):
                changes.update(self._answer(at))
            case r.QueueJoined(at=at):
                changes.update(self._answer(at))
            case r.AgentConnected(interface=interface, at=at):
                changes.update(self._answer(at))
                self.state = State.bridged
                self.bridged_at = at
                self.agent_interface = interface
                changes.update(state=self.state.value, bridged_at=at)
            case r.DialerAbandoned():
                self.abandoned = True
                changes["abandoned"] = True
            case r.AmdVerdict(status=status, cause=cause):
                self.amd_status, self.amd_cause = status, cause
                changes.update(amd_status=status, amd_cause=cause)
            case r.MachineDetected():
                self.machine = True
            case r.IvrStarted(at=at):
                changes.update(self._answer(at))
                self.ivr_started_at = at
            case r.IvrEnded(status=status):
                self.ivr_status = status
            case r.ShutdownHangup(at=at):
                if self.pbx_gone_at is None:
                    self.pbx_gone_at = at
            case r.ChannelHangup(cause=cause, cause_text=text, at=at):
                self.hangup_at = at
                self.hangup_cause = cause
                self.hangup_cause_text = text
                changes.update(hangup_cause=cause, hangup_cause_text=text)
            case _:
                pass
        self.history.append(type(record).__name__)
        return changes

    def _answer(self, at: float) -> dict[str, object]:
        if self.answered_at is not None:
            return {}
        self.answered_at = at
        if self.state in (State.dialing, State.ringing):
            self.state = State.up
        return {"state": self.state.value, "answered_at": at}

    def send_failed(self, at: float) -> None:
        """The Originate could not be sent (or its reply never came)."""
        self.send_failed_at = at

    def settled(self, now: float) -> bool:
        """Whether enough is known to decide the outcome."""
        if self.state is State.ended:
            return False
        if self.hangup_at is not None:
            if self.ivr_started_at is not None and self.ivr_status is None and now - self.hangup_at < SETTLE_SECONDS:
                return False  # the IVR session reports its end just after the hangup
            if self._ended_by_pbx():
                return True  # nothing the far end says can change that
            if self.answered_at is not None or self.originate_success is not None:
                return True
            if self.hangup_cause in CAUSE_OUTCOMES:
                return True
            return now - self.hangup_at >= SETTLE_SECONDS
        if self.originate_success is False and self.channel is None:
            return now - (self.originate_at or now) >= SETTLE_SECONDS
        if self.send_failed_at is not None and self.channel is None:
            # No event ever tied a channel to this attempt: give Asterisk the
            # whole ring time to show one before calling it failed.
            return now - self.send_failed_at >= self.ring_timeout + SETTLE_SECONDS
        return False

    def finish(self, now: float) -> str:
        self.state = State.ended
        self.ended_at = self.hangup_at or now
        # Stored and logged as the plain value.
        self.outcome = self._decide_outcome().value
        return self.outcome

    def _ended_by_pbx(self) -> bool:
        """Asterisk announced its shutdown before the call was seen to end."""
        if self.pbx_gone_at is None:
            return False
        return self.hangup_at is None or self.hangup_at >= self.pbx_gone_at

    def _decide_outcome(self) -> Outcome:
        if self.machine:
            return Outcome.machine  # counted apart: no live answer (see dialer.core.amd for false positives)
        by_pbx = self._ended_by_pbx()
        if self.bridged_at is not None:
            # Talking to an agent when the PBX went away: answered, but not finished.
            self.cut_short = by_pbx
            return Outcome.answered
        if self.ivr_status in IVR_OUTCOMES and not (by_pbx and self.ivr_status == Outcome.partial):
            # A survey the PBX cut off is no customer's `partial`: it is asked again.
            return IVR_OUTCOMES[self.ivr_status]
        if by_pbx and not self.abandoned:
            # Waiting for an agent (or still ringing): the dialplan never gave up on
            # the customer, the PBX did.
            self.cut_short = self.answered_at is not None
            return Outcome.interrupted
        if (
            self.originate_success is False
            and self.channel is None
            and self.hangup_at is None
            and self.originate_reason not in REASON_OUTCOMES
        ):
            # Asterisk could not even make the channel (no such endpoint, say) and
            # names no far-end answer: nobody was called, the trunk or the PBX
            # refused (dialer.core.trunks).
            return Outcome.refused
        if self.answered_at is not None:
            # Live customer, no agent: abandoned whether the dialplan's grace
            # time ran out or the customer gave up first.
            self.abandoned = True
            return Outcome.abandoned
        if self.hangup_cause in CAUSE_OUTCOMES:
            return CAUSE_OUTCOMES[self.hangup_cause]
        if self.hangup_cause == CAUSE_UNKNOWN and self.originate_reason not in _REASONS_WITHOUT_CAUSE:
            # The channel went with no final response from the far end: the
            # customer never said busy or no.
            return Outcome.interrupted
        if self.originate_reason in REASON_OUTCOMES:
            return REASON_OUTCOMES[self.originate_reason]
        return Outcome.failed

    def final_columns(self) -> dict[str, object]:
        return {
            "ended_at": self.ended_at,
            "abandoned": self.abandoned,
            "agent_id": self.agent_interface,
            "hangup_cause": self.hangup_cause,
            "hangup_cause_text": self.hangup_cause_text,
            "originate_reason": self.originate_reason,
            "cut_short": self.cut_short,
        }
