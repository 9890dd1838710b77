"""The sounds directory reaches AGI command lines: it is checked like any sound.

Found attacking issue 11: `IvrService.prepare` checked the directory Asterisk plays
rendered prompts from only when a campaign had an abandon or machine text. A flow's
text prompts are played from there too (`STREAM FILE <dir>/tts-... 0123456789*#`),
so a `sounds_dir` with a space split the AGI command (the prompt never played) and
one with a line break added AGI commands of its own (`EXEC System ...`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.config.loader import load_config
from dialer.ivr.service import IvrService, IvrSetupError
from dialer.ivr.session import AgiSession, IvrCall
from dialer.config.models import Campaign

FLOWS = Path(__file__).resolve().parents[2] / "ivr"


class RecordingAgi:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def send_command(self, command: str) -> dict[str, Any]:
        self.lines.append(command)
        return {"result": ("1", "")}


class NoStore:
    async def start_survey(self, *args: Any) -> None: ...
    async def add_answer(self, *args: Any) -> None: ...
    async def end_survey(self, *args: Any) -> None: ...
    async def opt_out(self, *args: Any) -> bool:
        return True


@pytest.mark.parametrize("sounds", ["my sounds", "sounds\nEXEC System touch /tmp/owned"], ids=["space", "newline"])
async def test_a_sounds_dir_that_would_break_an_agi_line_is_refused_at_start(tmp_path: Path, sounds: str) -> None:
    shutil.copytree(FLOWS, tmp_path / "ivr")
    (tmp_path / "campaigns").mkdir()
    path = tmp_path / "dialer.yaml"
    path.write_text(yaml.safe_dump({
        "ami": [{"username": "dialer", "secret": "x"}],
        "campaign_dir": "campaigns",
        "ivr": {"flow_dir": "ivr", "sounds_dir": sounds},
    }))
    config = load_config(path)
    campaign = Campaign(name="survey", type="survey", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                        queue="sales", ivr="callback-check")
    try:
        ivr = await IvrService.prepare(config, [campaign])
    except IvrSetupError as refused:
        assert "asterisk_sounds_dir" in str(refused)
        return
    # Not refused: what the first AGI command of a call would carry.
    agi = RecordingAgi()
    flow = ivr.flows["callback-check"]
    call = IvrCall("a1", 1, "survey", "+15551234", flow, ivr.sounds[flow.name])

    async def notify(record: object) -> None:
        pass

    await AgiSession(agi, call, NoStore(), notify, clock=lambda: 0.0).run()  # type: ignore[arg-type]
    pytest.fail(f"started with a sounds directory that breaks AGI lines: {agi.lines[0]!r}")


async def test_an_agi_line_with_a_line_break_is_never_sent() -> None:
    """The session's last guard: whatever a sound name holds, no line break reaches Asterisk."""
    from dialer.ivr.loader import load_flow_dir

    flows, _ = load_flow_dir(FLOWS)
    flow = flows["callback-check"]
    sounds = {name: "custom/x\nEXEC System touch /tmp/owned" for name in flow.prompts}
    agi = RecordingAgi()

    async def notify(record: object) -> None:
        pass

    call = IvrCall("a1", 1, "survey", "+15551234", flow, sounds)
    status = await AgiSession(agi, call, NoStore(), notify, clock=lambda: 0.0).run()  # type: ignore[arg-type]
    assert agi.lines == [] and status.value == "partial"
