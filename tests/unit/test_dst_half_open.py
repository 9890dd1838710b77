"""The simulation's PBX link: a half-open spell delays the events (TCP holds them until the link
heals), and a session declared dead meanwhile loses them; none is lost on a session that survives."""

from __future__ import annotations

import asyncio
import random

from dialer.dst.pbx_world import DaemonPbx


def _received(pbx: DaemonPbx) -> list[str]:
    got = []
    while not pbx.events.empty():
        event, _at = pbx.events.get_nowait()
        got.append(event["Uniqueid"])
    return got


async def test_events_in_a_half_open_spell_arrive_when_it_heals_or_die_with_the_session() -> None:
    pbx = DaemonPbx(random.Random(0), ["PJSIP/agent1"], lambda _line: None).logged_in()
    pbx.half_open(0.2)
    pbx._emit({"Event": "Hangup", "Uniqueid": "held", "Cause": "16"})
    assert _received(pbx) == []
    await asyncio.sleep(0.3)
    pbx._emit({"Event": "Hangup", "Uniqueid": "after", "Cause": "16"})
    assert _received(pbx) == ["held", "after"]

    pbx.half_open(0.2)
    pbx._emit({"Event": "Hangup", "Uniqueid": "lost", "Cause": "16"})
    pbx.drop_connection()  # the ping gave up: that session's bytes go with it
    await asyncio.sleep(0.3)
    assert _received(pbx) == []
