"""What may go into an AMI action: the one place values bound for Asterisk are checked.

AMI is a line protocol (`Key: value` lines, a blank line ends an action) and
panoramisk writes values as they are (UTF-8): a CR or LF in any value would
start new headers or whole new actions. So:

- every header value, whatever its source, must pass `check_header_value`
  (no CR, LF, NUL or other control character, nor a Unicode line separator or a
  lone surrogate, which UTF-8 cannot carry); the gateway refuses an action with
  one before a byte is written;
- names Asterisk acts on (queues, channel interfaces, the trunk's dial string,
  caller ID, sound files, channel variable names) must match their pattern:
  they come from config files and the API and are rejected where they enter;
- text that is data, not a name (a customer's name in the screen-pop
  UserEvent, an id in a channel variable) comes from leads and a CRM: it is
  made safe with `header_text` / `variable_text` instead of refusing the call.

The check functions raise ValueError, so they serve as pydantic validators too
(the config loader then reports `file:line: field: message`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

# Generous for any real value (a long Variable line), small enough to be no lever.
MAX_HEADER_VALUE = 4096
MAX_NAME = 64

# C0 and C1 controls, DEL, Unicode's line and paragraph separators, lone surrogates.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
HEADER_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
# The same rule as a JSON-schema pattern for the API (surrogates are checked apart).
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"

# Asterisk's queue names as the dialplan's Queue() takes them: a comma would add
# Queue() options, so letters, digits, `_` and `-` only.
QUEUE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A channel: technology / resource, e.g. PJSIP/agent1, SIP/1001, Local/100@agents/n,
# IAX2/user@host:4569/1001. No `&` (Dial would ring several) nor `,` (options).
INTERFACE_PATTERN = r"^[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9_.@:+#*/-]{1,111}$"
# The trunk template is an interface with one `{number}` in it (checked apart).
TRUNK_PATTERN = r"^[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9_.@:+#*/{}-]{1,111}$"
# A number as a caller ID or inside one: digits, an optional leading +.
_CALLER_NUMBER = r"\+?[0-9]{1,20}"
# `"Name" <+15551234567>`, `Name <+15551234567>` or a bare number. The name is
# printable ASCII without the characters caller-ID parsing gives a meaning.
CALLER_ID_PATTERN = (
    rf'^(?:{_CALLER_NUMBER}|"[\x20-\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]{{0,40}}" <{_CALLER_NUMBER}>'
    rf"|[\x20-\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]{{1,40}} <{_CALLER_NUMBER}>)$"
)
# A sound for Playback(): a name (`dialer-abandon`, `custom/abandon`) or an absolute
# path without extension. `&` would play several files, `,` adds options; `..` is
# refused apart (a regex engine without look-ahead cannot say it).
SOUND_PATTERN = r"^[A-Za-z0-9_./-]{1,255}$"
VARIABLE_NAME_PATTERN = r"^_{0,2}[A-Za-z][A-Za-z0-9_]{0,63}$"

_QUEUE = re.compile(QUEUE_PATTERN)
_INTERFACE = re.compile(INTERFACE_PATTERN)
_TRUNK = re.compile(TRUNK_PATTERN)
_CALLER_ID = re.compile(CALLER_ID_PATTERN)
_SOUND = re.compile(SOUND_PATTERN)
_VARIABLE_NAME = re.compile(VARIABLE_NAME_PATTERN)
_HEADER_KEY = re.compile(HEADER_KEY_PATTERN)

# Channel variable values are split on commas by Originate, and quotes, brackets
# and backslashes change that split: data going into one keeps a plain alphabet.
_VARIABLE_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]")
# What the values the dialer itself puts there are made of: names, sounds,
# interfaces, numbers, AMD()'s `^`-joined arguments.
_VARIABLE_VALUE = re.compile(r"[A-Za-z0-9_.@:+#*/^= -]{0,1024}")


def problem_in_header_value(value: str) -> str | None:
    """Why `value` cannot be an AMI header value, or None if it can."""
    if len(value) > MAX_HEADER_VALUE:
        return f"longer than {MAX_HEADER_VALUE} characters"
    bad = _UNPRINTABLE.search(value)
    if bad is None:
        return None
    char = bad.group()
    if char in "\r\n":
        return "contains a line break (CR or LF), which would add AMI headers or actions"
    if char == "\x00":
        return "contains a NUL character"
    if "\ud800" <= char <= "\udfff":
        return "contains a lone surrogate, which is no character"
    return f"contains the control character {char!r}"


def check_header_value(value: str) -> str:
    problem = problem_in_header_value(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def problem_in_header_key(key: str) -> str | None:
    return None if _HEADER_KEY.fullmatch(key) else "not an AMI header name (letters, digits, _ and -)"


def problems_in_fields(fields: Mapping[str, Any]) -> list[str]:
    """Every header (name and value, each item of a list) that cannot go to AMI as given."""
    problems: list[str] = []
    for key, value in fields.items():
        key_problem = problem_in_header_key(str(key))
        if key_problem is not None:
            problems.append(f"header {str(key)[:40]!r}: {key_problem}")
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            problem = problem_in_header_value(str(item))
            if problem is not None:
                problems.append(f"{key}: {problem}")
    return problems


def interface_problem(channel: str) -> str | None:
    """Why `channel` is no single channel Asterisk can dial (as a number or name
    put into a trunk template may make it), or None."""
    return None if _INTERFACE.fullmatch(channel) else f"{channel[:60]!r} is not one channel (technology/resource)"


def variable_problem(name: str, value: str) -> str | None:
    """Why `name=value` cannot be an Originate `Variable` item, or None if it can."""
    if not _VARIABLE_NAME.fullmatch(name):
        return f"variable {name[:40]!r}: not a channel variable name"
    if not _VARIABLE_VALUE.fullmatch(value):
        return (
            f"variable {name}: value {value[:40]!r} holds a character Originate would split or "
            "strip on (comma, quote, bracket, backslash...) or a control character"
        )
    return None


def _matching(pattern: re.Pattern[str], what: str, example: str) -> Any:
    def check(value: str) -> str:
        check_header_value(value)
        if not pattern.fullmatch(value):
            raise ValueError(f"not a valid {what}, e.g. {example}")
        return value

    return check


check_queue_name = _matching(_QUEUE, "queue name (letters, digits, _ and -, 64 at most)", "sales")
check_interface = _matching(_INTERFACE, "channel interface", "PJSIP/agent1 or Local/100@agents")
check_variable_name = _matching(_VARIABLE_NAME, "channel variable name", "DIALER_QUEUE")


def check_caller_id(value: str) -> str:
    check_header_value(value)
    if not _CALLER_ID.fullmatch(value):
        raise ValueError('not a caller ID: give a number (+15551234567) or "Name" <+15551234567>')
    return value


_DID = re.compile(_CALLER_NUMBER)


def check_did(value: str) -> str:
    """A number a campaign is called on (inbound): digits with an optional leading +."""
    check_header_value(value)
    if not _DID.fullmatch(value):
        raise ValueError("not a DID: digits with an optional leading +, 20 at most, e.g. +15550199")
    return value


def caller_id_number(caller_id: str) -> str:
    """The number in a checked caller ID (`"Name" <+15551234>` -> `+15551234`)."""
    return caller_id.rsplit("<", 1)[-1].rstrip(">")


def check_sound(value: str) -> str:
    """A sound file for Playback(): a name or absolute path, no extension; `..` refused."""
    check_header_value(value)
    if not _SOUND.fullmatch(value) or ".." in value or "//" in value:
        raise ValueError(
            "not a sound file name: letters, digits and _ - / . only, no '..', e.g. custom/abandon"
        )
    return value


def check_optional_sound(value: str) -> str:
    """A sound, or empty for none."""
    return value if value == "" else check_sound(value)


def check_trunk(value: str) -> str:
    """The dial string template: a channel with `{number}` once, e.g. PJSIP/{number}@carrier."""
    check_header_value(value)
    if value.count("{number}") != 1:
        raise ValueError("must contain {number} once, e.g. PJSIP/{number}@carrier")
    if "/" not in value.split("{number}")[0]:
        raise ValueError("must start with a channel technology, e.g. PJSIP/")
    if not _TRUNK.fullmatch(value) or not _INTERFACE.fullmatch(value.replace("{number}", "15551234567")):
        raise ValueError(
            "not a dial string: technology/resource with letters, digits and _ . @ : + # * / - only, "
            "e.g. PJSIP/{number}@carrier"
        )
    return value


def header_text(value: object, limit: int = 200) -> str:
    """Free text made fit for an AMI header: every character the header rule refuses
    (line breaks, NUL, other controls) becomes a space; cut to `limit`."""
    return _UNPRINTABLE.sub(" ", str(value)[:limit])


def variable_text(value: object, limit: int = 64) -> str:
    """Data for a channel variable value: letters, digits and `_.@+-`, the rest `_`."""
    return _VARIABLE_UNSAFE.sub("_", header_text(value, limit))


# Field types for the config models: the checks' messages name what is wrong. (The
# API's schemas put the patterns above into the OpenAPI description as well.)
QueueName = Annotated[str, AfterValidator(check_queue_name)]
Interface = Annotated[str, AfterValidator(check_interface)]
Trunk = Annotated[str, AfterValidator(check_trunk)]
CallerId = Annotated[str, AfterValidator(check_caller_id)]
Sound = Annotated[str, AfterValidator(check_sound)]
OptionalSound = Annotated[str, AfterValidator(check_optional_sound)]
HeaderValue = Annotated[str, AfterValidator(check_header_value)]
