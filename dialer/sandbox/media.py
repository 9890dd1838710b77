"""The sandbox customers' voices: speech rendered with espeak-ng + sox, packed as RTP pcaps.

- `hello.pcap`: a person answering, a short "Hello?" then silence, which AMD() calls HUMAN;
- `greeting.pcap`: an answering machine's long recorded greeting, which AMD() calls MACHINE.

Both end in silence (RTP keeps flowing): AMD() gives up with NOTSURE when no frame
comes at all, and a machine's greeting is followed by silence (and the beep) too.

- `dtmf-<slot>-<key>.pcap`: a survey customer's key press in slot 1-3 (RFC 4733).
  SIPp's own DTMF pcaps cannot be played one after another in a call: they share one
  SSRC with sequence numbers and timestamps in key order, so pressing 4 then 1 goes
  backwards and Asterisk drops the 1 as a stale event. Ours continue the hello's
  stream (same SSRC), each slot later in sequence and time than anything before it.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from dialer.ivr.prompts import ensure_tts_tools
from dialer.sandbox.customers import (
    SURVEY_FIRST_KEY_S,
    SURVEY_KEY_STEP_S,
    SURVEY_LINGER_S,
)
from dialer.sandbox.errors import SandboxStartError
from dialer.sandbox.pcap import dtmf_packets, pcap_of, rtp_pcap, silence
from dialer.sandbox.render import render

HELLO_TEXT = "Hello?"
GREETING_TEXT = (
    "Hello, you have reached the Miller family. We cannot take your call right now. "
    "Please leave your name, your number and a short message after the tone, and we will call you back."
)
HELLO_SILENCE_S = 4.0
CUSTOMER_SSRC = 0x5EED0001
SLOTS = 3
PRESSABLE = "1234567" + "9"  # 0 = press nothing, 8 = hang up (see customers.py)
GREETING_SILENCE_S = 4.0


def speech_mulaw(text: str, workdir: Path) -> bytes:
    """`text` as 8 kHz mono mu-law samples."""
    ensure_tts_tools()
    wav, raw = workdir / "speech.wav", workdir / "speech.ul"
    for argv in (
        ["espeak-ng", "-v", "en", "-w", str(wav), "--", text],
        ["sox", str(wav), "-r", "8000", "-c", "1", "-t", "ul", str(raw)],
    ):
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise SandboxStartError(f"`{argv[0]}` failed making customer audio: {done.stderr.strip()[-500:]}")
    return raw.read_bytes()


def write_customer_media(directory: Path) -> dict[str, Path]:
    """Write hello.pcap and greeting.pcap into `directory` (kept if already there)."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {
        "hello": (HELLO_TEXT, HELLO_SILENCE_S, CUSTOMER_SSRC),
        "greeting": (GREETING_TEXT, GREETING_SILENCE_S, 0x5EED0002),
    }
    paths = {}
    for name, (text, tail, ssrc) in wanted.items():
        path = directory / f"{name}.pcap"
        if not path.is_file():
            with tempfile.TemporaryDirectory(dir=directory) as tmp:
                audio = speech_mulaw(text, Path(tmp)) + silence(tail)
                partial = Path(tmp) / "out.pcap"
                partial.write_bytes(rtp_pcap(audio, ssrc=ssrc))
                partial.replace(path)
        paths[name] = path
    for slot in range(1, SLOTS + 1):
        for key in PRESSABLE:
            path = directory / f"dtmf-{slot}-{key}.pcap"
            if not path.is_file():
                # 20 s of stream time and 1000 packets per slot: always past the hello.
                packets = dtmf_packets(key, ssrc=CUSTOMER_SSRC, seq=1000 * slot, timestamp=160_000 * slot)
                path.write_bytes(pcap_of(packets))
            paths[f"dtmf-{slot}-{key}"] = path
    return paths


def key_presses_xml(media: Path) -> str:
    """The scenario's dispatch from (slot, key) to the pcap that presses it."""
    lines = [
        '  <nop next="slot1_keys" test="at_slot1"/>',
        '  <nop next="slot2_keys" test="at_slot2"/>',
        '  <nop next="slot3_keys"/>',
    ]
    for slot in range(1, SLOTS + 1):
        lines.append(f'  <label id="slot{slot}_keys"/>')
        *tested, last = PRESSABLE
        lines += [f'  <nop next="s{slot}k{key}" test="is_k{key}"/>' for key in tested]
        lines.append(f'  <nop next="s{slot}k{last}"/>')
        for key in PRESSABLE:
            lines += [
                f'  <label id="s{slot}k{key}"/>',
                "  <nop>",
                "    <action>",
                f'      <log message="dtmf [$number] {key} [call_id] [timestamp]"/>',
                f'      <exec play_pcap_audio="{media}/dtmf-{slot}-{key}.pcap"/>',
                "    </action>",
                "  </nop>",
                '  <nop next="pressed"/>',
            ]
    return "\n".join(lines)


def write_carrier_scenario(template: Path, workdir: Path) -> Path:
    """The carrier scenario with its voice placeholders filled, written into `workdir`.

    The customers' pcaps are made first (in `workdir/media`), since SIPp loads every
    pcap a scenario names when it starts.
    """
    media = workdir / "media"
    write_customer_media(media)
    text = render(template.read_text(), survey_timing_values(media), f"scenarios/{template.name}")
    target = workdir / template.name
    target.write_text(text)
    return target


def survey_timing_values(media: Path) -> dict[str, str]:
    return {
        "MEDIA_DIR": str(media),
        "KEY_PRESSES": key_presses_xml(media),
        "FIRST_KEY_MS": str(int(SURVEY_FIRST_KEY_S * 1000)),
        "KEY_STEP_MS": str(int(SURVEY_KEY_STEP_S * 1000)),
        "LINGER_MS": str(int(SURVEY_LINGER_S * 1000)),
    }
