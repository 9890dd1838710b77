"""A campaign's `inbound:` section: customers calling the campaign's number back.

Every value here reaches the dialplan as a channel variable (set over FastAGI),
so each is checked by the AMI value rules (`dialer.ami.values`) where it enters.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from dialer.ami.values import OptionalSound, QueueName, check_did

Did = Annotated[str, AfterValidator(check_did)]


class InboundConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dids: list[Did] = Field(
        [], max_length=64,
        description="numbers this campaign answers on besides its caller ID (+15550199 or digits as the carrier sends them)",
    )
    default_queue: QueueName | None = Field(
        None, description="queue for callers the dialer does not know; default: the campaign's queue"
    )
    max_wait: int = Field(
        60, ge=1, le=600, description="seconds a caller waits for an agent (in all) before the no-agent message"
    )
    no_agent_message: OptionalSound = Field(
        "", description="sound played when no agent came in time; empty: the campaign's abandon message"
    )
    callback_key: str | None = Field(
        "1", pattern=r"^[0-9*#]$", description="key that asks for a callback after the message; null: none offered"
    )
    callback_prompt: OptionalSound = Field("", description="sound asking for the key (empty: the message says it)")
    callback_confirm: OptionalSound = Field("", description="sound played once the callback is booked")
    key_timeout: int = Field(5, ge=1, le=30, description="seconds to wait for the key")
    callback_after_minutes: float = Field(
        0, ge=0, le=60 * 24 * 7, description="the callback is due this long after the request (calling hours still apply)"
    )

    @field_validator("dids")
    @classmethod
    def _unique(cls, dids: list[str]) -> list[str]:
        seen: set[str] = set()
        for did in dids:
            digits = did.lstrip("+")
            if digits in seen:
                raise ValueError(f"DID {did!r} appears twice")
            seen.add(digits)
        return dids
