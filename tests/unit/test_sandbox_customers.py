import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.sandbox.customers import CustomerKind, customer_number, parse_customer_number, survey_number


def test_example_from_the_scheme() -> None:
    behaviour = parse_customer_number("1030200007")
    assert behaviour.kind is CustomerKind.ANSWER
    assert (behaviour.ring_s, behaviour.talk_s, behaviour.serial) == (3, 20, 7)
    assert behaviour.expected_outcome == "answered"


@pytest.mark.parametrize(
    ("kind", "outcome", "status", "cause"),
    [
        (CustomerKind.ANSWER, "answered", None, None),
        (CustomerKind.BUSY, "busy", 486, 17),
        (CustomerKind.NO_ANSWER, "no_answer", None, None),
        (CustomerKind.REJECT, "rejected", 603, 21),
        (CustomerKind.CONGESTION, "congestion", 503, 34),
        (CustomerKind.NOT_FOUND, "failed", 404, 1),
    ],
)
def test_each_kind_maps_to_outcome_status_and_cause(
    kind: CustomerKind, outcome: str, status: int | None, cause: int | None
) -> None:
    behaviour = parse_customer_number(customer_number(kind, 1, 2, 3))
    assert behaviour.kind is kind
    assert behaviour.expected_outcome == outcome
    assert behaviour.sip_status == status
    assert behaviour.hangup_cause == cause


def test_number_is_zero_padded() -> None:
    assert customer_number(2, 5, 0, 42) == "2050000042"
    assert customer_number(CustomerKind.NO_ANSWER, 0, 0, 0) == "3000000000"


@given(
    kind=st.sampled_from(list(CustomerKind)),
    ring=st.integers(0, 99),
    talk=st.integers(0, 999),
    serial=st.integers(0, 9999),
)
def test_round_trip(kind: CustomerKind, ring: int, talk: int, serial: int) -> None:
    number = customer_number(kind, ring, talk, serial)
    assert len(number) == 10
    behaviour = parse_customer_number(number)
    assert (behaviour.kind, behaviour.ring_s, behaviour.talk_s, behaviour.serial) == (kind, ring, talk, serial)
    assert behaviour.number == number


@pytest.mark.parametrize(
    ("args", "message"),
    [((1, 100, 0, 0), "ring_s"), ((1, 0, 1000, 0), "talk_s"), ((1, 0, 0, 10000), "serial"), ((1, -1, 0, 0), "ring_s")],
)
def test_out_of_range_fields_are_refused(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        customer_number(*args)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        customer_number(0, 0, 0, 0)
    with pytest.raises(ValueError, match="unknown customer kind 0"):
        parse_customer_number("0000000000")


@pytest.mark.parametrize("number", ["", "103020000", "10302000077", "1030200a07", "+1030200007"])
def test_numbers_outside_the_scheme_are_refused(number: str) -> None:
    with pytest.raises(ValueError, match="not a sandbox customer number"):
        parse_customer_number(number)


def test_survey_customer_keys_and_their_times() -> None:
    behaviour = parse_customer_number(survey_number(1, "471", 5))
    assert behaviour.number == "7014710005"
    assert behaviour.kind is CustomerKind.SURVEY
    assert behaviour.keys == "471"
    assert behaviour.key_times() == [(4.0, "4"), (8.0, "7"), (12.0, "1")]


def test_a_hang_up_slot_ends_the_key_times() -> None:
    assert parse_customer_number(survey_number(1, "483", 5)).key_times() == [(4.0, "4"), (8.0, "8")]


def test_only_survey_customers_press_keys() -> None:
    assert parse_customer_number(customer_number(CustomerKind.HELLO, 1, 471, 5)).keys == ""
    assert parse_customer_number(customer_number(CustomerKind.MACHINE, 1, 20, 5)).expected_outcome == "machine"


@pytest.mark.parametrize("keys", ["47", "4710", "4a1"])
def test_survey_keys_must_be_three_digits(keys: str) -> None:
    with pytest.raises(ValueError, match="three digits"):
        survey_number(1, keys, 5)
