"""Config values bound for AMI are refused where they enter: `dialer validate` names
`file:line: field` (issue 11, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.cli.main import main

CAMPAIGN = """\
name: c
type: telemarketing
trunk: {trunk}
caller_id: {caller_id}
queue: {queue}
abandon_message: {abandon_message}
"""
GOOD = {
    "trunk": "PJSIP/{number}@carrier",
    "caller_id": "'\"Acme\" <+15550100>'",
    "queue": "sales",
    "abandon_message": "custom/abandon",
}
CRLF = '"x\\r\\nAction: Originate\\r\\nApplication: System"'


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err.splitlines()


def test_good_values_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CAMPAIGN.format(**GOOD))
    assert validate(path, capsys) == (0, [])


@pytest.mark.parametrize(
    ("field", "line", "value"),
    [
        ("trunk", 3, '"PJSIP/{number}@carrier\\r\\nAction: Originate"'),
        ("caller_id", 4, CRLF),
        ("queue", 5, CRLF),
        ("abandon_message", 6, CRLF),
        ("abandon_message", 6, '"x\\0"'),
        ("trunk", 3, '"PJSIP/{number}@carrier\\nApplication: System"'),
    ],
)
def test_a_line_break_or_nul_in_a_campaign_value_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, line: int, value: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CAMPAIGN.format(**{**GOOD, field: value}))
    code, errors = validate(path, capsys)
    assert code == 1
    (error,) = errors
    assert error.startswith(f"{path}:{line}: {field}: ")
    assert "line break" in error or "NUL" in error or "not a valid" in error


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("trunk", "PJSIP/{number}@carrier&PJSIP/x", "not a dial string"),
        ("trunk", "PJSIP/carrier", "{number}"),
        ("caller_id", "'\"A\" <1> , x'", "not a caller ID"),
        ("caller_id", "'+1555 0100'", "not a caller ID"),
        ("abandon_message", "../../etc/passwd", "no '..'"),
        ("abandon_message", "a,b", "not a sound file"),
        ("queue", "sales,t", "not a valid queue name"),
    ],
)
def test_names_must_match_their_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: str, words: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CAMPAIGN.format(**{**GOOD, field: value}))
    code, errors = validate(path, capsys)
    assert code == 1 and len(errors) == 1 and f": {field}: " in errors[0] and words in errors[0], errors


AGENTS = """\
ami:
  - username: dialer
    secret: x
agents:
  - id: agent1
    interface: {interface}
    queues: [{queue}]
tiers:
  - name: key
    rank: 1
campaign_dir: campaigns
"""


@pytest.mark.parametrize(
    ("interface", "queue", "where"),
    [
        ('"PJSIP/agent1\\r\\nAction: Originate"', "sales", "6: agents.0.interface"),
        ("PJSIP/agent1", '"sales\\r\\nAction: Command"', "7: agents.0.queues.0"),
        ("PJSIP/agent1&PJSIP/agent2", "sales", "6: agents.0.interface"),
        ('"PJSIP/agent1\\0"', "sales", "6: agents.0.interface"),
    ],
)
def test_an_agent_interface_or_queue_with_a_line_break_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], interface: str, queue: str, where: str
) -> None:
    path = tmp_path / "dialer.yaml"
    path.write_text(AGENTS.format(interface=interface, queue=queue))
    code, errors = validate(path, capsys)
    assert code == 1
    (error,) = errors
    assert error.startswith(f"{path}:{where}: "), error


def test_tier_routing_queues_and_the_ami_username_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        CAMPAIGN.format(**GOOD) + 'tiers:\n  routing:\n    key:\n      queue: "vip\\r\\nAction: Command"\n'
    )
    code, errors = validate(campaign, capsys)
    assert code == 1 and errors[0].startswith(f"{campaign}:10: tiers.routing.key.queue: "), errors
    config = tmp_path / "dialer.yaml"
    config.write_text(
        AGENTS.format(interface="PJSIP/agent1", queue="sales").replace(
            "username: dialer", 'username: "dialer\\r\\nAction: Command"'
        )
    )
    code, errors = validate(config, capsys)
    assert code == 1 and errors[0].startswith(f"{config}:2: ami.0.username: "), errors


def test_the_sounds_directory_asterisk_plays_from_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "dialer.yaml"
    config.write_text(
        AGENTS.format(interface="PJSIP/agent1", queue="sales") + 'ivr:\n  asterisk_sounds_dir: "/var/s,x"\n'
    )
    code, errors = validate(config, capsys)
    assert code == 1 and errors[0].startswith(f"{config}:13: ivr.asterisk_sounds_dir: "), errors
