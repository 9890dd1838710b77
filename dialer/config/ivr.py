"""Settings for the IVR side, part of `dialer.config.models`: FastAGI, sounds, AMD.

Config models like the others (the IVR package reads them; the config imports nothing of the IVR).
"""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dialer.ami.values import Sound


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgiConfig(_Strict):
    """Where the daemon's FastAGI server listens; the dialplan's `DIALER_AGI` must point here."""

    host: str = "127.0.0.1"
    port: int = Field(4573, ge=0, le=65535, description="0 picks a free port (tests)")


class IvrConfig(_Strict):
    flow_dir: Path = Path("ivr")
    """The IVR flows (`*.yaml`); relative to the config file's directory."""
    sounds_dir: Path = Path("sounds")
    """Where rendered prompts are written; relative to the config file's directory."""
    asterisk_sounds_dir: Sound | None = None
    """The same directory as Asterisk sees it (a chroot, or a copy on the Asterisk host); default: sounds_dir.
    Played through channel variables: letters, digits and `_-/.` only."""


class OnMachine(str, enum.Enum):
    hangup = "hangup"
    leave_message = "leave_message"


class FalsePositives(str, enum.Enum):
    """How calls AMD took for a machine count in the abandon rate."""

    ignore = "ignore"  # US practice: a machine is no live answer
    count_as_abandoned = "count_as_abandoned"  # UK Ofcom: an estimated share were people, count them as abandoned


class AmdParameters(_Strict):
    """Asterisk AMD() arguments in milliseconds (words for maximum_number_of_words); unset = amd.conf."""

    initial_silence: int | None = Field(None, ge=0, le=30000)
    greeting: int | None = Field(None, ge=0, le=30000)
    after_greeting_silence: int | None = Field(None, ge=0, le=30000)
    total_analysis_time: int | None = Field(None, ge=0, le=30000)
    min_word_length: int | None = Field(None, ge=0, le=30000)
    between_words_silence: int | None = Field(None, ge=0, le=30000)
    maximum_number_of_words: int | None = Field(None, ge=0, le=100)
    silence_threshold: int | None = Field(None, ge=0, le=32767)
    maximum_word_length: int | None = Field(None, ge=0, le=30000)

    def argument(self) -> str:
        """AMD()'s positional arguments, with `^` for commas (channel variables cannot hold commas in Originate)."""
        values = [getattr(self, name) for name in type(self).model_fields]
        while values and values[-1] is None:
            values.pop()
        return "^".join("" if v is None else str(v) for v in values)


class AmdConfig(_Strict):
    enabled: bool = False
    on_machine: OnMachine = OnMachine.hangup
    message: str | None = Field(None, min_length=1, max_length=1000, description="text left on the machine")
    parameters: AmdParameters = AmdParameters()
    false_positives: FalsePositives = FalsePositives.ignore
    false_positive_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="estimated share of machine verdicts that were people"
    )

    @model_validator(mode="after")
    def _message_when_leaving_one(self) -> AmdConfig:
        if self.on_machine is OnMachine.leave_message and not self.message:
            raise ValueError("on_machine: leave_message needs a message")
        return self
