"""An Asterisk that takes AMI logins before it has loaded its modules (a restart).

Asterisk's AMI is up about a second after `core restart`, app_queue later: a QueueAdd
then is "Invalid/unknown command" and the campaign would run with no agents. The login
work waits for `FullyBooted`; a QueueAdd refused so ends the session (logged in again).
"""

from __future__ import annotations

import asyncio
import random

import pytest
from structlog.testing import capture_logs

from dialer.ami.errors import AmiActionFailed, AmiNotBooted, AmiNotConnected
from dialer.pbx.simulated import Customer, SimulatedPbx


def _sim(**kwargs: float) -> SimulatedPbx:
    return SimulatedPbx(random.Random(3), lambda number: Customer("busy", after=0.01), **kwargs)


def _drain(sim: SimulatedPbx) -> list[str]:
    names = []
    while not sim.events.empty():
        names.append(sim.events.get_nowait()[0]["Event"])
    return names


async def _restarted(sim: SimulatedPbx, down_for: float) -> None:
    await sim.connect_once()
    sim.restart(down_for=down_for)
    await asyncio.sleep(1.1 + down_for + 0.01)  # Shutdown, then AMI back
    _drain(sim)


async def test_after_a_restart_a_login_is_taken_before_the_boot_and_waits_for_fully_booted() -> None:
    sim = _sim(boot_seconds=0.5)
    await _restarted(sim, down_for=0.2)
    loop = asyncio.get_running_loop()
    # Asterisk as it is then: logged in, QueueAdd unknown (app_queue not loaded).
    login = asyncio.create_task(sim.connect_once())
    await asyncio.sleep(0.1)
    assert sim.counters["logins"] == 2 and not login.done() and not sim.connected.is_set()
    assert sim._answer("queueadd", {"Queue": "sales", "Interface": "PJSIP/a1"})["Message"] == "Invalid/unknown command"
    began = loop.time()
    await login
    assert 0.3 <= loop.time() - began <= 0.5
    assert sim.connected.is_set() and _drain(sim) == ["FullyBooted"]
    await sim.queue_add("sales", "PJSIP/a1", "a1")
    assert set(sim.queues["sales"]) == {"PJSIP/a1"}
    # Once booted, FullyBooted comes with each login, at once.
    sim.drop_connection()
    _drain(sim)
    await sim.connect_once()
    assert _drain(sim) == ["FullyBooted"]


async def test_a_pbx_that_never_says_fully_booted_is_used_after_the_bounded_wait() -> None:
    sim = _sim(boot_seconds=60)
    sim.boot_timeout = 0.3
    await _restarted(sim, down_for=0.2)
    with capture_logs() as logs:
        await sim.connect_once()
    assert sim.connected.is_set()
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["ami.not_fully_booted"]
    # The second guard: an unknown QueueAdd/QueueStatus means "not booted", not "no such queue".
    with pytest.raises(AmiNotBooted):
        await sim.queue_add("sales", "PJSIP/a1", "a1")
    with pytest.raises(AmiNotBooted):
        await sim.queue_members("sales")
    sim.booted.set()
    with pytest.raises(AmiActionFailed) as refused:
        await sim.queue_add("no-such-queue", "PJSIP/a1", "a1")
    assert not isinstance(refused.value, AmiNotConnected)


async def test_stopping_interrupts_the_wait_for_the_boot() -> None:
    sim = _sim(boot_seconds=60)
    await _restarted(sim, down_for=0.2)
    stopping = asyncio.Event()
    login = asyncio.create_task(sim.connect_once(stopping))
    await asyncio.sleep(0.1)
    stopping.set()
    with pytest.raises(AmiNotConnected):
        await asyncio.wait_for(login, 1)
    assert not sim.connected.is_set()


async def test_the_supervised_session_adds_its_agents_only_once_booted_and_retries_with_backoff() -> None:
    """The daemon's login work (QueueAdd per agent; a refusal for a queue is logged, not fatal)."""
    sim = _sim(boot_seconds=2.0)
    sim.boot_timeout = 0.2  # the first guard gives up soon: the second must hold
    added: list[bool] = []

    async def after_login() -> None:
        try:
            await sim.queue_add("sales", "PJSIP/a1", "a1")
        except AmiActionFailed:
            added.append(False)  # as the daemon does: "no such queue" must not stop the login
            return
        added.append(True)

    sim.on_login(after_login)
    stopping = asyncio.Event()
    await sim.connect_once()
    sim.restart(down_for=0.2)
    with capture_logs() as logs:
        run = asyncio.create_task(sim.run(stopping))
        await asyncio.sleep(1.1 + 0.2 + 2.0 + 3.0)
        stopping.set()
        await asyncio.wait_for(run, 2)
    assert False not in added and added[-1] is True
    assert set(sim.queues["sales"]) == {"PJSIP/a1"}
    # Before the boot: logins ended by the refused QueueAdd, each retried later than the one before.
    refused = [e for e in logs if e["event"] == "ami.session_error"]
    assert refused and all("not fully booted" in e["error"] for e in refused)
    retries = [e["retry_in"] for e in logs if e["event"] == "ami.connection_lost"]
    assert len(retries) >= 2 and max(retries) > 0.5
