"""`dialer.report`: a campaign's report from stored rows (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dialer.report import build_report, render_text

DIALED = datetime(2026, 3, 2, 14, 0, 0)


def attempt(n: int, outcome: str | None, *, answer_after: float | None = None, bridge_after: float | None = None,
            end_after: float | None = None, agent: str | None = None, cause: int | None = None) -> dict[str, Any]:
    def at(seconds: float | None) -> datetime | None:
        return None if seconds is None else DIALED + timedelta(seconds=seconds)

    return {
        "id": f"attempt-{n}",
        "phone": f"1555000{n}",
        "attempt_no": 1,
        "outcome": outcome,
        "hangup_cause": cause,
        "agent_id": agent,
        "dialed_at": DIALED,
        "answered_at": at(answer_after),
        "bridged_at": at(bridge_after),
        "ended_at": at(end_after),
    }


def lead(state: str) -> dict[str, Any]:
    return {"state": state}


ATTEMPTS = [
    attempt(1, "answered", answer_after=4, bridge_after=5, end_after=65, agent="alice", cause=16),
    attempt(2, "answered", answer_after=3, bridge_after=3.5, end_after=33.5, agent="alice", cause=16),
    attempt(3, "answered", answer_after=6, bridge_after=7, end_after=97, agent="bob", cause=16),
    attempt(4, "abandoned", answer_after=2, end_after=8, cause=16),
    attempt(5, "busy", end_after=0.5, cause=17),
    attempt(6, "no_answer", end_after=25, cause=19),
    attempt(7, None),
]
LEADS = [lead("done")] * 5 + [lead("pending")] * 2 + [lead("leased")]


def test_counts_outcomes_and_the_abandon_rate_over_live_answers() -> None:
    report = build_report("renewals", LEADS, ATTEMPTS)
    assert report["campaign"] == "renewals"
    assert report["leads"] == {"total": 8, "pending": 2, "in_progress": 1, "done": 5}
    assert report["attempts"] == 7
    assert report["in_progress"] == 1
    assert report["outcomes"] == {"abandoned": 1, "answered": 3, "busy": 1, "no_answer": 1}
    assert list(report["outcomes"]) == sorted(report["outcomes"])
    assert report["live_answered"] == 4
    assert report["abandoned"] == 1
    assert report["abandon_rate"] == 0.25
    assert report["calls_per_agent"] == {"alice": 2, "bob": 1}
    assert report["mean_talk_seconds"] == 60.0  # (60 + 30 + 90) / 3


def test_each_call_has_its_timings() -> None:
    calls = {c["attempt"]: c for c in build_report("renewals", LEADS, ATTEMPTS)["calls"]}
    assert calls["attempt-1"] == {
        "attempt": "attempt-1",
        "number": "15550001",
        "attempt_no": 1,
        "outcome": "answered",
        "cut_short": False,
        "hangup_cause": 16,
        "agent": "alice",
        "dialed_at": "2026-03-02T14:00:00Z",
        "ring_seconds": 4.0,
        "wait_for_agent_seconds": 1.0,
        "talk_seconds": 60.0,
    }
    assert calls["attempt-5"]["ring_seconds"] == 0.5  # not answered: rang until the end
    assert calls["attempt-5"]["talk_seconds"] is None
    assert calls["attempt-4"]["wait_for_agent_seconds"] is None
    assert calls["attempt-7"]["ring_seconds"] is None


def test_no_live_answer_gives_a_zero_rate_not_a_division_by_zero() -> None:
    report = build_report("quiet", [lead("done")], [attempt(1, "busy", end_after=1, cause=17)])
    assert report["live_answered"] == 0
    assert report["abandon_rate"] == 0.0
    assert report["mean_talk_seconds"] is None
    text = render_text(report)
    assert "abandon rate 0.00% (0 of 0 live answers)" in text
    assert "mean talk time" not in text


def test_an_empty_campaign_reports_zeros() -> None:
    report = build_report("new", [], [])
    assert report["leads"] == {"total": 0, "pending": 0, "in_progress": 0, "done": 0}
    assert (report["attempts"], report["abandon_rate"], report["calls"]) == (0, 0.0, [])
    assert render_text(report).startswith("Campaign new\n")


def test_every_live_answer_abandoned_is_a_rate_of_one() -> None:
    rows = [attempt(1, "abandoned", answer_after=2, end_after=5), attempt(2, "abandoned", answer_after=2, end_after=5)]
    assert build_report("bad", [], rows)["abandon_rate"] == 1.0


def test_text_rendering_shows_outcomes_rate_and_agents() -> None:
    text = render_text(build_report("renewals", LEADS, ATTEMPTS))
    assert "leads     8 total, 5 done, 2 pending, 1 in progress" in text
    assert "attempts  7" in text
    assert "answered     3" in text
    assert "abandon rate 25.00% (1 of 4 live answers)" in text
    assert "calls per agent: alice 2, bob 1" in text
    assert "mean talk time 60.0 s" in text
