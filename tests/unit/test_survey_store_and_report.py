"""Survey answers in the database (SQLite, migrated) and the report built from them."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from dialer.ivr.interpreter import Answer, AnswerStatus
from dialer.leads.csv_import import LeadRow
from dialer.store import dnc
from dialer.store.store import Store
from dialer.store.survey_store import OPT_OUT_SOURCE, SurveyStore
from dialer.survey_report import (
    build_amd_section,
    build_survey_section,
    render_survey_text,
    write_answers_csv,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def calls(store: Store, phones_tiers: list[tuple[str, str | None]]) -> tuple[int, dict[str, str]]:
    campaign = await store.sync_campaign("survey", "survey")
    rows = [LeadRow(line=i + 2, phone=p, tier=t) for i, (p, t) in enumerate(phones_tiers)]
    await store.import_leads(campaign, rows)
    leases = await store.lease_due_leads(campaign, len(rows), NOW)
    return campaign, {lease.phone: lease.attempt_id for lease in leases}


def answer(question: str, value: str | None, status: AnswerStatus = AnswerStatus.answered, tries: int = 1) -> Answer:
    return Answer(question, value, status, tries, value or "", 0.0)


async def test_answers_results_and_the_report(store: Store) -> None:
    campaign, attempt = await calls(store, [("5551", "gold"), ("5552", "gold"), ("5553", None), ("5554", None)])
    surveys = SurveyStore(store)
    script = {
        "5551": ("completed", [answer("rating", "5"), answer("recommend", "yes")]),
        "5552": ("completed", [answer("rating", "2", tries=2), answer("recommend", None, AnswerStatus.timeout, 2)]),
        "5553": ("partial", [answer("rating", "5")]),
        "5554": ("opted_out", []),
    }
    for phone, (status, given) in script.items():
        await surveys.start_survey(attempt[phone], campaign, "satisfaction", NOW)
        for seq, a in enumerate(given, 1):
            await surveys.add_answer(attempt[phone], campaign, seq, a, NOW)
        if status != "partial":  # a hang-up leaves the row as it started: partial
            await surveys.end_survey(attempt[phone], status, NOW)

    results = await surveys.results(campaign)
    answers = await surveys.answers(campaign)
    section = build_survey_section(results, answers)
    assert section["status"] == {"completed": 2, "transferred": 0, "opted_out": 1, "partial": 1}
    rating = section["questions"]["rating"]
    assert rating["values"] == {"2": 1, "5": 2}
    assert rating["by_tier"] == {"-": {"5": 1}, "gold": {"2": 1, "5": 1}}
    assert section["questions"]["recommend"] == {
        "asked": 2, "answered": 1, "timeout": 1, "invalid": 0, "values": {"yes": 1}, "by_tier": {"gold": {"yes": 1}},
    }
    by_number = {c["number"]: c for c in section["calls"]}
    assert by_number["5552"]["answers"] == {"rating": "2", "recommend": "(timeout)"}
    assert by_number["5553"]["status"] == "partial"
    text = render_survey_text(section)
    assert "question rating: 2: 1, 5: 2" in text and "tier gold" in text

    out = io.StringIO()
    assert write_answers_csv(out, results, answers) == 6  # five answers, and the opt-out with none
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["number"], r["question"], r["value"], r["status"], r["tries"]) for r in rows] == [
        *sorted(
            [("5551", "rating", "5", "answered", "1"), ("5551", "recommend", "yes", "answered", "1"),
             ("5552", "rating", "2", "answered", "2"), ("5552", "recommend", "", "timeout", "2"),
             ("5553", "rating", "5", "answered", "1")],
            key=lambda row: (attempt[row[0]], row[1] != "rating"),
        ),
        ("5554", "", "", "", ""),
    ]
    assert rows[0]["tier"] in ("gold", "")


async def test_opting_out_puts_the_number_on_the_global_do_not_call_list(store: Store) -> None:
    campaign, attempt = await calls(store, [("5551", None)])
    surveys = SurveyStore(store)
    assert await surveys.opt_out("5551", campaign, attempt["5551"], NOW) is True
    assert await surveys.opt_out("5551", campaign, attempt["5551"], NOW) is False
    entries = await dnc.list_numbers(store, scope="*")
    assert [(e.phone, e.source) for e in entries] == [("5551", OPT_OUT_SOURCE)]
    assert await dnc.listed(store, "any-campaign", ["5551", "5552"]) == {"5551"}


def test_the_amd_section_counts_machines_apart() -> None:
    attempts = [
        {"id": "a", "outcome": "answered", "amd_status": "HUMAN"},
        {"id": "b", "outcome": "machine", "amd_status": "MACHINE"},
        {"id": "c", "outcome": "machine", "amd_status": "MACHINE"},
        {"id": "d", "outcome": "abandoned", "amd_status": "NOTSURE"},
        {"id": "e", "outcome": "busy", "amd_status": None},
    ]
    section = build_amd_section(attempts, count_false_positives=True, false_positive_rate=0.25)
    assert section["verdicts"] == {"HUMAN": 1, "MACHINE": 2, "NOTSURE": 1}
    assert (section["machine"], section["estimated_false_positives"]) == (2, 1)
    assert (section["abandoned"], section["live_answered"], section["abandon_rate"]) == (2, 3, 0.6667)
    ignored = build_amd_section(attempts, count_false_positives=False, false_positive_rate=0.25)
    assert (ignored["abandoned"], ignored["live_answered"]) == (1, 2)
