"""The campaign core's learning, fed records as the daemon and the simulator feed it."""

from __future__ import annotations

from dialer.core import records as r
from dialer.core.campaign import CallToPlace, CampaignCore, CoreSettings
from dialer.core.originate import CampaignDialplan
from dialer.core.pacing import PacingMode, PacingPolicy

SETTINGS = CoreSettings(
    policy=PacingPolicy(mode=PacingMode.predictive, max_lines=10), general_queue="sales", agent_wait=2,
    ring_timeout=25,
)
DIALPLAN = CampaignDialplan(campaign="spring", queue="sales", agent_wait=2)


def placed(core: CampaignCore, attempt_id: str = "a1", at: float = 100.0) -> None:
    core.place([CallToPlace(attempt_id, 1, "+12025550100")], at, DIALPLAN)


def test_a_live_answer_is_learned_when_the_customer_joins_the_queue_and_only_once() -> None:
    core = CampaignCore(SETTINGS)
    placed(core)
    core.observe(r.ChannelState("a1", 104.0, 6))
    assert core.stats.attempts_seen == 0  # up, but AMD or an IVR may still say it was no one
    core.observe(r.QueueJoined("a1", 104.5, "sales"))
    assert core.stats.attempts_seen == 1
    core.observe(r.AgentConnected("a1", 105.0, "sales", "PJSIP/agent1"))
    core.observe(r.ChannelHangup("a1", 165.0, 16, "Normal Clearing"))
    [finished] = core.settle(165.0)
    assert finished.outcome == "answered"
    assert core.stats.attempts_seen == 1 and core.stats.talks_seen == 1
    assert core.abandon_window.state(165.0, 0.03).answered == 1


def test_an_answer_the_pbx_cut_short_is_taken_back() -> None:
    core = CampaignCore(SETTINGS)
    placed(core)
    core.observe(r.QueueJoined("a1", 104.0, "sales"))
    assert core.stats.attempts_seen == 1
    core.pbx_shutdown(r.PbxShutdown(at=110.0, restart=True))
    core.observe(r.ChannelHangup("a1", 110.5, 0, "Unknown"))
    [finished] = core.settle(110.5)
    assert finished.attempt.cut_short
    assert core.stats.attempts_seen == 0
    assert core.abandon_window.state(110.5, 0.03).answered == 0


def test_without_a_measured_wrapup_each_talk_counts_the_queues_0_s_and_with_one_none_is_invented() -> None:
    for measured, wrapups in ((False, (0.0,)), (True, ())):
        core = CampaignCore(SETTINGS, wrapup_measured=measured)
        placed(core)
        core.observe(r.AgentConnected("a1", 105.0, "sales", "PJSIP/agent1"))
        core.observe(r.ChannelHangup("a1", 165.0, 16, "Normal Clearing"))
        core.settle(165.0)
        assert core.stats.wrapup_samples() == wrapups
        core.wrapup_ended(7.5)
        assert core.stats.wrapup_samples() == (*wrapups, 7.5)
