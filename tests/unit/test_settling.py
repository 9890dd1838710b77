"""A campaign ended while its abandon window is over its limit settles first (issue 16).

The rules judge the abandon rate over the campaign: one stopped by hand at 3 abandons in
35 answers keeps 8.57 %. An end (stop, `enabled: false`, the file removed) asked over the
limit dials progressively until the window's rate is at or under it, then takes the state
asked; `now` ends at once and says so in the log; a pause is a break and settles nothing.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from dialer.config.models import Campaign, DialingConfig
from dialer.control.campaign_states import CampaignControls, ControlError, RunState, over_limit_note
from dialer.core import records as r
from dialer.core.abandon import AbandonState, AbandonWindow, answers_needed
from dialer.core.agents import AgentBoard
from dialer.core.outcomes import abandon_rate
from dialer.core.pacing import PacingMode
from dialer.daemon.campaign_runner import CampaignRunner

T = 1_800_000_000.0


# -- the pure figure ----------------------------------------------------------------------


@given(
    answered=st.integers(min_value=0, max_value=5000),
    abandoned=st.integers(min_value=0, max_value=5000),
    limit=st.sampled_from([0.03, 0.02, 0.025, 0.05, 0.2, 0.5, 1.0]) | st.floats(min_value=1e-3, max_value=1.0),
)
def test_the_answers_needed_are_the_fewest_that_bring_the_rate_to_the_limit(
    answered: int, abandoned: int, limit: float
) -> None:
    abandoned = min(abandoned, answered)
    needed = answers_needed(abandoned, answered, limit)
    assert needed is not None and needed >= 0
    # After n clean answers the rate is at or under the limit; after n - 1 it is not.
    assert abandon_rate(abandoned, answered + needed) <= limit
    if needed > 0:
        assert abandon_rate(abandoned, answered + needed - 1) > limit
    assert AbandonState(answered=answered, abandoned=abandoned, limit=limit).answers_needed == needed


def test_the_figures_of_the_exposure_and_the_edges() -> None:
    # The 5-agent half hour that ended at 35 answers with 3 abandons: 100 answers make 3 %.
    assert answers_needed(3, 35, 0.03) == 65
    assert answers_needed(3, 100, 0.03) == 0
    assert answers_needed(0, 0, 0.03) == 0
    assert answers_needed(1, 1, 0.03) == 33  # 1/34 = 2.94 %
    assert answers_needed(1, 1, 0.0) is None  # no answer brings an abandon under a limit of 0
    with pytest.raises(ValueError):
        answers_needed(2, 1, 0.03)


# -- the state machine ---------------------------------------------------------------------


class Runner:
    """What the controls see of a runner: its flags and its abandon window."""

    def __init__(self, answered: int = 0, abandoned: int = 0, limit: float = 0.03) -> None:
        self.paused = False
        self.settling = False
        self.limit = limit
        self.window = AbandonWindow()
        for n in range(answered):
            self.window.record(T - 600, abandoned=n < abandoned)

    def answer(self, count: int = 1) -> None:
        for _ in range(count):
            self.window.record(T, abandoned=False)

    def abandon_state(self, now: float) -> AbandonState:
        return self.window.state(now, self.limit)


def campaign(name: str = "spring", **fields: object) -> Campaign:
    return Campaign(name=name, type="telemarketing", trunk="PJSIP/{number}@carrier", caller_id="+15550100",
                    queue="sales", **fields)  # type: ignore[arg-type]


def controls_over(runners: dict[str, Runner], draining: bool = False) -> CampaignControls:
    controls = CampaignControls(lambda: runners, lambda: draining, clock=lambda: T)
    for name in runners:
        controls.file_seen(campaign(name), None)
    controls.apply()
    return controls


async def test_a_stop_over_the_limit_settles_then_stops_once_the_rate_is_there() -> None:
    runner = Runner(answered=35, abandoned=3)
    controls = controls_over({"spring": runner})
    with capture_logs() as logs:
        assert await controls.stop("spring") is RunState.settling
    assert (runner.paused, runner.settling) == (False, True)
    settling = [e for e in logs if e["event"] == "campaign.settling"]
    assert settling and settling[0]["answers_needed"] == 65 and settling[0]["asked"] == "stopped"
    assert controls.window("spring").answers_needed == 65  # type: ignore[union-attr]
    runner.answer(64)
    controls.settle()
    assert controls.state("spring") is RunState.settling and not runner.paused
    runner.answer()
    with capture_logs() as logs:
        controls.settle()
    assert controls.state("spring") is RunState.stopped
    assert (runner.paused, runner.settling) == (True, False)
    assert [e["state"] for e in logs if e["event"] == "campaign.settled"] == ["stopped"]
    # A stop asked again changes nothing; the window stays at its limit.
    assert await controls.stop("spring") is RunState.stopped


async def test_a_stop_at_or_under_the_limit_stops_at_once_as_before() -> None:
    for answered, abandoned in ((0, 0), (100, 3), (35, 1)):
        runner = Runner(answered, abandoned)
        controls = controls_over({"spring": runner})
        with capture_logs() as logs:
            assert await controls.stop("spring") is RunState.stopped
        assert (runner.paused, runner.settling) == (True, False)
        assert not [e for e in logs if e["log_level"] == "warning"]


async def test_now_stops_at_once_and_leaves_the_figures_in_the_log() -> None:
    runner = Runner(answered=35, abandoned=3)
    controls = controls_over({"spring": runner})
    with capture_logs() as logs:
        assert await controls.stop("spring", now=True) is RunState.stopped
    assert runner.paused and not runner.settling
    [warning] = [e for e in logs if e["event"] == "campaign.stopped_over_limit"]
    assert warning["log_level"] == "warning"
    assert {k: warning[k] for k in ("campaign", "rate", "answered", "abandoned", "limit", "answers_needed")} == {
        "campaign": "spring", "rate": 0.0857, "answered": 35, "abandoned": 3, "limit": 0.03, "answers_needed": 65,
    }
    # `now` also ends a settling already under way.
    other = Runner(answered=35, abandoned=3)
    controls = controls_over({"autumn": other})
    assert await controls.stop("autumn") is RunState.settling
    with capture_logs() as logs:
        assert await controls.stop("autumn", now=True) is RunState.stopped
    assert other.paused and not other.settling
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["campaign.stopped_over_limit"]
    # A campaign already stopped is not ended again: no warning.
    with capture_logs() as logs:
        assert await controls.stop("autumn", now=True) is RunState.stopped
    assert not [e for e in logs if e["log_level"] == "warning"]


async def test_a_removed_file_and_enabled_false_settle_too() -> None:
    removed, disabled = Runner(answered=10, abandoned=1), Runner(answered=10, abandoned=1)
    controls = controls_over({"gone": removed, "off": disabled})
    controls.file_removed("gone")
    controls.file_seen(campaign("off", enabled=False), None)
    controls.apply()
    assert controls.state("gone") is RunState.settling and controls.state("off") is RunState.settling
    assert not removed.paused and removed.settling and not disabled.paused and disabled.settling
    # A settling campaign whose file is gone or disabled cannot be started: it settles on.
    with pytest.raises(ControlError, match="no file"):
        await controls.start("gone")
    removed.answer(24)  # 1 / 34 = 2.94 %
    disabled.answer(23)  # 1 / 33 = 3.03 %
    controls.settle()
    assert controls.state("gone") is RunState.removed and controls.state("off") is RunState.settling
    assert removed.paused and not disabled.paused
    disabled.answer()
    controls.settle()
    assert controls.state("off") is RunState.disabled
    assert removed.paused and disabled.paused
    # The file back, enabled: it runs again (as a removed file's campaign always did).
    controls.file_seen(campaign("off"), None)
    controls.apply()
    assert controls.state("off") is RunState.running and not disabled.paused


async def test_a_pause_over_the_limit_does_not_settle_but_says_so() -> None:
    runner = Runner(answered=35, abandoned=3)
    controls = controls_over({"spring": runner})
    with capture_logs() as logs:
        assert await controls.pause("spring") is RunState.paused
    assert runner.paused and not runner.settling
    [warning] = [e for e in logs if e["event"] == "campaign.paused_over_limit"]
    assert (warning["rate"], warning["answers_needed"]) == (0.0857, 65)
    note = over_limit_note(RunState.paused, runner.abandon_state(T))
    assert note is not None and "8.57 %" in note and "65 more" in note
    # Resumed, it runs the same window. Stopped from the pause over the limit, it does not
    # start dialing again (an operator often pauses because something is wrong): it stops,
    # keeps its rate, and the log says so.
    assert await controls.resume("spring") is RunState.running
    await controls.pause("spring")
    with capture_logs() as logs:
        assert await controls.stop("spring") is RunState.stopped
    assert (runner.paused, runner.settling) == (True, False)
    [ended] = [e for e in logs if e["event"] == "campaign.stopped_over_limit"]
    assert ended["answers_needed"] == 65
    # The same for a paused campaign whose file says enabled: false.
    other = Runner(answered=35, abandoned=3)
    controls = controls_over({"autumn": other})
    await controls.pause("autumn")
    controls.file_seen(campaign("autumn", enabled=False), None)
    controls.apply()
    assert controls.state("autumn") is RunState.disabled and other.paused and not other.settling


async def test_a_settling_campaign_resumed_or_started_simply_runs() -> None:
    runner = Runner(answered=35, abandoned=3)
    controls = controls_over({"spring": runner})
    assert await controls.stop("spring") is RunState.settling
    assert await controls.resume("spring") is RunState.running
    assert (runner.paused, runner.settling) == (False, False)
    assert await controls.stop("spring") is RunState.settling
    assert await controls.start("spring") is RunState.running
    assert (runner.paused, runner.settling) == (False, False)
    # Paused while settling: the brake works, as stop --now does; the end asked stands.
    assert await controls.stop("spring") is RunState.settling
    with capture_logs() as logs:
        assert await controls.pause("spring") is RunState.stopped
    assert (runner.paused, runner.settling) == (True, False)
    assert [e["answers_needed"] for e in logs if e["event"] == "campaign.stopped_over_limit"] == [65]


async def test_the_daemon_shutdown_settles_nothing() -> None:
    runner = Runner(answered=35, abandoned=3)
    runners = {"spring": runner}
    draining = [False]
    controls = CampaignControls(lambda: runners, lambda: draining[0], clock=lambda: T)
    controls.file_seen(campaign(), None)
    draining[0] = True
    controls.file_removed("spring")
    controls.apply()
    assert controls.state("spring") is RunState.draining
    assert runner.paused and not runner.settling
    draining[0] = False
    assert controls.state("spring") is RunState.removed


# -- the runner: progressive while settling, whatever its mode --------------------------------


def test_a_settling_runner_places_one_call_per_free_agent_whatever_its_mode() -> None:
    board = AgentBoard({"agent1": "PJSIP/agent1", "agent2": "PJSIP/agent2"})
    for interface in ("PJSIP/agent1", "PJSIP/agent2"):
        board.apply(r.MemberStatus(at=T, queue="sales", interface=interface, status=1, paused=False, in_call=False))
    dialing = DialingConfig(mode="ratio", ratio=3.0, max_lines=20)
    runner = CampaignRunner(campaign(dialing=dialing), 1, store=None, ami=None, board=board, agent_ids={})  # type: ignore[arg-type]
    # A young window over its limit (1 abandon in 11 answers: 9 %) whose leads left will
    # bring enough answers that the young budget lets it bet: the exposure itself.
    for n in range(11):
        runner.learn("abandoned" if n == 0 else "answered", T - 100, T - 95, None if n == 0 else T - 94, T - 60)
    runner.core.count_leads(1000)
    assert runner.abandon_state(T).answers_needed == 23
    assert runner.snapshot(T).abandon.exhausted(0.03, 0.025) is False
    assert runner.core.decide(runner.view(), T, lines_left=20) == 6  # ratio 3 x 2 free agents
    runner.settling = True
    runner.snapshot(T)  # each tick reads the campaign's settings again
    assert runner.core.settings.policy.mode is PacingMode.progressive
    assert runner.core.decide(runner.view(), T, lines_left=20) == 2
    runner.settling = False
    runner.snapshot(T)
    assert runner.core.settings.policy.mode is PacingMode.ratio
    assert math.isclose(runner.abandon_state(T).rate, 1 / 11)
