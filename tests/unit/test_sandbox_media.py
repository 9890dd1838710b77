"""The sandbox customers' RTP: pcaps SIPp can play, DTMF presses Asterisk takes in order."""

from __future__ import annotations

import struct
from pathlib import Path

from dialer.sandbox.events import parse_carrier_log
from dialer.sandbox.media import key_presses_xml, write_customer_media
from dialer.sandbox.pcap import (
    TELEPHONE_EVENT,
    dtmf_packets,
    pcap_of,
    rtp_packets,
    rtp_pcap,
    silence,
)


def read_pcap(data: bytes) -> list[tuple[float, bytes]]:
    """(time, UDP payload) of each packet; checks the headers SIPp relies on on the way."""
    magic, major, minor, _, _, _, link = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, 1)
    out, offset = [], 24
    while offset < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + incl]
        assert incl == orig and frame[12:14] == b"\x08\x00" and frame[23] == 17  # IPv4, UDP
        ip_len = struct.unpack("!H", frame[16:18])[0]
        udp_len = struct.unpack("!H", frame[38:40])[0]
        assert ip_len == len(frame) - 14 and udp_len == ip_len - 20
        out.append((sec + usec / 1e6, frame[42:]))
        offset += 16 + incl
    return out


def test_audio_is_cut_in_20ms_pcmu_packets() -> None:
    audio = b"\x10" * 400
    packets = rtp_packets(audio, seq=7, timestamp=1000, ssrc=42)
    assert len(packets) == 3 and all(len(p) == 12 + 160 for p in packets)
    headers = [struct.unpack("!BBHII", p[:12]) for p in packets]
    assert headers == [(0x80, 0x80, 7, 1000, 42), (0x80, 0, 8, 1160, 42), (0x80, 0, 9, 1320, 42)]
    assert packets[-1][12 + 80 :] == b"\xff" * 80  # padded with mu-law silence


def test_a_pcap_plays_its_packets_20ms_apart() -> None:
    played = read_pcap(rtp_pcap(silence(0.1)))
    assert [round(t, 3) for t, _ in played] == [0.0, 0.02, 0.04, 0.06, 0.08]


def test_a_key_press_is_rfc4733_events_ending_three_times() -> None:
    packets = dtmf_packets("9", ssrc=1, seq=100, timestamp=5000)
    events = [struct.unpack("!BBHIIBBH", p) for p in packets]
    assert {e[1] & 0x7F for e in events} == {TELEPHONE_EVENT}
    assert {e[3] for e in events} == {5000}  # one press, one timestamp
    assert {e[4] for e in events} == {1}
    assert [e[5] for e in events] == [9] * len(events)
    ends = [e for e in events if e[6] & 0x80]
    assert len(ends) == 3 and len({e[7] for e in ends}) == 1
    assert [e[2] for e in events] == list(range(100, 100 + len(events)))
    assert events[0][1] & 0x80 and not any(e[1] & 0x80 for e in events[1:])  # marker on the first


def test_presses_in_later_slots_come_later_on_the_same_stream(tmp_path: Path) -> None:
    # SIPp's shipped DTMF pcaps share one SSRC with timestamps in key order, so 4 then 1
    # goes backwards and Asterisk drops the 1; ours must always go forward.
    write_customer_media(tmp_path)
    hello = read_pcap((tmp_path / "hello.pcap").read_bytes())
    last = struct.unpack("!HI", hello[-1][1][2:8])
    ssrc = struct.unpack("!I", hello[0][1][8:12])[0]
    for slot in (1, 2, 3):
        for key in "14":
            first = read_pcap((tmp_path / f"dtmf-{slot}-{key}.pcap").read_bytes())[0][1]
            seq, ts = struct.unpack("!HI", first[2:8])
            assert struct.unpack("!I", first[8:12])[0] == ssrc
            assert (seq, ts) > last
        last = (seq, ts)


def test_the_greeting_is_long_and_the_hello_short(tmp_path: Path) -> None:
    paths = write_customer_media(tmp_path)

    def voiced_seconds(name: str) -> float:
        packets = read_pcap(paths[name].read_bytes())
        return sum(1 for _, p in packets if set(p[12:]) != {0xFF}) * 0.02

    assert voiced_seconds("hello") < 1.5
    assert voiced_seconds("greeting") > 5.0


def test_each_slot_and_key_has_its_pcap_in_the_scenario(tmp_path: Path) -> None:
    xml = key_presses_xml(tmp_path)
    for slot in (1, 2, 3):
        for key in "12345679":
            assert f'play_pcap_audio="{tmp_path}/dtmf-{slot}-{key}.pcap"' in xml
    assert "dtmf-1-8" not in xml and "dtmf-1-0" not in xml  # 8 hangs up, 0 presses nothing


def test_the_carrier_log_has_the_keys_sent() -> None:
    events = parse_carrier_log("dtmf 7014710001 4 c1\ndtmf 7014710001 none c1\n")
    assert [(e.event, e.key) for e in events] == [("dtmf", "4"), ("dtmf", "none")]


def test_pcap_of_nothing_is_a_bare_header() -> None:
    assert len(pcap_of([])) == 24
