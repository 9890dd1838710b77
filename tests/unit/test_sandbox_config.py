import json
import stat
from pathlib import Path

import pytest

from dialer.sandbox.ports import SandboxPorts
from dialer.sandbox.render import (
    OPS_FILES,
    SANDBOX_FILES,
    RenderError,
    agent_ids,
    agents_pjsip,
    placeholders,
    render,
    render_sandbox_config,
    sandbox_values,
)
from dialer.sandbox.sandbox import asterisk_conf_dir
from dialer.sandbox.state import AgentPhone, AmiAccess, SandboxState, read_state, write_state


def test_offset_shifts_every_port() -> None:
    base, shifted = SandboxPorts(), SandboxPorts.offset(200)
    assert shifted.sip == base.sip + 200 and shifted.ami == base.ami + 200
    assert shifted.rtp_start == 10200 and shifted.rtp_end == 11199 and shifted.agi == 4773
    assert SandboxPorts.from_dict(shifted.to_dict()) == shifted
    assert len(set(port for _, port in shifted.listening())) == len(shifted.listening())


def test_render_fills_placeholders_and_refuses_missing_ones() -> None:
    assert render("bind = @@SIP_BIND@@\n", {"SIP_BIND": "127.0.0.1:5060"}) == "bind = 127.0.0.1:5060\n"
    with pytest.raises(RenderError, match="pjsip.conf: no value for @@A@@, @@B@@"):
        render("@@B@@ @@A@@", {}, "pjsip.conf")


def test_agents_get_static_contacts_on_the_sipp_port() -> None:
    text = agents_pjsip(agent_ids(2), "127.0.0.1", 5090)
    assert "[agent1](agent-phone)" in text and "[agent2](agent-aor)" in text
    assert "contact = sip:agent2@127.0.0.1:5090" in text
    assert "agent3" not in text


def _rendered() -> dict[str, str]:
    conf = asterisk_conf_dir()
    values = sandbox_values(SandboxPorts.offset(200), "s3cret", "/srv/dialer-sandbox/x", "/usr/lib/mods", "sb-x")
    return render_sandbox_config(
        {name: (conf / name).read_text() for name in OPS_FILES},
        {name: (conf / "sandbox" / name).read_text() for name in SANDBOX_FILES},
        values,
        agent_ids(3),
        5290,
    )


def test_the_shipped_config_renders_with_every_placeholder_filled() -> None:
    files = _rendered()
    assert not any(placeholders(text) for text in files.values())
    assert "bind = 127.0.0.1:5260" in files["pjsip.conf"]
    assert "contact = sip:127.0.0.1:5280" in files["pjsip.conf"]
    assert "secret = s3cret" in files["manager.conf"] and "port = 5238" in files["manager.conf"]
    assert "bindaddr = 127.0.0.1" in files["manager.conf"]
    assert "astetcdir => /srv/dialer-sandbox/x/etc" in files["asterisk.conf"]
    assert "contact = sip:agent3@127.0.0.1:5290" in files["pjsip_agents.conf"]


def test_the_dialplan_contract_is_in_the_shipped_files() -> None:
    conf = asterisk_conf_dir()
    dialplan = (conf / "extensions.conf").read_text()
    for needle in (
        "[dialer-outbound]",
        "exten => answered,1",
        "Set(__DIALER_ATTEMPT=${DIALER_ATTEMPT})",
        "Set(__DIALER_CAMPAIGN=${DIALER_CAMPAIGN})",
        "Queue(${DIALER_QUEUE},b(dialer-agent-leg^s^1),,,${DIALER_AGENT_WAIT})",
        "UserEvent(DialerAbandoned,Attempt: ${DIALER_ATTEMPT},Campaign: ${DIALER_CAMPAIGN}",
        "PJSIP_HEADER(add,X-Dialer-Attempt)=${DIALER_ATTEMPT}",
    ):
        assert needle in dialplan
    queues = (conf / "queues.conf").read_text()
    for needle in ("retry = 1", "ringinuse = no", "autofill = yes", "joinempty = yes", "leavewhenempty = no",
                   "timeoutpriority = app", "wrapuptime = 0", "[sales](dialer-queue)", "[support](dialer-queue)"):
        assert needle in queues
    pjsip = (conf / "pjsip.conf").read_text()
    for needle in ("timers = no", "send_connected_line = no", "direct_media = no", "allow = ulaw,alaw"):
        assert needle in pjsip


def test_state_round_trips_with_mode_0600(tmp_path: Path) -> None:
    state = SandboxState(
        instance="t", workdir=str(tmp_path), root="/r", instance_dir="/r/srv/t", ports=SandboxPorts.offset(7),
        ami=AmiAccess("127.0.0.1", 5045, "dialer", "s3cret"), agents=[AgentPhone("agent1", "PJSIP/agent1")],
        pids={"asterisk": 10, "carrier": 11, "agents": 12}, carrier_trunk="PJSIP/{number}@carrier",
        carrier_events="c", agent_events="a", asterisk_log="m", asterisk_output="o", carrier_output="co",
        agents_output="ao", started_at=1.5,
    )  # fmt: skip
    path = tmp_path / "state.json"
    write_state(path, state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_state(path) == state
    data = json.loads(path.read_text())
    assert data["ami"]["secret"] == "s3cret" and data["agents"] == [{"id": "agent1", "interface": "PJSIP/agent1"}]
    assert state.dial_string("1030200007") == "PJSIP/1030200007@carrier"
