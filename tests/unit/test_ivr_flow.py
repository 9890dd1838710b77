"""IVR flows: the model, the checks (unknown prompt, unreachable node, loop without exit), file:line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dialer.config.loader import ConfigError, validate_paths
from dialer.ivr.loader import flow_from_document, load_flow, load_flow_dir

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: mini
prompts:
  ask: "Rate us from 1 to 5."
  bye: "Goodbye."
  sorry: {sound: custom/sorry}
invalid: sorry
opt_out: {key: "9", say: bye}
start: ask
nodes:
  ask:
    type: question
    say: ask
    answer: {type: rating, min: 1, max: 5}
    when:
      1: agent
    next: done
  agent:
    type: transfer
    queue: retention
  done:
    type: hangup
    say: bye
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """Each problem as `line: field: message`."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_flow(path)
    return [str(issue).removeprefix(f"{path}:") for issue in caught.value.issues]


def test_a_good_flow_loads(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, GOOD))
    assert flow.name == "mini"
    assert flow.nodes["ask"].when == {"1": "agent"}  # YAML's integer key is an answer value
    assert flow.prompts["ask"].text == "Rate us from 1 to 5."  # a plain string is text to render


def test_the_shipped_sample_flows_are_valid() -> None:
    flows, issues = load_flow_dir(REPO / "ivr")
    assert issues == []
    assert {"satisfaction", "callback-check"} <= set(flows)


def test_yes_and_no_keys_read_by_yaml_as_booleans_are_answers(tmp_path: Path) -> None:
    text = GOOD.replace("answer: {type: rating, min: 1, max: 5}", "answer: {type: yes_no}").replace(
        "      1: agent", "      no: agent"
    )
    assert load_flow(write(tmp_path, text)).nodes["ask"].when == {"no": "agent"}


def test_unknown_prompt_is_reported_at_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("    say: bye\n", "    say: byebye\n")
    assert problems(tmp_path, text) == ["22: nodes.done.say: unknown prompt 'byebye'; define it under prompts"]


def test_unknown_node_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD.replace("next: done", "next: dnoe")) == [
        "16: nodes.ask.next: unknown node 'dnoe'",
        "20: nodes.done: node 'done' cannot be reached from start",
    ]


def test_unreachable_node_is_reported(tmp_path: Path) -> None:
    text = GOOD + "  orphan:\n    type: hangup\n"
    assert problems(tmp_path, text) == ["23: nodes.orphan: node 'orphan' cannot be reached from start"]


def test_loop_without_exit_is_reported(tmp_path: Path) -> None:
    text = GOOD.replace("      1: agent\n    next: done", "      1: agent\n    next: again") + (
        "  again:\n    type: message\n    say: ask\n    next: again2\n"
        "  again2:\n    type: message\n    say: ask\n    next: again\n"
    )
    found = problems(tmp_path, text)
    assert "23: nodes.again: loop without exit: no hangup or transfer can be reached from 'again'" in found
    assert "27: nodes.again2: loop without exit: no hangup or transfer can be reached from 'again2'" in found


def test_a_loop_with_an_exit_is_fine(tmp_path: Path) -> None:
    text = GOOD.replace("    next: done", "    next: confirm") + (
        "  confirm:\n    type: question\n    say: ask\n    answer: {type: yes_no}\n"
        "    when: {\"yes\": done}\n    next: ask\n"
    )
    assert load_flow(write(tmp_path, text)).nodes["confirm"].next == "ask"


def test_branch_for_an_impossible_answer_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD.replace("      1: agent", "      7: agent")) == [
        "15: nodes.ask.when.7: '7' is not an answer to this question (answers: 1, 2, 3, 4, 5)"
    ]


def test_opt_out_key_that_is_also_an_answer_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD.replace('key: "9"', 'key: "3"')) == [
        "7: opt_out.key: opt-out key '3' is also an answer to question 'ask'"
    ]


def test_question_without_a_way_on_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD.replace("    next: done\n", "")) == [
        "10: nodes.ask: give `next`: some answers have no branch in `when`",
        "10: nodes.ask: give `no_answer` or `next`: where to go when nothing valid is pressed",
        "19: nodes.done: node 'done' cannot be reached from start",
    ]


def test_field_errors_have_lines_too(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("min: 1, max: 5", "min: 5, max: 1"))
    assert len(found) == 1 and found[0].startswith("13: nodes.ask.answer: min (5) must be below max")


def test_a_sound_prompt_takes_no_extension(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("custom/sorry", "custom/sorry.wav"))
    assert found == ["5: prompts.sorry.sound: give the sound without its extension; Asterisk picks the format (got 'custom/sorry.wav')"]


def test_dialer_validate_checks_flows_beside_campaigns(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("    say: bye\n", "    say: byebye\n"), "bad-flow.yaml")
    issues = validate_paths([tmp_path, REPO / "ivr", REPO / "campaigns"], flows=flow_from_document)
    assert [str(i) for i in issues] == [f"{tmp_path}/bad-flow.yaml:22: nodes.done.say: unknown prompt 'byebye'; define it under prompts"]


def test_two_flows_with_one_name_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    flows, issues = load_flow_dir(tmp_path)
    assert list(flows) == ["mini"]
    assert [str(i) for i in issues] == [f"{tmp_path}/b.yaml: name: flow 'mini' is also defined in {tmp_path}/a.yaml"]


def test_a_digits_answer_of_one_key_clashes_with_the_opt_out_key_too(tmp_path: Path) -> None:
    text = GOOD.replace("answer: {type: rating, min: 1, max: 5}", "answer: {type: digits, min_length: 1}")
    assert problems(tmp_path, text) == ["7: opt_out.key: opt-out key '9' is also an answer to question 'ask'"]
    assert load_flow(write(tmp_path, text.replace("min_length: 1", "min_length: 2"), "ok.yaml")).name == "mini"


@pytest.mark.parametrize("sound", ['"custom/sorry\\0x"', '"custom/sorry\\x1b"', "../../etc/passwd"])
def test_a_sound_name_that_could_add_agi_commands_is_refused(tmp_path: Path, sound: str) -> None:
    # The name is sent inside an AGI command line (STREAM FILE): a NUL or an escape
    # there is not a sound name; '..' walks out of the sounds directory.
    text = GOOD.replace("{sound: custom/sorry}", "{sound: " + sound + "}")
    [problem] = problems(tmp_path, text)
    assert problem.startswith("5: prompts.sorry")
