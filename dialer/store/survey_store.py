"""Survey answers, survey results and IVR opt-outs: reads and writes on the Store's engine.

An opt-out goes to the do-not-call list of `dialer.store.dnc`.

Kept beside `Store` rather than in it so the IVR's tables have one home; errors leave
as `StoreError`, like the Store's own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from dialer.ivr.interpreter import Answer
from dialer.store import dnc
from dialer.store.schema import (
    GLOBAL_DNC,
    call_attempts,
    customers,
    leads,
    survey_answers,
    survey_results,
)
from dialer.store.store import Store, _naive_utc

OPT_OUT_SOURCE = "ivr-opt-out"


class SurveyStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def start_survey(self, attempt_id: str, campaign_id: int, flow: str, at: datetime) -> None:
        async with self._store._write() as conn:
            exists = (
                await conn.execute(select(survey_results.c.attempt_id).where(survey_results.c.attempt_id == attempt_id))
            ).first()
            if exists is None:
                await conn.execute(
                    insert(survey_results).values(
                        attempt_id=attempt_id, campaign_id=campaign_id, flow=flow, status="partial",
                        started_at=_naive_utc(at),
                    )
                )

    async def add_answer(self, attempt_id: str, campaign_id: int, seq: int, answer: Answer, at: datetime) -> None:
        async with self._store._write() as conn:
            await conn.execute(
                insert(survey_answers).values(
                    attempt_id=attempt_id,
                    campaign_id=campaign_id,
                    seq=seq,
                    question=answer.question,
                    value=answer.value,
                    status=answer.status.value,
                    tries=answer.tries,
                    digits=answer.digits,
                    answered_at=_naive_utc(at),
                )
            )

    async def end_survey(self, attempt_id: str, status: str, at: datetime) -> None:
        """Mark the survey `status`; until then it reads as partial, so a crash leaves it marked so."""
        async with self._store._write() as conn:
            await conn.execute(
                update(survey_results)
                .where(survey_results.c.attempt_id == attempt_id)
                .values(status=status, ended_at=_naive_utc(at))
            )

    async def opt_out(self, phone: str, campaign_id: int, attempt_id: str, at: datetime) -> bool:
        """Put `phone` on the global do-not-call list ("do not call me again" binds the
        whole company, not one campaign); False if it was there already. Which call it
        came from stays in survey_results (status opted_out)."""
        added = await dnc.add_numbers(self._store, [phone], scope=GLOBAL_DNC, source=OPT_OUT_SOURCE, now=at)
        return added == 1

    async def results(self, campaign_id: int) -> list[dict[str, Any]]:
        """Each survey call with its number and the customer's tier."""
        async with self._store._read() as conn:
            rows = (
                await conn.execute(
                    select(survey_results, call_attempts.c.phone, customers.c.tier)
                    .join(call_attempts, call_attempts.c.id == survey_results.c.attempt_id)
                    .join(leads, leads.c.id == call_attempts.c.lead_id)
                    .join(customers, customers.c.id == leads.c.customer_id)
                    .where(survey_results.c.campaign_id == campaign_id)
                    .order_by(survey_results.c.started_at, survey_results.c.attempt_id)
                )
            ).mappings().all()
        return [dict(r) for r in rows]

    async def answers(self, campaign_id: int) -> list[dict[str, Any]]:
        """Every answer row with the call's number and the customer's tier, in the order given."""
        async with self._store._read() as conn:
            rows = (
                await conn.execute(
                    select(survey_answers, call_attempts.c.phone, customers.c.tier)
                    .join(call_attempts, call_attempts.c.id == survey_answers.c.attempt_id)
                    .join(leads, leads.c.id == call_attempts.c.lead_id)
                    .join(customers, customers.c.id == leads.c.customer_id)
                    .where(survey_answers.c.campaign_id == campaign_id)
                    .order_by(survey_answers.c.attempt_id, survey_answers.c.seq)
                )
            ).mappings().all()
        return [dict(r) for r in rows]
