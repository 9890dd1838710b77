"""The shipped `manager.conf` on a real Asterisk: the dialer's AMI user can do what the
daemon does and nothing that runs commands on the PBX host (issue 11, items 1 and 2).

Raw AMI over a socket, logged in as the sandbox's `dialer` user, which is the
shipped `asterisk-conf/manager.conf` with its placeholders filled.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest

from dialer.ami.events import SUBSCRIBED
from dialer.sandbox import SandboxState

pytestmark = pytest.mark.sandbox


class RawAmi:
    def __init__(self, sandbox: SandboxState) -> None:
        self.conn = socket.create_connection((sandbox.ami.host, sandbox.ami.port), timeout=10)
        self.buffer = b""
        self.events: list[dict[str, str]] = []
        """Events that arrived while waiting for replies."""
        self.conn.recv(100)  # the banner line
        login = self.send(
            {"Action": "Login", "Username": sandbox.ami.username, "Secret": sandbox.ami.secret, "Events": "off"}
        )
        assert login["Response"] == "Success", login

    def send(self, fields: dict[str, str]) -> dict[str, str]:
        action_id = uuid.uuid4().hex
        block = "".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": action_id}.items()) + "\r\n"
        self.conn.sendall(block.encode())
        while True:
            while b"\r\n\r\n" not in self.buffer:
                chunk = self.conn.recv(65536)
                assert chunk, "AMI closed the connection"
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            reply = dict(
                line.split(": ", 1) for line in raw.decode(errors="replace").split("\r\n") if ": " in line
            )
            if reply.get("ActionID") == action_id and "Response" in reply:
                return reply
            if "Event" in reply:
                self.events.append(reply)

    def close(self) -> None:
        self.conn.sendall(b"Action: Logoff\r\n\r\n")
        self.conn.close()


@pytest.fixture
def ami(sandbox: SandboxState) -> RawAmi:
    session = RawAmi(sandbox)
    yield session  # type: ignore[misc]
    session.close()


def test_the_dialer_user_may_not_run_cli_commands(ami: RawAmi) -> None:
    reply = ami.send({"Action": "Command", "Command": "core show version"})
    assert reply["Response"] == "Error", reply
    assert reply["Message"] == "Permission denied", reply


@pytest.mark.parametrize("application", ["System", "TrySystem", "Exec"])
def test_the_dialer_user_may_not_originate_into_a_shell(ami: RawAmi, sandbox: SandboxState, application: str) -> None:
    marker = f"/tmp/owned-{uuid.uuid4().hex}"
    data = f"touch {marker}" if "System" in application else f"System(touch {marker})"
    reply = ami.send(
        {
            "Action": "Originate",
            "Channel": "Local/s@dialer-agents",
            "Application": application,
            "Data": data,
            "Async": "true",
        }
    )
    assert reply["Response"] == "Error", reply
    assert reply["Message"].startswith("Originate Access Forbidden"), reply
    assert not (Path(sandbox.root) / marker.lstrip("/")).exists()


def test_the_dialer_user_may_do_what_the_daemon_does(ami: RawAmi) -> None:
    # The refusals above are about those actions, not a user that may do nothing.
    for fields in (
        {"Action": "Ping"},
        {"Action": "CoreShowChannels"},
        {"Action": "QueueStatus", "Queue": "sales"},
        {"Action": "UserEvent", "UserEvent": "DialerRightsCheck", "Attempt": "none"},
        {"Action": "QueueAdd", "Queue": "support", "Interface": "PJSIP/agent3", "Paused": "true"},
        {"Action": "QueuePause", "Queue": "support", "Interface": "PJSIP/agent3", "Paused": "true"},
        {"Action": "QueueRemove", "Queue": "support", "Interface": "PJSIP/agent3"},
        {"Action": "Originate", "Channel": "Local/s@dialer-agents", "Application": "Wait", "Data": "0",
         "Async": "true"},
    ):
        reply = ami.send(fields)
        assert reply["Response"] == "Success", (fields, reply)
    hangup = ami.send({"Action": "Hangup", "Channel": "PJSIP/no-such-channel-00000000"})
    # Allowed, and refused only for want of the channel.
    assert hangup["Message"] != "Permission denied", hangup


def test_the_dialer_user_receives_only_the_events_the_daemon_reads(ami: RawAmi) -> None:
    # The Filter action needs `system` write, which this user has not: the daemon's own
    # Filter is refused, and manager.conf's eventfilter lines hold back the rest.
    refused = ami.send({"Action": "Filter", "Operation": "Add", "MatchCriteria": "action(include),name(Hangup)"})
    assert refused["Message"] == "Permission denied", refused
    assert ami.send({"Action": "Events", "EventMask": "on"})["Response"] == "Success"
    # A caller ID and a variable: unfiltered, NewCallerid and NewConnectedLine come too.
    reply = ami.send(
        {"Action": "Originate", "Channel": "Local/1@dialer-agents", "Application": "Wait", "Data": "1",
         "CallerID": "Check <100>", "Variable": "DIALER_CHECK=1", "Async": "true"}
    )
    assert reply["Response"] == "Success", reply
    deadline = time.monotonic() + 10
    while sum(e["Event"] == "Hangup" for e in ami.events) < 2 and time.monotonic() < deadline:
        ami.send({"Action": "Ping"})
        time.sleep(0.1)
    names = {e["Event"] for e in ami.events}
    assert {"Newchannel", "Hangup", "OriginateResponse"} <= names, names
    assert names <= set(SUBSCRIBED), names - set(SUBSCRIBED)
