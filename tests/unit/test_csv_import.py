from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.leads.csv_import import LeadImport, LeadRow, RowError, parse_leads_csv


def test_all_known_columns_and_extra_data() -> None:
    result = parse_leads_csv(
        "phone,name,customer_id,tier,value,timezone,plan\n"
        "+1 (555) 010-0001,Ann Lee,C-17,Gold,1250.50,America/New_York,fibre\n"
    )
    assert result.errors == []
    assert result.rows == [
        LeadRow(
            line=2,
            phone="+15550100001",
            name="Ann Lee",
            customer_id="C-17",
            tier="gold",
            value=Decimal("1250.50"),
            timezone="America/New_York",
            data={"plan": "fibre"},
        )
    ]


def test_only_phone_is_required_and_blank_optionals_are_none() -> None:
    [row] = parse_leads_csv("phone,name,value,timezone\n555.0100,,,\n").rows
    assert (row.phone, row.name, row.value, row.timezone, row.data) == ("5550100", None, None, None, {})


def test_number_is_accepted_for_phone_and_headers_are_matched_loosely() -> None:
    result = parse_leads_csv(" Number ,Customer ID,TIER,Notes\n555 0100,X1,Silver,call after 5\n")
    assert result.errors == []
    [row] = result.rows
    assert (row.phone, row.customer_id, row.tier, row.data) == ("5550100", "X1", "silver", {"Notes": "call after 5"})


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("5551234", "5551234"),
        ("+44 20 7946 0018", "+442079460018"),
        ("(555) 123-4567", "5551234567"),
        ("555.123.4567", "5551234567"),
        ("123", "123"),
        ("1" * 20, "1" * 20),
        ("+" + "9" * 20, "+" + "9" * 20),
    ],
)
def test_good_phone_numbers_are_normalised(raw: str, normalised: str) -> None:
    result = parse_leads_csv(f'phone\n"{raw}"\n')
    assert result.errors == []
    assert [row.phone for row in result.rows] == [normalised]


@pytest.mark.parametrize("raw", ["12", "1" * 21, "555-CALL-NOW", "55+51234", "++5551234", "555/1234", "+", "٥٥٥١٢٣٤"])
def test_bad_phone_numbers_are_row_errors(raw: str) -> None:
    result = parse_leads_csv(f"phone,name\n{raw},x\n")
    assert result.rows == []
    [error] = result.errors
    assert (error.line, error.column) == (2, "phone")
    assert error.message.startswith(f"not a phone number: {raw!r}")


def test_missing_phone_in_a_row() -> None:
    result = parse_leads_csv("name,phone\nAnn,\nBob,5550100\n")
    assert result.errors == [RowError(2, "phone", "no phone number")]
    assert [row.name for row in result.rows] == ["Bob"]


def test_bad_rows_are_reported_and_good_rows_kept() -> None:
    result = parse_leads_csv(
        "phone,value,timezone\n"      # 1
        "5550001,10,Europe/Paris\n"   # 2
        "5550002,-3,\n"               # 3
        "5550003,1e3,Mars/Olympus\n"  # 4
        "5550004,,America\n"          # 5
        "5550005,.5,UTC\n"            # 6
    )
    assert [row.line for row in result.rows] == [2, 6]
    assert result.rows[1].value == Decimal("0.5")
    assert [(e.line, e.column) for e in result.errors] == [
        (3, "value"), (4, "value"), (4, "timezone"), (5, "timezone"),
    ]
    assert result.errors[0].message == "must be 0 or more, not -3"
    assert result.errors[2].message.startswith("unknown time zone 'Mars/Olympus'")


def test_line_numbers_count_quoted_fields_spanning_lines_and_blank_lines() -> None:
    result = parse_leads_csv(
        'phone,notes\n'            # 1
        '5550001,"first\n'         # 2
        'second\n'                 # 3
        'third"\n'                 # 4
        '\n'                       # 5
        'bad,x\n'                  # 6
        '5550002,"a\nb"\n'         # 7-8
        'also bad,\n'              # 9
    )
    assert [row.line for row in result.rows] == [2, 7]
    assert result.rows[0].data == {"notes": "first\nsecond\nthird"}
    assert [e.line for e in result.errors] == [6, 9]


def test_duplicate_phone_names_the_earlier_line() -> None:
    result = parse_leads_csv("phone,name\n555-0100,Ann\n5550200,Bob\n(555) 0100,Ann again\n")
    assert [row.name for row in result.rows] == ["Ann", "Bob"]
    assert result.errors == [RowError(4, "phone", "5550100 is already on line 2")]


def test_semicolon_file_with_decimal_comma_and_byte_order_mark() -> None:
    result = parse_leads_csv("\ufeffphone;name;value\n5550100;Müller, Hans;12,50\n")
    assert result.errors == []
    [row] = result.rows
    assert (row.phone, row.name, row.value) == ("5550100", "Müller, Hans", Decimal("12.50"))


def test_decimal_comma_is_refused_in_a_comma_file() -> None:
    result = parse_leads_csv('phone,value\n5550100,"1,250"\n')
    assert [(e.line, e.column) for e in result.errors] == [(2, "value")]


def test_tab_separated_file() -> None:
    [row] = parse_leads_csv("phone\tname\n555 0100\tAnn, Lee\n").rows
    assert (row.phone, row.name) == ("5550100", "Ann, Lee")


def test_quoted_separator_in_header_does_not_fool_the_sniffer() -> None:
    result = parse_leads_csv('"a;b;c",phone\nx,5550100\n')
    assert result.errors == []
    assert result.rows[0].data == {"a;b;c": "x"}


def test_file_with_bom_and_crlf_read_from_path(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes("\ufeffphone,name\r\n5550100,Zoë\r\n\r\n5550200,\"Ann\r\nLee\"\r\n5550300,Bob\r\n".encode())
    result = parse_leads_csv(path)
    assert result.errors == []
    assert [(row.line, row.name) for row in result.rows] == [(2, "Zoë"), (4, "Ann\r\nLee"), (6, "Bob")]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"phone,name\n5550100,Ann\n5550200,Ren\xe9\n")
    result = parse_leads_csv(path)
    assert result.rows == []
    assert [(e.line, e.column) for e in result.errors] == [(3, None)]


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n", " ,  \n"])
def test_empty_file(text: str) -> None:
    result = parse_leads_csv(text)
    assert result.rows == []
    assert [str(e) for e in result.errors] == [
        "line 1: the file is empty; expected a header row with a 'phone' column"
    ]


def test_header_only_is_no_rows_and_no_errors() -> None:
    assert parse_leads_csv("phone,name\n") == LeadImport([], [])
    assert parse_leads_csv("phone") == LeadImport([], [])


def test_missing_header_is_recognised() -> None:
    result = parse_leads_csv("5550100,Ann\n5550200,Bob\n")
    assert result.rows == []
    [error] = result.errors
    assert error.line == 1 and error.message.startswith("no header row")


def test_header_without_phone_column_lists_what_it_found() -> None:
    [error] = parse_leads_csv("\nname,email\nAnn,a@example.com\n").errors
    assert str(error) == "line 2: no 'phone' (or 'number') column in the header; found 'name', 'email'"


def test_header_with_both_phone_and_number_is_refused() -> None:
    result = parse_leads_csv("phone,number\n5550100,5550200\n")
    assert result.rows == []
    assert [(e.line, e.column) for e in result.errors] == [(1, "number")]


def test_header_with_a_column_twice_is_refused() -> None:
    result = parse_leads_csv("phone,Name,name\n5550100,a,b\n")
    assert result.rows == []
    assert [(e.line, e.column) for e in result.errors] == [(1, "name")]


def test_trailing_empty_columns_are_ignored_but_stray_values_are_not() -> None:
    result = parse_leads_csv("phone,name,\n5550100,Ann,\n5550200,Bob,oops\n5550300\n")
    assert [row.phone for row in result.rows] == ["5550100", "5550300"]
    assert result.errors == [RowError(3, None, "a value in column 3, which has no header: 'oops'")]


def test_malformed_quoting_is_reported_with_its_line() -> None:
    result = parse_leads_csv('phone,name\n5550100,"Ann"x\n5550200,Bob\n')
    assert [row.phone for row in result.rows] == ["5550200"]
    [error] = result.errors
    assert error.line == 2 and error.message.startswith("malformed CSV")


def test_row_error_renders_line_and_column() -> None:
    assert str(RowError(7, "phone", "no phone number")) == "line 7: phone: no phone number"


@given(st.lists(st.from_regex(r"\+?[0-9]{3,20}", fullmatch=True), min_size=1, max_size=20, unique=True))
def test_every_valid_unique_number_round_trips(phones: list[str]) -> None:
    text = "phone\n" + "".join(f"{phone}\n" for phone in phones)
    result = parse_leads_csv(text)
    assert result.errors == []
    assert [(row.line, row.phone) for row in result.rows] == [(i + 2, p) for i, p in enumerate(phones)]
