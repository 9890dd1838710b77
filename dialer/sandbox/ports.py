"""The ports one sandbox uses, all on 127.0.0.1."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class SandboxPorts:
    sip: int = 5060  # Asterisk PJSIP (UDP)
    ami: int = 5038  # Asterisk AMI (TCP)
    rtp_start: int = 10000
    rtp_end: int = 10999
    # SIPp also binds its control port (+1) and media echo ports (+2, +4)
    # next to each of these, so keep 10 ports free from each.
    carrier: int = 5080  # SIPp playing the carrier and its customers
    agents: int = 5090  # SIPp playing every agent phone
    agi: int = 4573  # FastAGI, for the dialplan's IVR

    @classmethod
    def offset(cls, n: int) -> "SandboxPorts":
        """A sandbox that can run beside the default one: every port shifted by n.

        RTP ranges of sandboxes closer than 1000 apart overlap; Asterisk skips
        a port in use, so that only narrows each range.
        """
        base = cls()
        return cls(**{f.name: getattr(base, f.name) + n for f in fields(cls)})

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> "SandboxPorts":
        return cls(**{f.name: int(data[f.name]) for f in fields(cls)})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def listening(self) -> list[tuple[str, int]]:
        """Every (protocol, port) this sandbox binds, for a clash check before start."""
        return [
            ("udp", self.sip),
            ("tcp", self.ami),
            ("udp", self.carrier),
            ("udp", sipp_control_port(self.carrier)),
            ("udp", sipp_media_port(self.carrier)),
            ("udp", self.agents),
            ("udp", sipp_control_port(self.agents)),
            ("udp", sipp_media_port(self.agents)),
        ]


def sipp_control_port(sip_port: int) -> int:
    """SIPp's remote-control port for a SIPp on `sip_port` (it binds one anyway)."""
    return sip_port + 1


def sipp_media_port(sip_port: int) -> int:
    """SIPp's RTP echo port (it also binds this + 2)."""
    return sip_port + 2
