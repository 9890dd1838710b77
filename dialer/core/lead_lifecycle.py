"""A lead's life cycle: one transition function from a lead's state and an event to its next state (pure).

A lead is `pending` (may be dialed from `next_attempt_at` on, or at once when
that is empty), `leased` (one attempt, `lease_attempt_id`, holds it: its row
exists and its Originate may have left) or `done` (`final_outcome` and
`final_reason` say why). Every change of a lead's status in the store is one
of the events below, applied by `dialer.store.lead_transitions`; each names
the columns it changes and nothing else.

An event that does not apply to the lead as it is raises `IllegalTransition`
instead of writing a state nobody meant: finishing a lead another attempt
holds, leasing a lead that is leased or done, reopening a lead still being
called. A done lead is dialed again only after an event that reopens it (a
disposition's retry or callback, a revisit); leasing never does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import Enum

from dialer.core.retry import PRIORITY_CALLBACK, Close, Retry


class LeadState(str, Enum):
    pending = "pending"
    leased = "leased"
    done = "done"


@dataclass(frozen=True)
class Lead:
    """The columns of a lead that its life cycle owns (the store's `leads` row)."""

    state: LeadState
    attempts: int = 0
    lease_attempt_id: str | None = None
    next_attempt_at: datetime | None = None
    priority: int = 0
    final_outcome: str | None = None
    final_reason: str | None = None
    callback_id: int | None = None


LEAD_COLUMNS = tuple(f.name for f in fields(Lead))

NEW_LEAD = Lead(LeadState.pending)
"""A lead as an import creates it; an import never changes a lead already in the campaign."""


class IllegalTransition(ValueError):
    """The event does not apply to the lead in its current state; nothing is changed."""


# -- events ----------------------------------------------------------------


@dataclass(frozen=True)
class Leased:
    """An attempt is written for the lead before its Originate leaves; it counts against the retries."""

    attempt_id: str


@dataclass(frozen=True)
class AttemptEnded:
    """The attempt holding the lease ended with `outcome`; `step` is the retry policy's answer.

    A `fault` (the PBX or the link to it ended the call, `dialer.core.faults`)
    gives back the attempt the lease counted.
    """

    attempt_id: str
    outcome: str
    step: Retry | Close
    fault: bool = False


@dataclass(frozen=True)
class AttemptEndedAsTold:
    """The attempt holding the lease ended and its caller names the lead's next state, not the rules.

    `done`: closed with `outcome` and no reason; otherwise pending, due at
    `next_attempt_at` (at once when None). `Store.finish_attempt`'s contract.
    """

    attempt_id: str
    outcome: str
    done: bool
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class NotSent:
    """Asterisk refused the Originate while shutting down: nobody was called; due again at once."""

    attempt_id: str


@dataclass(frozen=True)
class Released:
    """The lease is given back before any Originate left (a check the lead failed at dial time).

    With `final_reason` the lead is done (do-not-call, a denied number);
    otherwise it waits until `until` (outside its window; None: due at once).
    """

    attempt_id: str
    until: datetime | None = None
    final_reason: str | None = None


@dataclass(frozen=True)
class Disposed:
    """An agent's disposition on `attempt_id` decided the lead: call again at `retry_at`, or done.

    It may come while the call is still up (the lead then leaves the lease at
    once, and the attempt's own end no longer changes it) or after the attempt
    closed the lead (it reopens or re-closes it).
    """

    attempt_id: str
    retry_at: datetime | None = None
    final_outcome: str | None = None
    final_reason: str | None = None

    def __post_init__(self) -> None:
        if (self.retry_at is None) == (self.final_reason is None):
            raise ValueError("a disposition either retries (retry_at) or closes (final_reason)")


@dataclass(frozen=True)
class CallbackBooked:
    """A callback is scheduled: the lead is due at `due_at`, first in line, its retries counted afresh.

    `attempt_id` is the attempt it was booked on, which may still hold the lease.
    """

    callback_id: int
    due_at: datetime
    attempt_id: str | None = None


@dataclass(frozen=True)
class CalledBack:
    """The customer called in and reached an agent: the lead is done as contacted."""

    final_reason: str


@dataclass(frozen=True)
class Revisited:
    """A customer event makes the lead due again at `due_at` as a new conversation."""

    due_at: datetime


@dataclass(frozen=True)
class RevisitAfterAnswer:
    """A revisit programme calls a customer who was reached (closed as `answered`) again at `due_at`.

    A lead a disposition closed for another reason (do-not-call, a sale) stays closed.
    """

    due_at: datetime


LeadEvent = (
    Leased
    | AttemptEnded
    | AttemptEndedAsTold
    | NotSent | Released | Disposed | CallbackBooked | CalledBack | Revisited | RevisitAfterAnswer
)

REOPENING = (Disposed, CallbackBooked, Revisited, RevisitAfterAnswer)
"""The events that may make a done lead pending again."""


# -- the transition --------------------------------------------------------


@dataclass(frozen=True)
class LeadChange:
    before: Lead
    after: Lead
    closes_callback: int | None = None
    """The scheduled callback this change fulfils or ends (the lead's `callback_id` before it)."""
    by_attempt: str | None = None
    """The attempt that fulfilled that callback, if one did."""

    def columns(self) -> dict[str, object]:
        """The columns the change writes, by name."""
        return {
            name: getattr(self.after, name)
            for name in LEAD_COLUMNS
            if getattr(self.after, name) != getattr(self.before, name)
        }


def held_by_another(lead: Lead, attempt_id: str | None) -> bool:
    """Whether an attempt other than `attempt_id` (None: no outbound attempt) holds the lead.

    A disposition or a callback on `attempt_id` may then not take the lead: the
    other call's own end decides it.
    """
    return lead.lease_attempt_id is not None and lead.lease_attempt_id != attempt_id


def _held_by(lead: Lead, attempt_id: str, event: object) -> None:
    if lead.state is not LeadState.leased or lead.lease_attempt_id != attempt_id:
        held = f"leased by {lead.lease_attempt_id}" if lead.state is LeadState.leased else lead.state.value
        raise IllegalTransition(f"{type(event).__name__}: lead is {held}, not leased by attempt {attempt_id}")


def _done(
    lead: Lead, *, attempts: int, final_outcome: str | None, final_reason: str | None, by_attempt: str | None
) -> LeadChange:
    after = Lead(
        LeadState.done,
        attempts=attempts,
        priority=lead.priority,
        final_outcome=final_outcome,
        final_reason=final_reason,
    )
    return LeadChange(lead, after, closes_callback=lead.callback_id, by_attempt=by_attempt)


def transition(lead: Lead, event: LeadEvent, now: datetime) -> LeadChange:
    """The lead after `event` at `now`; raises IllegalTransition when the event does not apply.

    `now` and the lead's times are both aware or both naive UTC (the store's).
    """
    match event:
        case Leased(attempt_id):
            if lead.state is not LeadState.pending:
                raise IllegalTransition(f"Leased: lead is {lead.state.value}, not pending")
            if lead.next_attempt_at is not None and lead.next_attempt_at > now:
                raise IllegalTransition(f"Leased: lead is not due before {lead.next_attempt_at.isoformat()}")
            after = replace(lead, state=LeadState.leased, lease_attempt_id=attempt_id, attempts=lead.attempts + 1)
            return LeadChange(lead, after)
        case AttemptEnded(attempt_id, outcome, step, fault):
            _held_by(lead, attempt_id, event)
            attempts = lead.attempts - 1 if fault else lead.attempts
            if isinstance(step, Close):
                return _done(
                    lead, attempts=attempts, final_outcome=outcome, final_reason=step.reason, by_attempt=attempt_id
                )
            priority = PRIORITY_CALLBACK if lead.callback_id else step.priority
            after = replace(
                lead,
                state=LeadState.pending,
                lease_attempt_id=None,
                attempts=attempts,
                next_attempt_at=step.at,
                priority=priority,
                final_outcome=None,
                final_reason=None,
            )
            return LeadChange(lead, after)
        case AttemptEndedAsTold(attempt_id, outcome, done, next_attempt_at):
            _held_by(lead, attempt_id, event)
            if done:
                return _done(lead, attempts=lead.attempts, final_outcome=outcome, final_reason=None, by_attempt=attempt_id)
            after = replace(
                lead,
                state=LeadState.pending,
                lease_attempt_id=None,
                next_attempt_at=next_attempt_at,
                final_outcome=None,
                final_reason=None,
            )
            return LeadChange(lead, after)
        case NotSent(attempt_id):
            _held_by(lead, attempt_id, event)
            # next_attempt_at stays: it was due when leased, so it is due now.
            after = replace(lead, state=LeadState.pending, lease_attempt_id=None, attempts=lead.attempts - 1)
            return LeadChange(lead, after)
        case Released(attempt_id, until, final_reason):
            _held_by(lead, attempt_id, event)
            if final_reason is not None:
                # Its attempt row goes with the lease: the callback names no attempt.
                return _done(
                    lead, attempts=lead.attempts - 1, final_outcome=final_reason, final_reason=final_reason, by_attempt=None
                )
            after = replace(
                lead, state=LeadState.pending, lease_attempt_id=None, attempts=lead.attempts - 1, next_attempt_at=until
            )
            return LeadChange(lead, after)
        case Disposed(attempt_id, retry_at, final_outcome, final_reason):
            if held_by_another(lead, attempt_id):
                raise IllegalTransition(f"lead is being called again (attempt {lead.lease_attempt_id})")
            if retry_at is None:
                return _done(
                    lead,
                    attempts=lead.attempts,
                    final_outcome=final_outcome,
                    final_reason=final_reason,
                    by_attempt=attempt_id,
                )
            after = replace(
                lead,
                state=LeadState.pending,
                lease_attempt_id=None,
                next_attempt_at=retry_at,
                callback_id=None,
                final_outcome=None,
                final_reason=None,
            )
            return LeadChange(lead, after, closes_callback=lead.callback_id, by_attempt=attempt_id)
        case CallbackBooked(callback_id, due_at, attempt_id):
            if held_by_another(lead, attempt_id):
                raise IllegalTransition(f"lead is being called again (attempt {lead.lease_attempt_id})")
            after = Lead(
                LeadState.pending, attempts=0, next_attempt_at=due_at, priority=PRIORITY_CALLBACK, callback_id=callback_id
            )
            # The callback the lead was due for is fulfilled by the attempt this one was booked
            # on; booked on no attempt (the caller's key), it only replaces it.
            previous = lead.callback_id if attempt_id is not None and lead.callback_id != callback_id else None
            return LeadChange(lead, after, closes_callback=previous, by_attempt=attempt_id)
        case CalledBack(final_reason):
            if lead.state is LeadState.done:
                raise IllegalTransition("CalledBack: lead is already done (it keeps its reason)")
            return _done(
                lead, attempts=lead.attempts, final_outcome="answered", final_reason=final_reason, by_attempt=None
            )
        case Revisited(due_at):
            if lead.state is LeadState.leased:
                raise IllegalTransition(f"Revisited: lead is being called (attempt {lead.lease_attempt_id})")
            after = Lead(LeadState.pending, attempts=0, next_attempt_at=due_at, priority=lead.priority)
            return LeadChange(lead, after)
        case RevisitAfterAnswer(due_at):
            reached = (
                lead.state is LeadState.done
                and lead.final_outcome == "answered"
                and lead.final_reason in (None, "answered")
            )
            if not reached:
                raise IllegalTransition("RevisitAfterAnswer: only a lead closed as answered is revisited")
            after = replace(
                lead, state=LeadState.pending, attempts=0, next_attempt_at=due_at, final_outcome=None, final_reason=None
            )
            return LeadChange(lead, after)
    raise TypeError(f"not a lead event: {event!r}")
