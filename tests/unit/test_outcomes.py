"""`dialer.core.outcomes`: one vocabulary of outcomes, modes, the ceiling and the abandon rate."""

from __future__ import annotations

import ast
import typing
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from dialer.config.campaign_rules import RetryOutcome
from dialer.config.models import Campaign, DialingConfig
from dialer.core import records as r
from dialer.core.abandon import AbandonState
from dialer.core.amd import abandon_figures
from dialer.core.attempt import CAUSE_OUTCOMES, IVR_OUTCOMES, REASON_OUTCOMES, Attempt, State
from dialer.core.estimators import CampaignStats
from dialer.core.outcomes import (
    ABANDON_CEILING,
    IVR_ENDS,
    LEARNABLE,
    LINE_BUSY,
    LIVE_ANSWER,
    NOT_PLACED,
    REACHED,
    RETRYABLE,
    UNTOLD,
    DialingMode,
    Outcome,
    abandon_rate,
    live_answers,
)
from dialer.core.pacing import PacingMode, PacingPolicy
from dialer.core.reconcile import vanished_outcome
from dialer.ivr.interpreter import SurveyStatus
from dialer.report import build_report
from dialer.tuning.history import read_history

PACKAGE = Path(__file__).resolve().parents[2] / "dialer"
HOME = PACKAGE / "core" / "outcomes.py"
OUTCOME_VALUES = frozenset(o.value for o in Outcome)
MODE_VALUES = frozenset(m.value for m in DialingMode)

# --- every outcome the store can hold is an Outcome ------------------------------------------

ID = "attempt-1"
AT = st.floats(min_value=0.0, max_value=120.0, allow_nan=False)
RECORDS = st.one_of(
    st.builds(r.OriginateResult, attempt_id=st.just(ID), at=AT, success=st.booleans(),
              reason=st.one_of(st.none(), st.integers(0, 9))),
    st.builds(r.ChannelCreated, uniqueid=st.just(ID), at=AT, channel=st.just("PJSIP/carrier-1")),
    st.builds(r.ChannelState, uniqueid=st.just(ID), at=AT, state=st.sampled_from((4, 5, 6))),
    st.builds(r.ChannelHangup, uniqueid=st.just(ID), at=AT, cause=st.one_of(st.none(), st.integers(0, 130)),
              cause_text=st.none()),
    st.builds(r.QueueJoined, uniqueid=st.just(ID), at=AT, queue=st.just("sales")),
    st.builds(r.AgentConnected, uniqueid=st.just(ID), at=AT, queue=st.just("sales"), interface=st.just("PJSIP/a")),
    st.builds(r.DialerAbandoned, uniqueid=st.just(ID), at=AT),
    st.builds(r.MachineDetected, uniqueid=st.just(ID), at=AT, left_message=st.booleans()),
    st.builds(r.IvrStarted, uniqueid=st.just(ID), at=AT, flow=st.just("survey")),
    st.builds(r.IvrEnded, uniqueid=st.just(ID), at=AT, status=st.sampled_from([s.value for s in SurveyStatus])),
    st.builds(r.ShutdownHangup, uniqueid=st.just(ID), at=AT),
    st.builds(r.PbxShutdown, at=AT),
)


@given(st.lists(RECORDS, max_size=12), st.booleans())
def test_every_outcome_an_attempt_can_end_with_is_an_outcome(records: list[object], send_failed: bool) -> None:
    attempt = Attempt(id=ID, lead_id=1, phone="15550001", queue="sales", dialed_at=0.0, ring_timeout=25.0)
    if send_failed:
        attempt.send_failed(0.0)
    for record in records:
        attempt.apply(record)  # type: ignore[arg-type]
    outcome = attempt.finish(1000.0)
    assert outcome in OUTCOME_VALUES
    assert type(outcome) is str  # stored and logged as the plain value


def test_the_attempts_tables_and_the_reconciliation_name_outcomes_only() -> None:
    for table in (CAUSE_OUTCOMES, REASON_OUTCOMES, IVR_OUTCOMES):
        assert set(table.values()) <= set(Outcome)
    assert {vanished_outcome(s.value) for s in State} <= OUTCOME_VALUES


def _outcomes_written_in_the_code() -> dict[str, str]:
    """Every outcome string the code stores literally: `outcome=` / `final_outcome=` keywords and
    the values the `outcome` name is compared with, outside the inbound calls' own table."""
    found: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "inbound_calls.py" or "inbound" in path.parts or "sandbox" in path.parts:
            continue  # inbound calls have outcomes of their own (no_agent, callback_requested ...)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg in ("outcome", "final_outcome"):
                values = [node.value]
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "outcome":
                values = node.comparators
            else:
                continue
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found[value.value] = f"{path.relative_to(PACKAGE.parent)}:{value.lineno}"
    return found


def test_every_outcome_the_code_stores_by_name_is_an_outcome() -> None:
    written = _outcomes_written_in_the_code()
    assert Outcome.not_sent in written  # the store writes this one itself: the scan sees the store
    assert {v: where for v, where in written.items() if v not in OUTCOME_VALUES} == {}


# --- the named sets are what the code relies on ----------------------------------------------


@pytest.mark.parametrize("outcome", list(Outcome))
def test_the_pacing_learns_exactly_the_learnable_outcomes(outcome: Outcome) -> None:
    stats = CampaignStats()
    if outcome in LEARNABLE:
        stats.observe_attempt(outcome.value, 3.0)
        assert stats.attempts_seen == 1
    else:
        with pytest.raises(ValueError):
            stats.observe_attempt(outcome.value, 3.0)


def test_sets_keep_their_meaning() -> None:
    assert LIVE_ANSWER == {Outcome.answered, Outcome.abandoned}
    assert LIVE_ANSWER <= LEARNABLE
    # Nothing a fault or a refusal ends teaches the pacing about customers.
    assert not ({Outcome.interrupted} | NOT_PLACED) & LEARNABLE
    assert LINE_BUSY <= LEARNABLE - LIVE_ANSWER
    assert not REACHED & (LEARNABLE - {Outcome.answered})
    assert {Outcome(s.value) for s in SurveyStatus if s.value in OUTCOME_VALUES} == IVR_ENDS
    assert not UNTOLD & LIVE_ANSWER
    # The retry rules never name a call that served the customer.
    assert not set(RETRYABLE) & REACHED
    assert len(set(RETRYABLE)) == len(RETRYABLE)


def test_campaign_retries_accept_exactly_the_retryable_outcomes() -> None:
    assert typing.get_args(RetryOutcome) == tuple(o.value for o in RETRYABLE)
    retries = TypeAdapter(Campaign.model_fields["retries"].annotation)
    for outcome in Outcome:
        given = {outcome.value: {"delay_minutes": 5, "max_attempts": 2}}
        if outcome in RETRYABLE:
            parsed = retries.validate_python(given)
            assert [type(key) for key in parsed] == [str]  # plain strings, as YAML and the store want
        else:
            with pytest.raises(ValidationError):
                retries.validate_python(given)


def test_the_config_and_the_pacing_share_one_mode_enum_and_one_ceiling() -> None:
    assert PacingMode is DialingMode
    assert DialingConfig.model_fields["mode"].annotation is DialingMode
    assert {m.value for m in DialingMode} == {"progressive", "ratio", "predictive"}
    assert DialingConfig().abandon_limit == ABANDON_CEILING
    assert PacingPolicy(mode="ratio", max_lines=1).abandon_limit == ABANDON_CEILING
    with pytest.raises(ValidationError, match="over 0.03"):
        DialingConfig(abandon_limit=ABANDON_CEILING + 0.001)
    with pytest.raises(ValueError, match="above 0.03"):
        PacingPolicy(mode="ratio", max_lines=1, abandon_limit=ABANDON_CEILING + 0.001)


def test_tune_history_counts_by_the_named_sets() -> None:
    now = datetime(2026, 3, 2, 12)
    rows = [{"dialed_at": datetime(2026, 3, 2, 10), "outcome": o.value} for o in Outcome]
    profile = read_history(rows, now=now, days=1).day
    assert profile.attempts == len(Outcome) - len(UNTOLD)
    assert profile.live == len(LIVE_ANSWER)
    assert profile.busy == len(LINE_BUSY)
    assert profile.abandoned == 1


# --- one abandon rate ------------------------------------------------------------------------

COUNTS = st.integers(min_value=0, max_value=10**6)


@given(COUNTS, COUNTS)
def test_abandon_rate_is_a_fraction_and_grows_with_abandons(abandoned: int, others: int) -> None:
    live = abandoned + others
    rate = abandon_rate(abandoned, live)
    assert 0.0 <= rate <= 1.0
    # One more abandoned call never lowers the rate; one more answered call never raises it.
    assert abandon_rate(abandoned + 1, live + 1) >= rate
    assert abandon_rate(abandoned, live + 1) <= rate
    assert (rate == 0.0) == (abandoned == 0)


def test_abandon_rate_refuses_negative_counts() -> None:
    assert abandon_rate(0, 0) == 0.0
    with pytest.raises(ValueError):
        abandon_rate(-1, 3)
    with pytest.raises(ValueError):
        abandon_rate(1, -3)


@given(st.dictionaries(st.sampled_from(list(Outcome)), st.integers(0, 500)), st.booleans(),
       st.floats(min_value=0.0, max_value=1.0))
def test_every_abandon_figure_is_the_one_rate(counts: dict[Outcome, int], count_fp: bool, fp_rate: float) -> None:
    stored = {o.value: n for o, n in counts.items() if n}
    abandoned, live = stored.get("abandoned", 0), live_answers(stored)
    expected = abandon_rate(abandoned, live)
    assert AbandonState(answered=live, abandoned=abandoned).rate == expected
    report = build_report("c", [], [
        {"id": str(i), "phone": "1", "attempt_no": 1, "outcome": o, "hangup_cause": None, "agent_id": None,
         "dialed_at": None, "answered_at": None, "bridged_at": None, "ended_at": None}
        for i, o in enumerate(Counter(stored).elements())
    ])
    assert report["live_answered"] == live
    assert report["abandon_rate"] == round(expected, 4)
    figures = abandon_figures(stored, count_false_positives=count_fp, rate=fp_rate)
    # AMD's false positives count as abandoned live answers, on both sides of the rate.
    assert figures.live_answered - figures.false_positives == live
    assert figures.rate == round(abandon_rate(abandoned + figures.false_positives, figures.live_answered), 4)


# --- no second vocabulary creeps back ---------------------------------------------------------

# A survey's own status (survey_results.status): an attempt's outcome takes it over by name.
ALLOWED_ENUMS = {("dialer/ivr/interpreter.py", "SurveyStatus")}


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def second_vocabulary(source: str, where: str) -> list[str]:
    """What in `source` repeats the vocabulary of `dialer.core.outcomes`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Constant) and node.value == ABANDON_CEILING and not isinstance(node.value, bool):
            found.append(f"{line}: the ceiling {node.value} as a literal")
        elif isinstance(node, ast.ClassDef) and any(_names(b) & {"Enum", "StrEnum"} for b in node.bases):
            values = set()
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant):
                    values.add(item.value.value)
            if (where, node.name) in ALLOWED_ENUMS:
                continue
            if len(values & OUTCOME_VALUES) >= 2:
                found.append(f"{line}: enum {node.name} of outcomes")
            if len(values & MODE_VALUES) >= 2:
                found.append(f"{line}: enum {node.name} of dialing modes")
        elif isinstance(node, (ast.Set, ast.Tuple, ast.List)) or (
            isinstance(node, ast.Subscript) and _names(node.value) & {"Literal"}
        ):
            members = node if not isinstance(node, ast.Subscript) else node.slice
            elements = members.elts if isinstance(members, (ast.Set, ast.Tuple, ast.List)) else [members]
            strings = {e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            # Only sets made of nothing else: a simulated customer's "answer" or "machine" is no outcome.
            if len(strings) >= 2 and strings <= OUTCOME_VALUES:
                found.append(f"{line}: a set of outcomes {sorted(strings)}")
            if len(strings) >= 2 and strings <= MODE_VALUES:
                found.append(f"{line}: a set of dialing modes {sorted(strings)}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and not isinstance(node.left, ast.BinOp):
            # abandoned / something (a difference over something is a score, not a rate)
            if any("abandon" in name for name in _names(node.left) | _strings(node.left)):
                found.append(f"{line}: an abandon rate computed in place")
    return found


def test_no_second_outcome_set_mode_enum_ceiling_or_abandon_rate_in_the_package() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != HOME:
            found += second_vocabulary(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == [], "import them from dialer.core.outcomes (Outcome and its sets, DialingMode, the ceiling, the rate)"


@pytest.mark.parametrize(
    "source",
    [
        "LIMIT = 0.03\n",
        "class Mode(str, Enum):\n    ratio = 'ratio'\n    predictive = 'predictive'\n",
        "class Result(enum.StrEnum):\n    busy = 'busy'\n    no_answer = 'no_answer'\n",
        "LIVE = frozenset({'answered', 'abandoned'})\n",
        "if outcome not in (None, 'answered', 'completed'):\n    pass\n",
        "Kind = Literal['busy', 'congestion']\n",
        "rate = self.abandoned / live if live else 0.0\n",
        "rate = sum(r.abandoned for r in runs) / live\n",
        "rate = round(outcomes.get('abandoned', 0) / live, 4) if live else 0.0\n",
        "choice = rng.choice(['progressive', 'predictive'])\n",
    ],
)
def test_the_guard_catches_each_kind_of_copy(source: str) -> None:
    assert second_vocabulary(source, "example.py")


@pytest.mark.parametrize(
    "source",
    [
        "RINGS_FIRST = {'answer', 'machine', 'no_answer'}\n",  # a simulated customer's behaviours
        "excess = (abandon.abandoned - expected) / math.sqrt(expected + 1.0)\n",
        "STATES = ('dialing', 'ringing')\n",
        "limit = 0.025\n",
    ],
)
def test_the_guard_lets_other_vocabularies_be(source: str) -> None:
    assert second_vocabulary(source, "example.py") == []
