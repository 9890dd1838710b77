"""`dialer.ami.values`: the rules for anything bound for AMI."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.ami import values as v

ANY_TEXT = st.text(alphabet=st.characters(codec=None), max_size=400)


@given(ANY_TEXT, st.integers(min_value=0, max_value=300))
def test_any_text_made_header_safe_passes_the_header_rule(text: str, limit: int) -> None:
    safe = v.header_text(text, limit)
    assert not any(c in safe for c in "\r\n\x00")
    assert v.problem_in_header_value(safe) is None
    assert len(safe) <= limit
    safe.encode("utf-8")


@given(ANY_TEXT)
def test_any_text_made_variable_safe_is_a_valid_variable_value(text: str) -> None:
    safe = v.variable_text(text)
    assert v.variable_problem("DIALER_CUSTOMER", safe) is None
    assert "," not in safe and len(safe) <= 64


@given(st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=40), st.lists(st.text(max_size=20))),
                       max_size=5))
def test_fields_pass_only_if_no_value_or_name_holds_a_control_character(
    fields: dict[str, object]
) -> None:
    problems = v.problems_in_fields(fields)
    texts = [k for k in fields] + [
        item for value in fields.values() for item in (value if isinstance(value, list) else [value])  # type: ignore[union-attr]
    ]
    dirty = any(c < " " or "\x7f" <= c <= "\x9f" for text in texts for c in str(text)) or any(
        not k.isascii() for k in fields
    )
    if dirty:
        assert problems
    if not problems:
        wire = "".join(f"{k}: {item}\r\n" for k, val in fields.items()
                       for item in (val if isinstance(val, list) else [val]))  # type: ignore[union-attr]
        # Exactly one line per header: nothing can start another header or action.
        assert wire.count("\r\n") == sum(len(val) if isinstance(val, list) else 1 for val in fields.values())


def test_header_text_keeps_readable_names_readable() -> None:
    assert v.header_text("Jos\u00e9 M\u00fcller") == "Jos\u00e9 M\u00fcller"
    assert v.header_text("Eve\r\nAction: Command") == "Eve  Action: Command"
    assert v.header_text("\u5f20\u4f1f\u2028\x85\ud800") == "\u5f20\u4f1f   "
    assert v.header_text("x" * 500) == "x" * 200


@pytest.mark.parametrize(
    "interface", ["PJSIP/agent1", "SIP/1001", "Local/100@agents/n", "IAX2/user@host:4569/1001", "DAHDI/g1/5551234"]
)
def test_interfaces(interface: str) -> None:
    assert v.check_interface(interface) == interface


@pytest.mark.parametrize(
    "interface", ["agent1", "PJSIP/", "PJSIP/a&PJSIP/b", "PJSIP/a,t", "PJSIP/a b", "PJSIP/a\r\n", "PJSIP/${X}"]
)
def test_bad_interfaces(interface: str) -> None:
    with pytest.raises(ValueError):
        v.check_interface(interface)


@pytest.mark.parametrize("caller_id", ["+15551234567", "5550100", '"Acme Ltd." <+15551234567>', "Acme <123>",
                                       '"" <123>'])
def test_caller_ids(caller_id: str) -> None:
    assert v.check_caller_id(caller_id) == caller_id


@pytest.mark.parametrize("caller_id", ["", "Acme", '"A"B" <1>', "A <1> x", '"A" <12a>', "+1" + "5" * 30, "\"A\" <1>\n"])
def test_bad_caller_ids(caller_id: str) -> None:
    with pytest.raises(ValueError):
        v.check_caller_id(caller_id)


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("DIALER_QUEUE", "sales", True),
        ("__DIALER_TIER", "key", True),
        ("DIALER_AMD_PARAMS", "2500^^1500", True),
        ("DIALER_AGENT", "PJSIP/agent2", True),
        ("DIALER X", "1", False),
        ("DIALER_QUEUE", "sales,DIALER_TIER=key", False),
        ("DIALER_QUEUE", 'sales"', False),
        ("DIALER_QUEUE", "sales(x)", False),
        ("DIALER_QUEUE", "${SHELL(id)}", False),
    ],
)
def test_variables(name: str, value: str, ok: bool) -> None:
    assert (v.variable_problem(name, value) is None) is ok
