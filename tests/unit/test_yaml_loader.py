from pathlib import Path

import pytest

from dialer.config.yaml_loader import YamlError, YamlProblem, load_yaml_mapping, parse_yaml_mapping


def problems(text: str) -> list[YamlProblem]:
    with pytest.raises(YamlError) as caught:
        parse_yaml_mapping(text, "x.yaml")
    return caught.value.problems


def test_records_the_line_of_every_key_and_list_item() -> None:
    doc = parse_yaml_mapping(
        "# a comment\n"          # 1
        "name: a\n"              # 2
        "dialing:\n"             # 3
        "  ring_timeout: 20\n"   # 4
        "agents:\n"              # 5
        "  - id: a1\n"           # 6
        "    queues: [q]\n"      # 7
        "  - id: a2\n"           # 8
        "    queues:\n"          # 9
        "      - q\n"            # 10
        "      - r\n",           # 11
        "x.yaml",
    )
    assert doc.data == {
        "name": "a",
        "dialing": {"ring_timeout": 20},
        "agents": [{"id": "a1", "queues": ["q"]}, {"id": "a2", "queues": ["q", "r"]}],
    }
    assert doc.key_lines[("name",)] == 2
    assert doc.key_lines[("dialing", "ring_timeout")] == 4
    assert doc.key_lines[("agents", 1)] == 8
    assert doc.key_lines[("agents", 1, "id")] == 8
    assert doc.key_lines[("agents", 1, "queues", 1)] == 11
    assert doc.value_lines[()] == 2
    assert doc.value_lines[("agents", 1, "queues")] == 10


def test_line_of_falls_back_to_the_nearest_ancestor() -> None:
    doc = parse_yaml_mapping("a: 1\nb:\n  c: 2\n", "x.yaml")
    assert doc.line_of(("b", "c")) == 3
    assert doc.line_of(("b", "missing")) == 2
    assert doc.line_of(("b", "c", "function-after[check]")) == 3
    assert doc.line_of(("nowhere",)) == 1
    assert doc.line_of(()) == 1
    assert doc.has(("b", "c")) and not doc.has(("b", "missing"))


def test_duplicate_key_names_both_lines() -> None:
    found = problems("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n")
    assert found == [YamlProblem(5, "duplicate key 'c': already given on line 3")]


def test_every_duplicate_in_a_file_is_reported() -> None:
    found = problems("a: 1\na: 2\nb: [1]\nlist:\n  - x: 1\n    x: 2\n")
    assert [p.line for p in found] == [2, 6]


def test_same_key_in_different_mappings_is_fine() -> None:
    doc = parse_yaml_mapping("a:\n  id: 1\nb:\n  id: 2\n", "x.yaml")
    assert doc.data == {"a": {"id": 1}, "b": {"id": 2}}


def test_merge_keys_are_not_duplicates_and_explicit_keys_win() -> None:
    doc = parse_yaml_mapping(
        "base: &base\n  ring: 20\n  lines: 5\nc:\n  <<: *base\n  lines: 9\n", "x.yaml"
    )
    assert doc.data["c"] == {"ring": 20, "lines": 9}
    assert doc.key_lines[("c", "ring")] == 2
    assert doc.key_lines[("c", "lines")] == 6


def test_aliased_mapping_is_checked_once() -> None:
    doc = parse_yaml_mapping("b: &b {r: 1}\nc: &c {<<: *b, r: 9}\nd: *c\ne: *c\n", "x.yaml")
    assert doc.data["e"] == {"r": 9}
    assert problems("a: &x\n  k: 1\n  k: 2\nb: *x\n") == [
        YamlProblem(3, "duplicate key 'k': already given on line 2")
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "~\n", "---\n"])
def test_empty_file_is_an_error(text: str) -> None:
    [problem] = problems(text)
    assert "empty" in problem.message
    assert problem.line is not None


def test_a_list_at_top_level_is_an_error() -> None:
    assert problems("\n- a\n- b\n") == [
        YamlProblem(2, "the file holds a list; expected a mapping of settings (key: value)")
    ]


def test_a_scalar_at_top_level_is_an_error() -> None:
    [problem] = problems("just text\n")
    assert "single str value" in problem.message


def test_tab_indentation_names_the_line() -> None:
    [problem] = problems("a:\n  b: 1\n\tc: 2\n")
    assert problem.line == 3
    assert "tab" in problem.message


def test_syntax_error_names_the_line() -> None:
    [problem] = problems("a: 1\nb: [1, 2\nc: 3\n")
    assert problem.line == 3
    assert problem.message.startswith("YAML syntax error")


def test_two_documents_in_one_file_are_refused() -> None:
    [problem] = problems("a: 1\n---\nb: 2\n")
    assert problem.line == 2
    assert "second YAML document" in problem.message


def test_python_tags_are_refused() -> None:
    [problem] = problems("a: 1\nb: !!python/object/apply:os.system ['true']\n")
    assert problem.line == 2


def test_a_key_that_is_a_list_is_refused() -> None:
    [problem] = problems("a: 1\n? [x, y]\n: 2\n")
    assert problem.line == 2
    assert "plain value" in problem.message


def test_an_alias_to_its_own_parent_is_refused() -> None:
    [problem] = problems("a: &x\n  b: *x\n")
    assert "own parent" in problem.message


def test_control_character_names_the_line() -> None:
    assert problems("a: 1\nb: x\x07y\n") == [
        YamlProblem(2, "character U+0007 is not allowed in YAML")
    ]


def test_error_renders_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(YamlError) as caught:
        load_yaml_mapping(path)
    assert str(caught.value) == f"{path}:2: duplicate key 'a': already given on line 1"


def test_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("\ufeffname: é\n".encode())
    assert load_yaml_mapping(path).data == {"name": "é"}


def test_file_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a: 1\nname: caf\xe9\n")
    with pytest.raises(YamlError) as caught:
        load_yaml_mapping(path)
    assert caught.value.problems == [YamlProblem(2, "not valid UTF-8 text; save the file as UTF-8")]


def test_missing_file_is_a_yaml_error(tmp_path: Path) -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml_mapping(tmp_path / "absent.yaml")
    [problem] = caught.value.problems
    assert problem.line is None
    assert "cannot read" in problem.message
