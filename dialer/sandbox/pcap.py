"""A tiny writer of RTP-in-pcap files, for SIPp's `play_pcap_audio`.

SIPp streams a pcap's UDP payloads to the call's media address with the pcap's own
timing, so a simulated customer can "speak": the sandbox renders speech to 8 kHz
mu-law and packs it here, 20 ms per RTP packet. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import struct

PCMU = 0
TELEPHONE_EVENT = 101  # the payload type the carrier's SDP offers for RFC 2833 / 4733 DTMF
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
MULAW_SILENCE = b"\xff"
_LINKTYPE_ETHERNET = 1


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(udp_payload: bytes, src_port: int, dst_port: int) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(udp_payload), 0) + udp_payload
    src, dst = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
    ip = header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + udp
    ethernet = b"\0" * 12 + b"\x08\x00"
    return ethernet + ip


def rtp_packets(
    audio: bytes, *, payload_type: int = PCMU, ssrc: int = 0x5EED0001, seq: int = 1, timestamp: int = 0
) -> list[bytes]:
    """RTP packets of 20 ms each; the last frame is padded with silence."""
    packets = []
    for index, start in enumerate(range(0, len(audio), FRAME_SAMPLES)):
        chunk = audio[start : start + FRAME_SAMPLES].ljust(FRAME_SAMPLES, MULAW_SILENCE)
        marker = 0x80 if index == 0 else 0
        header = struct.pack(
            "!BBHII", 0x80, marker | payload_type, (seq + index) & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
        )
        packets.append(header + chunk)
        timestamp += FRAME_SAMPLES
    return packets


def dtmf_packets(key: str, *, ssrc: int, seq: int, timestamp: int, tone_ms: int = 160) -> list[bytes]:
    """One RFC 4733 key press: event packets every 20 ms, then the end packet three times.

    Every packet of one press carries the press's start timestamp; a receiver drops a
    press whose timestamp is not after the last one it took, so callers give each press
    of a call a later `timestamp` (and `seq`) than anything sent before on that SSRC.
    """
    event = DTMF_EVENTS[key]
    packets = []
    steps = max(1, tone_ms // 20)
    for index in range(steps + 3):
        end = index >= steps
        duration = FRAME_SAMPLES * min(index + 1, steps)
        marker = 0x80 if index == 0 else 0
        header = struct.pack(
            "!BBHII", 0x80, marker | TELEPHONE_EVENT, (seq + index) & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
        )
        packets.append(header + struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration))
    return packets


def rtp_pcap(audio: bytes, *, src_port: int = 6000, dst_port: int = 6002, ssrc: int = 0x5EED0001) -> bytes:
    """A pcap (Ethernet, IPv4, UDP) holding `audio` (8 kHz mu-law) as PCMU RTP, 20 ms apart."""
    return pcap_of(rtp_packets(audio, ssrc=ssrc), src_port=src_port, dst_port=dst_port)


def pcap_of(packets: list[bytes], *, src_port: int = 6000, dst_port: int = 6002) -> bytes:
    """A pcap (Ethernet, IPv4, UDP) sending the RTP `packets` 20 ms apart."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for index, packet in enumerate(packets):
        micros = index * 20_000
        frame = _frame(packet, src_port, dst_port)
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def silence(seconds: float) -> bytes:
    return MULAW_SILENCE * int(seconds * SAMPLE_RATE)
