"""One IVR call over FastAGI: plays what the interpreter asks, reads keys, stores answers.

Only I/O lives here; every decision is `dialer.ivr.interpreter.Survey`'s. Answers are
written as they come, and the survey row starts as `partial`, so a customer who hangs
up (or a daemon that dies) leaves a partial survey, never a lost one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from dialer.ami.values import problem_in_header_value
from dialer.core import records as r
from dialer.ivr.flow import Flow
from dialer.ivr.interpreter import Action, Ask, End, FlowError, Survey, SurveyStatus

log = structlog.get_logger("dialer.ivr")

ESCAPE_DIGITS = "0123456789*#"
COMMAND_TIMEOUT_S = 120.0
TRANSFER_VARIABLE = "DIALER_TRANSFER_QUEUE"


class ChannelGone(Exception):
    """The customer hung up, or the AGI connection broke."""


class AgiRequest(Protocol):
    """What the session needs of panoramisk's fast_agi Request (a fake in unit tests)."""

    async def send_command(self, command: str) -> dict[str, Any]: ...


class SurveyWriter(Protocol):
    async def start_survey(self, attempt_id: str, campaign_id: int, flow: str, at: datetime) -> None: ...
    async def add_answer(self, attempt_id: str, campaign_id: int, seq: int, answer: Any, at: datetime) -> None: ...
    async def end_survey(self, attempt_id: str, status: str, at: datetime) -> None: ...
    async def opt_out(self, phone: str, campaign_id: int, attempt_id: str, at: datetime) -> bool: ...


@dataclass(frozen=True)
class IvrCall:
    attempt_id: str
    campaign_id: int
    campaign: str
    phone: str
    flow: Flow
    sounds: Mapping[str, str]
    """Prompt name -> what Asterisk plays."""


RecordSink = Callable[[r.CallRecord], Awaitable[None]]


class AgiSession:
    def __init__(
        self, request: AgiRequest, call: IvrCall, store: SurveyWriter, notify: RecordSink, clock: Callable[[], float]
    ) -> None:
        self.request = request
        self.call = call
        self.store = store
        self.notify = notify
        self.clock = clock
        self.survey = Survey(call.flow)
        self._seq = 0
        self._log = log.bind(attempt=call.attempt_id, campaign=call.campaign, flow=call.flow.name)

    async def run(self) -> SurveyStatus:
        call = self.call
        await self.store.start_survey(call.attempt_id, call.campaign_id, call.flow.name, self._now())
        await self.notify(r.IvrStarted(call.attempt_id, self.clock(), call.flow.name))
        try:
            action: Action = self.survey.begin()
            while isinstance(action, Ask):
                await self._keep(action.answer)
                digits = await self._ask(action)
                action = self.survey.press(digits, self.clock())
            await self._finish(action)
        except (ChannelGone, FlowError) as exc:
            self.survey.hung_up()
            self._log.info("ivr.ended_early", reason=str(exc) or type(exc).__name__)
        finally:
            status = self.survey.status
            if status is SurveyStatus.running:  # an unexpected error: keep what we have
                status = SurveyStatus.partial
            await self.store.end_survey(call.attempt_id, status.value, self._now())
            await self.notify(r.IvrEnded(call.attempt_id, self.clock(), status.value))
            self._log.info("ivr.finished", status=status.value, answers=len(self.survey.answers))
        return status

    async def _keep(self, answer: Any) -> None:
        if answer is None:
            return
        self._seq += 1
        await self.store.add_answer(self.call.attempt_id, self.call.campaign_id, self._seq, answer, self._now())
        self._log.info("ivr.answer", question=answer.question, value=answer.value, status=answer.status.value)

    async def _finish(self, end: End) -> None:
        await self._keep(end.answer)
        if end.status is SurveyStatus.opted_out:
            # Stored before the goodbye plays: the customer may hang up on it.
            added = await self.store.opt_out(self.call.phone, self.call.campaign_id, self.call.attempt_id, self._now())
            self._log.info("ivr.opted_out", number=self.call.phone, new=added)
        if end.queue is not None:
            await self._command(f"SET VARIABLE {TRANSFER_VARIABLE} {end.queue}")
        for prompt in end.prompts:
            await self._command(f"STREAM FILE {self._sound(prompt)} \"\"")

    async def _ask(self, ask: Ask) -> str:
        """Play the prompts; keys pressed during any of them count as the answer."""
        *before, last = ask.prompts
        for prompt in before:
            result = await self._command(f"STREAM FILE {self._sound(prompt)} {ESCAPE_DIGITS}")
            pressed = _digit(result)
            if pressed:
                if ask.max_digits == 1:
                    return pressed
                rest = await self._get_data("silence/1", ask.timeout, ask.max_digits - 1)
                return pressed + rest
        return await self._get_data(self._sound(last), ask.timeout, ask.max_digits)

    async def _get_data(self, sound: str, timeout: float, max_digits: int) -> str:
        result = await self._command(f"GET DATA {sound} {int(timeout * 1000)} {max_digits}")
        value = result.get("result", ("", ""))[0]
        return value if value and value != "-1" else ""

    def _sound(self, prompt: str) -> str:
        return self.call.sounds.get(prompt, prompt)

    async def _command(self, line: str) -> dict[str, Any]:
        # The last guard, as the AMI gateway's: AGI is a line protocol too, and a line
        # break in a value would send a command of its own (EXEC System ...).
        problem = problem_in_header_value(line)
        if problem is not None:
            self._log.error("ivr.unsafe_command_refused", command=line.split()[0], problem=problem)
            raise ChannelGone(f"AGI command refused before sending: {problem}")
        try:
            result = await asyncio.wait_for(self.request.send_command(line), COMMAND_TIMEOUT_S)
        except (TimeoutError, ValueError, OSError, asyncio.IncompleteReadError) as exc:
            # panoramisk fails to parse the empty line of a closed socket (ValueError).
            raise ChannelGone(f"{line.split()[0]}: {exc!r}") from exc
        if result.get("error") in ("AGIResultHangup", "AGIAppError"):
            raise ChannelGone(result.get("msg", "hangup"))
        if result.get("error"):
            self._log.warning("ivr.agi_error", command=line, result=result)
        return result

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


def _digit(result: Mapping[str, Any]) -> str:
    """STREAM FILE's result: the ASCII code of the key that stopped the prompt, 0 for none."""
    try:
        code = int(result.get("result", ("0", ""))[0])
    except ValueError:
        return ""
    return chr(code) if code > 0 else ""
