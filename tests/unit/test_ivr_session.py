"""The AGI side of an IVR call: commands sent, answers stored, hang-ups; and the FastAGI server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dialer.config.models import Campaign, DialerConfig
from dialer.core import records as r
from dialer.ivr.flow import Flow
from dialer.ivr.service import IvrService
from dialer.ivr.session import AgiSession, IvrCall

FLOW = Flow.model_validate(
    {
        "name": "t",
        "prompts": {"intro": "Hello.", "rate": "Rate us.", "sorry": "Sorry.", "bye": "Bye.", "out": "Out."},
        "invalid": "sorry",
        "opt_out": {"key": "9", "say": "out"},
        "start": "intro",
        "nodes": {
            "intro": {"type": "message", "say": "intro", "next": "rate"},
            "rate": {"type": "question", "say": "rate", "answer": {"type": "rating"}, "timeout": 2,
                     "when": {"1": "agent"}, "next": "bye"},
            "agent": {"type": "transfer", "queue": "retention"},
            "bye": {"type": "hangup", "say": "bye"},
        },
    }
)
SOUNDS = {name: f"/snd/{name}" for name in FLOW.prompts}


class FakeAgi:
    """Replies as Asterisk would, from a script of results; records the commands."""

    def __init__(self, replies: list[dict[str, Any]]) -> None:
        self.replies: Iterator[dict[str, Any]] = iter(replies)
        self.commands: list[str] = []

    async def send_command(self, command: str) -> dict[str, Any]:
        self.commands.append(command)
        return next(self.replies, {"status_code": 200, "result": ("0", "")})


class FakeSurveys:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def start_survey(self, attempt_id: str, campaign_id: int, flow: str, at: datetime) -> None:
        self.calls.append(("start", attempt_id, flow))

    async def add_answer(self, attempt_id: str, campaign_id: int, seq: int, answer: Any, at: datetime) -> None:
        self.calls.append(("answer", seq, answer.question, answer.value, answer.status.value))

    async def end_survey(self, attempt_id: str, status: str, at: datetime) -> None:
        self.calls.append(("end", status))

    async def opt_out(self, phone: str, campaign_id: int, attempt_id: str, at: datetime) -> bool:
        self.calls.append(("opt_out", phone))
        return True


def ok(result: str = "0", data: str = "") -> dict[str, Any]:
    return {"status_code": 200, "result": (result, data)}


HANGUP = {"error": "AGIResultHangup", "msg": "User hungup during execution"}


async def run(replies: list[dict[str, Any]]) -> tuple[FakeAgi, FakeSurveys, list[r.CallRecord], str]:
    agi, surveys, records = FakeAgi(replies), FakeSurveys(), []

    async def notify(record: r.CallRecord) -> None:
        records.append(record)

    call = IvrCall("att1", 7, "camp", "5550001", FLOW, SOUNDS)
    status = await AgiSession(agi, call, surveys, notify, clock=lambda: 100.0).run()
    return agi, surveys, records, status.value


async def test_a_completed_survey() -> None:
    agi, surveys, records, status = await run([ok("0"), ok("4")])
    assert agi.commands == [
        "STREAM FILE /snd/intro 0123456789*#",
        "GET DATA /snd/rate 2000 1",
        'STREAM FILE /snd/bye ""',
    ]
    assert surveys.calls == [("start", "att1", "t"), ("answer", 1, "rate", "4", "answered"), ("end", "completed")]
    assert records == [r.IvrStarted("att1", 100.0, "t"), r.IvrEnded("att1", 100.0, "completed")]
    assert status == "completed"


async def test_a_key_pressed_during_an_earlier_prompt_is_the_answer() -> None:
    agi, surveys, _, _ = await run([ok(str(ord("5")))])
    assert agi.commands[1] == 'STREAM FILE /snd/bye ""'
    assert ("answer", 1, "rate", "5", "answered") in surveys.calls


async def test_a_wrong_key_then_a_good_one() -> None:
    agi, surveys, _, _ = await run([ok("0"), ok("7"), ok("0"), ok("3")])
    assert agi.commands[2:4] == ["STREAM FILE /snd/sorry 0123456789*#", "GET DATA /snd/rate 2000 1"]
    assert ("answer", 1, "rate", "3", "answered") in surveys.calls


async def test_a_timeout_reads_as_nothing_pressed() -> None:
    # `200 result= (timeout)` has no value: panoramisk leaves the default ('', '').
    _, surveys, _, _ = await run([ok("0"), ok("", ""), ok("", "")])
    assert ("answer", 1, "rate", None, "timeout") in surveys.calls


async def test_opt_out_is_stored_before_the_goodbye() -> None:
    agi, surveys, _, status = await run([ok("0"), ok("9")])
    assert status == "opted_out"
    assert surveys.calls[-2:] == [("opt_out", "5550001"), ("end", "opted_out")]
    assert agi.commands[-1] == 'STREAM FILE /snd/out ""'


async def test_a_transfer_sets_the_queue_for_the_dialplan() -> None:
    agi, _, _, status = await run([ok("0"), ok("1")])
    assert status == "transferred"
    assert agi.commands[-1] == "SET VARIABLE DIALER_TRANSFER_QUEUE retention"


async def test_a_hang_up_leaves_a_partial_survey() -> None:
    _, surveys, records, status = await run([ok("0"), HANGUP])
    assert status == "partial"
    assert surveys.calls == [("start", "att1", "t"), ("end", "partial")]
    assert records[-1] == r.IvrEnded("att1", 100.0, "partial")


async def test_a_closed_connection_is_a_hang_up() -> None:
    class Broken(FakeAgi):
        async def send_command(self, command: str) -> dict[str, Any]:
            raise ValueError("invalid literal for int() with base 10: ''")

    surveys = FakeSurveys()

    async def notify(record: r.CallRecord) -> None:
        pass

    call = IvrCall("att1", 7, "camp", "5550001", FLOW, SOUNDS)
    assert (await AgiSession(Broken([]), call, surveys, notify, clock=lambda: 1.0).run()).value == "partial"


def campaign(**extra: Any) -> Campaign:
    return Campaign.model_validate(
        {"name": "c", "type": "survey", "trunk": "PJSIP/{number}@carrier", "caller_id": "1", "queue": "q", **extra}
    )


def test_variables_the_originate_carries() -> None:
    config = DialerConfig.model_validate({"ami": [{"username": "u", "secret": "s"}]})
    service = IvrService(config, {"t": FLOW}, {"t": SOUNDS}, {"Call us back.": "/snd/abandon", "Hi machine.": "/snd/m"})
    plain = campaign()
    assert service.variables(plain) == {}
    full = campaign(
        ivr="t",
        abandon_text="Call us back.",
        amd={"enabled": True, "on_machine": "leave_message", "message": "Hi machine.",
             "parameters": {"initial_silence": 2000, "after_greeting_silence": 700}},
    )
    assert service.variables(full) == {
        "DIALER_ABANDON_MSG": "/snd/abandon",
        "DIALER_IVR": "t",
        "DIALER_AMD": "1",
        "DIALER_AMD_PARAMS": "2000^^700",
        "DIALER_ON_MACHINE": "leave_message",
        "DIALER_MACHINE_MSG": "/snd/m",
    }


async def test_the_fastagi_server_runs_a_flow_for_a_known_attempt(tmp_path: Path) -> None:
    config = DialerConfig.model_validate({"ami": [{"username": "u", "secret": "s"}], "agi": {"port": 0}})
    service = IvrService(config, {"t": FLOW}, {"t": SOUNDS}, {})
    owner = SimpleNamespace(campaign=campaign(ivr="t"), campaign_id=7, attempts={"att1": SimpleNamespace(phone="555")})
    surveys, records = FakeSurveys(), []

    async def notify(record: r.CallRecord) -> None:
        records.append(record)

    await service.start(lambda: [owner], surveys, notify, clock=lambda: 5.0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        # Asterisk's side: the AGI environment, then one reply per command.
        writer.write(b"agi_network: yes\nagi_network_script: ivr\nagi_uniqueid: att1\nagi_arg_1: att1\n\n")
        commands = []
        for reply in (b"200 result=0 endpos=100\n", b"200 result=4\n", b"200 result=0 endpos=100\n"):
            commands.append((await reader.readline()).decode().strip())
            writer.write(reply)
        assert await reader.read() == b""  # the session is over: the server closes the socket
        writer.close()
        await writer.wait_closed()
    finally:
        await service.stop()
    assert commands == ["STREAM FILE /snd/intro 0123456789*#", "GET DATA /snd/rate 2000 1", 'STREAM FILE /snd/bye ""']
    assert ("answer", 1, "rate", "4", "answered") in surveys.calls
    assert records[-1] == r.IvrEnded("att1", 5.0, "completed")


async def test_an_unknown_attempt_is_hung_up() -> None:
    config = DialerConfig.model_validate({"ami": [{"username": "u", "secret": "s"}], "agi": {"port": 0}})
    service = IvrService(config, {"t": FLOW}, {"t": SOUNDS}, {})

    async def notify(record: r.CallRecord) -> None:
        raise AssertionError("no record for an unknown call")

    await service.start(list, FakeSurveys(), notify)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"agi_network_script: ivr\nagi_arg_1: nobody\n\n")
        assert (await reader.readline()).strip() == b"HANGUP"
        writer.write(b"200 result=1\n")
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    finally:
        await service.stop()
