"""The survey and AMD sections `dialer report` adds, and its `--csv` export."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dialer.config.models import Campaign
from dialer.store.store import Store
from dialer.store.survey_store import SurveyStore
from dialer.survey_report import (
    build_amd_section,
    build_survey_section,
    render_amd_text,
    render_survey_text,
    write_answers_csv_file,
)


async def add_survey_and_amd(
    report: dict[str, Any],
    store: Store,
    campaign_id: int,
    attempts: Sequence[Mapping[str, Any]],
    settings: Campaign | None,
    csv_path: Path | None,
) -> None:
    surveys = SurveyStore(store)
    results = await surveys.results(campaign_id)
    answers = await surveys.answers(campaign_id)
    if results or (settings is not None and settings.ivr):
        report["survey"] = build_survey_section(results, answers)
    if csv_path is not None:
        report["csv"] = {"file": str(csv_path), "rows": write_answers_csv_file(csv_path, results, answers)}
    amd = settings.amd if settings is not None else None
    if (amd is not None and amd.enabled) or any(a.get("amd_status") for a in attempts):
        report["amd"] = build_amd_section(
            attempts,
            count_false_positives=amd is not None and amd.false_positives.value == "count_as_abandoned",
            false_positive_rate=amd.false_positive_rate if amd is not None else 0.0,
        )


def survey_and_amd_text(report: Mapping[str, Any]) -> str:
    parts = []
    if "survey" in report:
        parts.append(render_survey_text(report["survey"]))
    if "amd" in report:
        parts.append(render_amd_text(report["amd"]))
    if "csv" in report:
        parts.append(f"  answers written to {report['csv']['file']} ({report['csv']['rows']} rows)")
    return "".join("\n" + p for p in parts)
