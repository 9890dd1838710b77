"""Cells of the CSV files people open in a spreadsheet: the one escaping place.

Excel, LibreOffice and Google Sheets read a cell that starts with `=`, `+`, `-`
or `@` as a formula, and also after a leading tab or carriage return; a formula
such as `=cmd|' /C calc'!A0` (DDE) or `=HYPERLINK(...)` runs or leaks data when
the export is opened. A survey answer, a customer name or a disposition note can
come from outside, so every such cell gets a leading `'`, which spreadsheets
take as "this is text" and do not show.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain signed number (+15551234, -3.5) evaluates to itself and nothing else:
# left as it is, E.164 numbers keep their form for the tools that read the file.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def spreadsheet_cell(value: object) -> object:
    """`value` as a CSV cell that no spreadsheet evaluates; non-text values pass through."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value
