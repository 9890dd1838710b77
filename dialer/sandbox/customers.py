"""Simulated customers whose phone number says how they behave.

The sandbox's carrier (SIPp, `scenarios/carrier.xml`) reads the dialled number
and acts it out, so a test or a demo chooses each customer's behaviour by the
number it puts in a lead list:

    <kind: 1 digit><ring seconds: 2 digits><talk seconds: 3 digits><serial: 4 digits>

`1030200007` answers after 3 s, talks 20 s, then hangs up. Pure: no I/O.

Kinds 7-9 speak (RTP from pcaps, see `dialer.sandbox.media`). Kind 7, a survey
customer, reads the three "talk" digits as keys to press, one per slot: slot k comes
SURVEY_FIRST_KEY_S + (k-1) * SURVEY_KEY_STEP_S after the answer; 0 presses nothing,
8 hangs up in that slot. `7014710001` says hello, presses 4, then 7, then 1.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

NUMBER_LENGTH = 10
_NUMBER = re.compile(r"^([0-9])([0-9]{2})([0-9]{3})([0-9]{4})$")


class CustomerKind(enum.IntEnum):
    ANSWER = 1  # answers after ring seconds, hangs up after talk seconds
    BUSY = 2  # 486 after ring seconds
    NO_ANSWER = 3  # rings until Asterisk sends CANCEL
    REJECT = 4  # 603 after ring seconds
    CONGESTION = 5  # 503 after ring seconds
    NOT_FOUND = 6  # 404 at once
    SURVEY = 7  # says "Hello?", presses the talk digits as DTMF keys (see module doc)
    MACHINE = 8  # an answering machine: a long recorded greeting, hangs up after talk seconds
    HELLO = 9  # a person: says "Hello?", then silence, hangs up after talk seconds


SURVEY_FIRST_KEY_S = 4.0
SURVEY_KEY_STEP_S = 4.0
SURVEY_LINGER_S = 10.0
"""A survey customer hangs up this long after its last slot if Asterisk has not."""
HANG_UP_KEY = "8"


# In the dialer's outcome vocabulary: what the attempt's state machine should
# conclude for a customer of each kind.
EXPECTED_OUTCOME: dict[CustomerKind, str] = {
    CustomerKind.ANSWER: "answered",
    CustomerKind.BUSY: "busy",
    CustomerKind.NO_ANSWER: "no_answer",
    CustomerKind.REJECT: "rejected",
    CustomerKind.CONGESTION: "congestion",
    CustomerKind.NOT_FOUND: "failed",
    CustomerKind.MACHINE: "machine",
    # In a queue campaign with a free agent, and an IVR flow followed to its end.
    CustomerKind.HELLO: "answered",
    CustomerKind.SURVEY: "completed",
}

# The SIP final response the carrier sends, where it sends one.
SIP_STATUS: dict[CustomerKind, int] = {
    CustomerKind.BUSY: 486,
    CustomerKind.REJECT: 603,
    CustomerKind.CONGESTION: 503,
    CustomerKind.NOT_FOUND: 404,
}

# Asterisk's hangup cause (AMI Hangup `Cause`) for each failing kind.
HANGUP_CAUSE: dict[CustomerKind, int] = {
    CustomerKind.BUSY: 17,
    CustomerKind.REJECT: 21,
    CustomerKind.CONGESTION: 34,
    CustomerKind.NOT_FOUND: 1,
}


@dataclass(frozen=True)
class CustomerBehaviour:
    number: str
    kind: CustomerKind
    ring_s: int
    talk_s: int
    serial: int

    @property
    def expected_outcome(self) -> str:
        """For kinds 7 and 9 the outcome depends on what the call does with them (queue or IVR)."""
        return EXPECTED_OUTCOME[self.kind]

    @property
    def keys(self) -> str:
        """Kind 7: the keys pressed in the three slots ('0' none, '8' hang up)."""
        return f"{self.talk_s:03d}" if self.kind is CustomerKind.SURVEY else ""

    def key_times(self) -> list[tuple[float, str]]:
        """Kind 7: (seconds after the answer, key) for each slot up to a hang-up."""
        out = []
        for slot, key in enumerate(self.keys):
            out.append((SURVEY_FIRST_KEY_S + slot * SURVEY_KEY_STEP_S, key))
            if key == HANG_UP_KEY:
                break
        return out

    @property
    def sip_status(self) -> int | None:
        return SIP_STATUS.get(self.kind)

    @property
    def hangup_cause(self) -> int | None:
        return HANGUP_CAUSE.get(self.kind)


def survey_number(ring_s: int, keys: str, serial: int) -> str:
    """A kind-7 customer pressing `keys` (three of 0-9, '0' none, '8' hang up)."""
    if len(keys) != 3 or not keys.isdigit():
        raise ValueError(f"keys must be three digits, got {keys!r}")
    return customer_number(CustomerKind.SURVEY, ring_s, int(keys), serial)


def customer_number(kind: CustomerKind | int, ring_s: int, talk_s: int, serial: int) -> str:
    """The number of a customer who behaves as described."""
    kind = CustomerKind(kind)
    for name, value, top in (("ring_s", ring_s, 99), ("talk_s", talk_s, 999), ("serial", serial, 9999)):
        if not 0 <= value <= top:
            raise ValueError(f"{name} must be within 0..{top}, got {value}")
    return f"{int(kind)}{ring_s:02d}{talk_s:03d}{serial:04d}"


def parse_customer_number(number: str) -> CustomerBehaviour:
    """How the sandbox carrier treats `number`; ValueError if outside the scheme."""
    match = _NUMBER.match(number)
    if match is None:
        raise ValueError(f"not a sandbox customer number (10 digits): {number!r}")
    kind_digit, ring, talk, serial = match.groups()
    try:
        kind = CustomerKind(int(kind_digit))
    except ValueError:
        raise ValueError(f"unknown customer kind {kind_digit} in {number!r}") from None
    return CustomerBehaviour(number=number, kind=kind, ring_s=int(ring), talk_s=int(talk), serial=int(serial))
