"""The IVR flow model: what an `ivr/*.yaml` file holds (format in `ivr/README.md`).

Pydantic checks each value; whether the nodes fit together (references, reachability,
loops) is `dialer.ivr.checks`' job, so every such problem can name the line it is on.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from dialer.ami.values import check_sound

NAME = r"^[A-Za-z0-9_-]+$"
_BOOL_WORDS = {True: "yes", False: "no"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPrompt(_Strict):
    """Rendered to sound with the TTS when the daemon starts (cached by text and voice)."""

    text: str = Field(min_length=1, max_length=2000)


class SoundPrompt(_Strict):
    """A sound file Asterisk already has: a name (`custom/welcome`) or a path, no extension."""

    sound: str = Field(min_length=1, pattern=r"^[^.\s][^\s]*$")

    @field_validator("sound")
    @classmethod
    def _no_extension(cls, sound: str) -> str:
        # The name goes into an AGI command line: the same rule as a sound sent over AMI
        # (no control characters, no '..'), so a flow file cannot add AGI commands.
        check_sound(sound)
        if sound.rsplit("/", 1)[-1].count("."):
            raise ValueError("give the sound without its extension; Asterisk picks the format")
        return sound


def _prompt_kind(value: object) -> str:
    if isinstance(value, SoundPrompt) or (isinstance(value, dict) and "sound" in value):
        return "sound"
    return "text"


# Tagged, so a bad sound prompt gets the sound's error only, not the text form's too.
Prompt = Annotated[
    Annotated[TextPrompt, Tag("text")] | Annotated[SoundPrompt, Tag("sound")], Discriminator(_prompt_kind)
]


class Rating(_Strict):
    type: Literal["rating"]
    min: int = Field(1, ge=0, le=9)
    max: int = Field(5, ge=0, le=9)

    @model_validator(mode="after")
    def _ordered(self) -> Rating:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self

    def accepts(self, digits: str) -> str | None:
        if len(digits) == 1 and digits.isdigit() and self.min <= int(digits) <= self.max:
            return digits
        return None

    def values(self) -> list[str]:
        return [str(v) for v in range(self.min, self.max + 1)]

    @property
    def max_digits(self) -> int:
        return 1


class YesNo(_Strict):
    type: Literal["yes_no"]
    yes: str = Field("1", pattern=r"^[0-9*#]$")
    no: str = Field("2", pattern=r"^[0-9*#]$")

    @model_validator(mode="after")
    def _distinct(self) -> YesNo:
        if self.yes == self.no:
            raise ValueError("yes and no need different keys")
        return self

    def accepts(self, digits: str) -> str | None:
        return {self.yes: "yes", self.no: "no"}.get(digits)

    def values(self) -> list[str]:
        return ["yes", "no"]

    @property
    def max_digits(self) -> int:
        return 1


class Digits(_Strict):
    """Free digits (an amount, a code), ended by # or the timeout."""

    type: Literal["digits"]
    min_length: int = Field(1, ge=1, le=20)
    max_length: int = Field(4, ge=1, le=20)

    @model_validator(mode="after")
    def _ordered(self) -> Digits:
        if self.min_length > self.max_length:
            raise ValueError("min_length must not exceed max_length")
        return self

    def accepts(self, digits: str) -> str | None:
        if digits.isdigit() and self.min_length <= len(digits) <= self.max_length:
            return digits
        return None

    def values(self) -> list[str]:
        return []  # any digit string: branches are not per value

    @property
    def max_digits(self) -> int:
        return self.max_length


Answer = Annotated[Rating | YesNo | Digits, Field(discriminator="type")]


class QuestionNode(_Strict):
    type: Literal["question"]
    say: str
    answer: Answer
    timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for a key after the prompt")
    retries: int = Field(1, ge=0, le=5, description="times the question is asked again after a timeout or a wrong key")
    when: dict[str, str] = Field(default_factory=dict, description="answer value -> node")
    next: str | None = Field(None, description="node for any answer not in `when`")
    no_answer: str | None = Field(None, description="node when retries are used up (default: next)")

    @field_validator("when", mode="before")
    @classmethod
    def _keys_as_text(cls, when: object) -> object:
        # YAML reads `1: retention` with an integer key and `no: agent` with a boolean
        # one (YAML 1.1 booleans are yes/no/on/off); the answer value is text.
        if isinstance(when, dict):
            return {_BOOL_WORDS[k] if isinstance(k, bool) else str(k): v for k, v in when.items()}
        return when


class MessageNode(_Strict):
    type: Literal["message"]
    say: str
    next: str


class TransferNode(_Strict):
    """Ends the IVR: the customer goes to an agent queue (e.g. retention after a low score)."""

    type: Literal["transfer"]
    say: str | None = None
    queue: str = Field(pattern=NAME)


class HangupNode(_Strict):
    type: Literal["hangup"]
    say: str | None = None


Node = Annotated[QuestionNode | MessageNode | TransferNode | HangupNode, Field(discriminator="type")]


class OptOut(_Strict):
    """A key that, at any question, puts the number on the do-not-call list and ends the call."""

    key: str = Field("9", pattern=r"^[0-9*#]$")
    say: str | None = None


class Flow(_Strict):
    name: str = Field(pattern=NAME, max_length=64)
    description: str | None = None
    voice: str = Field("en", pattern=r"^[A-Za-z0-9_+-]+$", description="espeak-ng voice for text prompts")
    prompts: dict[str, Prompt] = Field(min_length=1)
    start: str
    invalid: str | None = Field(None, description="prompt played after a key that is not an answer")
    no_input: str | None = Field(None, description="prompt played after a timeout, before asking again")
    opt_out: OptOut | None = None
    nodes: dict[str, Node] = Field(min_length=1)

    @field_validator("prompts", mode="before")
    @classmethod
    def _plain_text_prompts(cls, prompts: object) -> object:
        # `welcome: "Hello"` is short for `welcome: {text: "Hello"}`.
        if isinstance(prompts, dict):
            return {k: {"text": v} if isinstance(v, str) else v for k, v in prompts.items()}
        return prompts
