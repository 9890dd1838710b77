"""The survey and answering-machine parts of `dialer report` (pure), and the CSV export.

- survey: how each survey call ended (completed, transferred, opted_out, partial) and,
  per question, the distribution of answers overall and per customer tier; unanswered
  questions are counted by why (timeout, invalid);
- amd: AMD's verdicts, the `machine` outcome counted apart, and the abandon rate with
  AMD false positives counted as the campaign's rule says (`dialer.core.amd`).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from dialer.core.amd import abandon_figures
from dialer.ivr.interpreter import SurveyStatus
from dialer.spreadsheet_cells import spreadsheet_cell

NO_TIER = "-"
# How a survey can end (a running one has no end yet).
SURVEY_STATUSES = tuple(s.value for s in SurveyStatus if s is not SurveyStatus.running)
CSV_COLUMNS = (
    "attempt", "number", "tier", "survey_status", "seq", "question", "value", "status", "tries", "digits", "answered_at",
)


def build_survey_section(results: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    statuses = Counter(r["status"] for r in results)
    questions: dict[str, dict[str, Any]] = {}
    for a in answers:
        q = questions.setdefault(
            a["question"], {"asked": 0, "answered": 0, "timeout": 0, "invalid": 0, "values": Counter(), "by_tier": {}}
        )
        q["asked"] += 1
        q[a["status"]] = q.get(a["status"], 0) + 1
        if a["value"] is not None:
            q["values"][a["value"]] += 1
            q["by_tier"].setdefault(a["tier"] or NO_TIER, Counter())[a["value"]] += 1
    by_attempt: dict[str, dict[str, Any]] = defaultdict(dict)
    for a in answers:
        by_attempt[a["attempt_id"]][a["question"]] = a["value"] if a["value"] is not None else f"({a['status']})"
    return {
        "surveys": len(results),
        "status": {s: statuses.get(s, 0) for s in SURVEY_STATUSES},
        "questions": {
            name: {
                **{k: q[k] for k in ("asked", "answered", "timeout", "invalid")},
                "values": dict(sorted(q["values"].items())),
                "by_tier": {tier: dict(sorted(c.items())) for tier, c in sorted(q["by_tier"].items())},
            }
            for name, q in questions.items()
        },
        "calls": [
            {
                "attempt": r["attempt_id"],
                "number": r["phone"],
                "tier": r["tier"],
                "flow": r["flow"],
                "status": r["status"],
                "answers": by_attempt.get(r["attempt_id"], {}),
            }
            for r in results
        ],
    }


def build_amd_section(
    attempts: Sequence[Mapping[str, Any]], *, count_false_positives: bool, false_positive_rate: float
) -> dict[str, Any]:
    verdicts = Counter(a.get("amd_status") for a in attempts if a.get("amd_status"))
    outcomes = Counter(a["outcome"] for a in attempts if a["outcome"])
    figures = abandon_figures(outcomes, count_false_positives=count_false_positives, rate=false_positive_rate)
    return {
        "verdicts": dict(sorted(verdicts.items())),
        "machine": outcomes.get("machine", 0),
        "false_positives": "count_as_abandoned" if count_false_positives else "ignore",
        "false_positive_rate": false_positive_rate,
        "estimated_false_positives": figures.false_positives,
        "abandon_rate": figures.rate,
        "abandoned": figures.abandoned,
        "live_answered": figures.live_answered,
        "by_attempt": {a["id"]: a["amd_status"] for a in attempts if a.get("amd_status")},
    }


def render_survey_text(section: Mapping[str, Any]) -> str:
    lines = [f"  surveys   {section['surveys']}"]
    lines += [f"    {status:<12} {count}" for status, count in section["status"].items()]
    for name, q in section["questions"].items():
        values = ", ".join(f"{v}: {n}" for v, n in q["values"].items()) or "none"
        lines.append(f"  question {name}: {values} (no answer: {q['timeout']} timeout, {q['invalid']} invalid)")
        if len(q["by_tier"]) > 1 or NO_TIER not in q["by_tier"]:
            for tier, counts in q["by_tier"].items():
                lines.append(f"    tier {tier:<8} " + ", ".join(f"{v}: {n}" for v, n in counts.items()))
    return "\n".join(lines)


def render_amd_text(section: Mapping[str, Any]) -> str:
    verdicts = ", ".join(f"{v} {n}" for v, n in section["verdicts"].items()) or "none"
    line = f"  AMD: {verdicts}; machine outcomes {section['machine']}"
    if section["false_positives"] == "count_as_abandoned":
        line += (
            f"; {section['estimated_false_positives']} counted as abandoned "
            f"(abandon rate {section['abandon_rate']:.2%})"
        )
    return line


def write_answers_csv(out: IO[str], results: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]) -> int:
    """One row per answer (unanswered questions included), then a row for each survey without any; returns rows."""
    status_of = {r["attempt_id"]: r["status"] for r in results}
    csv_writer = csv.writer(out)

    def writerow(cells: Sequence[Any]) -> None:
        csv_writer.writerow([spreadsheet_cell(c) for c in cells])

    writerow(CSV_COLUMNS)
    rows = 0
    seen = set()
    for a in answers:
        seen.add(a["attempt_id"])
        writerow(
            [
                a["attempt_id"], a["phone"], a["tier"] or "", status_of.get(a["attempt_id"], ""), a["seq"],
                a["question"], a["value"] or "", a["status"], a["tries"], a["digits"], _iso(a["answered_at"]),
            ]
        )
        rows += 1
    for r in results:
        if r["attempt_id"] not in seen:
            writerow([r["attempt_id"], r["phone"], r["tier"] or "", r["status"], "", "", "", "", "", "", ""])
            rows += 1
    return rows


def write_answers_csv_file(path: Path, results: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]) -> int:
    with open(path, "w", newline="", encoding="utf-8") as out:
        return write_answers_csv(out, results, answers)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() + "Z" if moment is not None else ""
