"""Dispositions: what the agent says a call came to, and what that does to the lead.

One entry point, `apply_disposition`, for every path an agent has: the AMI
UserEvent `DialerDisposition` (from the dialplan or the agent's phone) and
the control API's `POST /dispositions`. What a code does to the lead is the
pure core's (`dialer.core.dispositions`, from the campaign's `dispositions`);
this module reads the attempt and writes the answer.

It may come while the call is still up: the lead's fate is written at once
and the attempt's own end no longer changes it.

The agent's notes are stored with it, and each of the campaign's `webhooks` that wants
the code gets an outbox row in the same transaction (dialer.store.webhook_outbox), sent
later by dialer.webhook_dispatcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import select, update

from dialer.config.models import Campaign
from dialer.core.dispositions import DispositionAction, DispositionRefused, decide
from dialer.core.lead_lifecycle import IllegalTransition, held_by_another
from dialer.core.records import DispositionRequested
from dialer.store import callbacks as callback_store
from dialer.store import lead_transitions, webhook_outbox
from dialer.store.schema import GLOBAL_DNC, call_attempts, campaigns, dnc_numbers
from dialer.store.store import Store, StoreError, _naive_utc

log = structlog.get_logger("dialer.dispositions")

class DispositionError(ValueError):
    """The disposition cannot be applied; the message says why (for the agent or the API client)."""


class UnknownAttempt(DispositionError):
    """No such attempt (or the lead has none): a 404 for the control API."""


@dataclass(frozen=True)
class DispositionResult:
    attempt_id: str
    lead_id: int
    campaign: str
    code: str
    action: DispositionAction
    callback_id: int | None = None
    event_id: str | None = None
    """The webhook event written with it (dialer.store.webhook_outbox), if a webhook wants the code."""


async def apply_disposition(
    store: Store,
    campaigns_by_name: Mapping[str, Campaign],
    *,
    code: str,
    now: datetime,
    attempt_id: str | None = None,
    lead_id: int | None = None,
    callback_at: datetime | None = None,
    agent: str | None = None,
    notes: str | None = None,
) -> DispositionResult:
    """Record `code` on an attempt (or a lead's latest attempt) and apply its action, in one transaction.

    Raises DispositionError for an unknown attempt or code, a callback
    without a future time, or a lead already being called again.
    """
    if (attempt_id is None) == (lead_id is None):
        raise DispositionError("give exactly one of attempt_id and lead_id")
    if callback_at is not None and callback_at.tzinfo is None:
        raise DispositionError("callback_at needs a time zone (e.g. 2026-11-24T15:00:00+01:00)")
    notes = check_notes(notes)
    try:
        async with store._write() as conn:
            query = select(
                call_attempts.c.id,
                call_attempts.c.lead_id,
                call_attempts.c.phone,
                call_attempts.c.outcome,
                call_attempts.c.agent_id,
                campaigns.c.id.label("campaign_id"),
                campaigns.c.name,
            ).join(campaigns, campaigns.c.id == call_attempts.c.campaign_id)
            if attempt_id is not None:
                query = query.where(call_attempts.c.id == attempt_id)
            else:
                query = (
                    query.where(call_attempts.c.lead_id == lead_id)
                    .order_by(call_attempts.c.dialed_at.desc(), call_attempts.c.attempt_no.desc())
                    .limit(1)
                )
            attempt = (await conn.execute(query)).first()
            if attempt is None:
                raise UnknownAttempt(
                    f"no attempt {attempt_id!r}" if attempt_id is not None else f"lead {lead_id} has no attempt"
                )
            campaign = campaigns_by_name.get(attempt.name)
            if campaign is None:
                raise DispositionError(f"campaign {attempt.name!r} is not loaded")
            no_answer = campaign.retries.get("no_answer")
            try:
                decision = decide(
                    code,
                    campaign.dispositions,
                    campaign=campaign.name,
                    attempt_id=attempt.id,
                    attempt_outcome=attempt.outcome,
                    retry_delay=no_answer.rule().delay if no_answer else None,
                    callback_at=callback_at,
                    now=now,
                )
            except DispositionRefused as exc:
                raise DispositionError(str(exc)) from None
            action = decision.action
            lead = await lead_transitions.read(conn, attempt.lead_id)
            assert lead is not None  # an attempt's lead is never deleted
            if held_by_another(lead, attempt.id):
                raise DispositionError(
                    f"lead {attempt.lead_id} is being called again (attempt {lead.lease_attempt_id})"
                )

            await conn.execute(
                update(call_attempts)
                .where(call_attempts.c.id == attempt.id)
                .values(
                    disposition=code, disposition_at=_naive_utc(now), disposition_agent=agent, disposition_notes=notes
                )
            )
            callback_id = None
            if decision.callback_at is not None:
                try:
                    callback_id = await callback_store.schedule(
                        conn,
                        lead_id=attempt.lead_id,
                        campaign_id=attempt.campaign_id,
                        phone=attempt.phone,
                        due_at=decision.callback_at,
                        agent_id=agent or attempt.agent_id,
                        requested_by=attempt.id,
                        now=now,
                    )
                except IllegalTransition as exc:
                    raise DispositionError(f"lead {attempt.lead_id}: {exc}; try again") from None
            if decision.add_to_dnc:
                listed = (
                    await conn.execute(
                        select(dnc_numbers.c.id).where(
                            dnc_numbers.c.phone == attempt.phone, dnc_numbers.c.scope == GLOBAL_DNC
                        )
                    )
                ).first()
                if listed is None:
                    await conn.execute(
                        dnc_numbers.insert().values(
                            phone=attempt.phone,
                            scope=GLOBAL_DNC,
                            source=f"disposition {attempt.id}",
                            added_at=_naive_utc(now),
                        )
                    )
            try:
                if decision.lead_event is not None:
                    await lead_transitions.apply(conn, attempt.lead_id, decision.lead_event, now, lead=lead)
            except IllegalTransition as exc:
                raise DispositionError(f"lead {attempt.lead_id}: {exc}; try again") from None
            # In this same transaction: a disposition is never committed without its webhook
            # deliveries, nor they without it.
            event_id = await webhook_outbox.enqueue(
                conn,
                campaign.webhooks,
                campaign_id=attempt.campaign_id,
                attempt_id=attempt.id,
                code=code,
                action=action.value,
                agent=agent,
                notes=notes,
                callback_at=callback_at,
                now=now,
            )
    except StoreError as exc:
        raise DispositionError(f"cannot record the disposition: {exc}") from exc
    return DispositionResult(attempt.id, attempt.lead_id, campaign.name, code, action, callback_id, event_id)


MAX_NOTES = 2000
"""Characters of an agent's notes; they travel in every webhook body."""


def check_notes(notes: str | None) -> str | None:
    """Notes as stored and sent: trimmed, None when empty; too long or holding control
    characters other than line breaks and tabs is an error."""
    if notes is None or not notes.strip():
        return None
    notes = notes.strip()
    if len(notes) > MAX_NOTES:
        raise DispositionError(f"notes: {len(notes)} characters, at most {MAX_NOTES}")
    if any(not c.isprintable() and c not in "\r\n\t" for c in notes):
        raise DispositionError("notes: control characters other than line breaks and tabs")
    return notes


def parse_callback_at(text: str) -> datetime:
    """A callback time as agents' phones and the API send it: ISO 8601 with an offset, or epoch seconds."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DispositionError(
            f"CallbackAt {text!r} is not a time (ISO 8601 with an offset, or epoch seconds)"
        ) from None
    if moment.tzinfo is None:
        raise DispositionError(f"CallbackAt {text!r} has no UTC offset")
    return moment


async def on_disposition_event(
    store: Store, campaigns_by_name: Mapping[str, Campaign], record: DispositionRequested
) -> DispositionResult | None:
    """The AMI path: apply a `DialerDisposition` UserEvent; a bad one is logged, not raised."""
    try:
        callback_at = parse_callback_at(record.callback_at) if record.callback_at else None
        result = await apply_disposition(
            store,
            campaigns_by_name,
            attempt_id=record.attempt_id,
            code=record.code,
            now=datetime.fromtimestamp(record.at, UTC),
            callback_at=callback_at,
            agent=record.agent,
            notes=record.notes,
        )
    except DispositionError as exc:
        log.warning("disposition.rejected", attempt=record.attempt_id, code=record.code, error=str(exc))
        return None
    log.info(
        "disposition.applied",
        attempt=result.attempt_id,
        code=result.code,
        action=result.action.value,
        callback=result.callback_id,
        webhook_event=result.event_id,
    )
    return result
