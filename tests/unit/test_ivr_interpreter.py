"""The survey state machine: answers, retries, branches, opt-out, hang-ups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.ivr.flow import Flow
from dialer.ivr.interpreter import (
    AnswerStatus,
    Ask,
    End,
    FlowError,
    Survey,
    SurveyStatus,
)

FLOW: dict[str, Any] = {
    "name": "t",
    "prompts": {p: p for p in ("hello", "rate", "rec", "sorry", "again", "bye", "agent", "out")},
    "invalid": "sorry",
    "no_input": "again",
    "opt_out": {"key": "9", "say": "out"},
    "start": "hello",
    "nodes": {
        "hello": {"type": "message", "say": "hello", "next": "rate"},
        "rate": {
            "type": "question", "say": "rate", "answer": {"type": "rating"}, "timeout": 3, "retries": 1,
            "when": {"1": "agent"}, "next": "rec",
        },
        "rec": {"type": "question", "say": "rec", "answer": {"type": "yes_no"}, "retries": 0, "next": "bye",
                "no_answer": "bye"},
        "agent": {"type": "transfer", "say": "agent", "queue": "retention"},
        "bye": {"type": "hangup", "say": "bye"},
    },
}


def survey(**changes: Any) -> Survey:
    return Survey(Flow.model_validate({**FLOW, **changes}))


def answers(s: Survey) -> list[tuple[str, str | None, str, int]]:
    return [(a.question, a.value, a.status.value, a.tries) for a in s.answers]


def test_message_prompts_come_before_the_first_question() -> None:
    first = survey().begin()
    assert first == Ask("rate", ("hello", "rate"), 3.0, 1, None)


def test_a_full_survey() -> None:
    s = survey()
    s.begin()
    ask = s.press("4", at=10.0)
    assert isinstance(ask, Ask) and ask.question == "rec" and ask.prompts == ("rec",)
    assert ask.answer is not None and (ask.answer.value, ask.answer.at) == ("4", 10.0)
    end = s.press("2", at=12.0)
    assert end == End(SurveyStatus.completed, ("bye",), None, s.answers[-1])
    assert answers(s) == [("rate", "4", "answered", 1), ("rec", "no", "answered", 1)]
    assert s.status is SurveyStatus.completed


def test_a_wrong_key_is_scolded_and_asked_again() -> None:
    s = survey()
    s.begin()
    again = s.press("7", at=1.0)
    assert again == Ask("rate", ("sorry", "rate"), 3.0, 1, None)
    s.press("3", at=2.0)
    assert answers(s) == [("rate", "3", "answered", 2)]


def test_a_timeout_plays_the_no_input_prompt() -> None:
    s = survey()
    s.begin()
    assert s.press(None, at=1.0).prompts == ("again", "rate")


def test_retries_used_up_record_why_and_move_on() -> None:
    s = survey()
    s.begin()
    s.press("7", at=1.0)
    after = s.press("0", at=2.0)
    assert isinstance(after, Ask) and after.question == "rec" and after.prompts == ("sorry", "rec")
    end = s.press(None, at=3.0)  # rec has no retries: straight to no_answer
    assert isinstance(end, End) and end.status is SurveyStatus.completed
    assert answers(s) == [("rate", None, "invalid", 2), ("rec", None, "timeout", 1)]
    assert [a.digits for a in s.answers] == ["0", ""]


def test_a_branch_on_the_answer_transfers() -> None:
    s = survey()
    s.begin()
    end = s.press("1", at=1.0)
    assert end == End(SurveyStatus.transferred, ("agent",), "retention", s.answers[0])


def test_opt_out_at_any_question_ends_the_survey() -> None:
    s = survey()
    s.begin()
    s.press("5", at=1.0)
    end = s.press("9", at=2.0)
    assert end == End(SurveyStatus.opted_out, ("out",), None, None)
    assert s.opted_out and answers(s) == [("rate", "5", "answered", 1)]


def test_hanging_up_leaves_a_partial_survey_with_its_answers() -> None:
    s = survey()
    s.begin()
    s.press("5", at=1.0)
    s.hung_up()
    assert s.status is SurveyStatus.partial and len(s.answers) == 1


def test_hanging_up_after_the_end_changes_nothing() -> None:
    s = survey()
    s.begin()
    s.press("1", at=1.0)
    s.hung_up()
    assert s.status is SurveyStatus.transferred


def test_press_without_a_question_is_a_bug() -> None:
    s = survey()
    with pytest.raises(RuntimeError):
        s.press("1", at=0.0)


def test_a_message_loop_built_in_code_stops() -> None:
    nodes = {"a": {"type": "message", "say": "hello", "next": "b"}, "b": {"type": "message", "say": "bye", "next": "a"}}
    s = survey(nodes=nodes, start="a")
    with pytest.raises(FlowError):
        s.begin()
    assert s.status is SurveyStatus.partial


def test_digits_questions_take_several_keys() -> None:
    nodes = {
        "code": {"type": "question", "say": "rate", "answer": {"type": "digits", "min_length": 2, "max_length": 4},
                 "next": "bye"},
        "bye": {"type": "hangup"},
    }
    s = survey(nodes=nodes, start="code")
    assert s.begin().max_digits == 4
    s.press("1", at=1.0)  # too short: asked again
    s.press("1234", at=2.0)
    assert answers(s) == [("code", "1234", "answered", 2)]


@given(st.lists(st.one_of(st.none(), st.sampled_from(list("0123456789*#")), st.text("0123456789", max_size=3)),
                max_size=12))
def test_any_key_sequence_ends_or_keeps_asking_and_every_answer_is_valid(presses: list[str | None]) -> None:
    s = survey()
    action = s.begin()
    for at, digits in enumerate(presses):
        if isinstance(action, End):
            break
        action = s.press(digits, at=float(at))
    valid = {"rate": {"1", "2", "3", "4", "5"}, "rec": {"yes", "no"}}
    for a in s.answers:
        assert (a.value in valid[a.question]) == (a.status is AnswerStatus.answered)
    assert isinstance(action, End) or s.status is SurveyStatus.running
    assert len(s.answers) <= 2
