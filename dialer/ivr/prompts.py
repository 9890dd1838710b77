"""Text prompts rendered to sound files Asterisk can play: espeak-ng, then sox to 8 kHz mono.

A file is named after the hash of its voice and text, so rendering is done once per
distinct text and a changed text never plays a stale file. The daemon renders every
prompt it needs when it starts (flows, the abandon message, the machine message);
`asterisk_name` is how Asterisk then refers to a file (a path without extension), which
differs from the daemon's own path when Asterisk runs in a chroot or on another host
that receives a copy of the directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dialer.apt import AptError, install_packages
from dialer.ivr.flow import Flow, SoundPrompt, TextPrompt

# command -> Debian package
TTS_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}
# Bump when the rendering changes, so cached files are made again.
RENDER_VERSION = "1"
RENDER_TIMEOUT_S = 60.0


class PromptError(RuntimeError):
    """A prompt could not be rendered (no TTS installed, espeak-ng or sox failed)."""


@dataclass(frozen=True)
class SoundPlaces:
    directory: Path
    """Where the daemon writes rendered prompts."""
    asterisk_directory: str
    """The same directory as Asterisk sees it."""

    def asterisk_name(self, file: Path) -> str:
        return f"{self.asterisk_directory.rstrip('/')}/{file.stem}"


def prompt_stem(text: str, voice: str) -> str:
    digest = hashlib.sha256(f"{RENDER_VERSION}\0{voice}\0{text}".encode()).hexdigest()[:20]
    return f"tts-{digest}"


def ensure_tts_tools() -> None:
    """Install espeak-ng and sox from Debian when missing and running as root; else explain."""
    missing = sorted({pkg for cmd, pkg in TTS_PACKAGES.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PromptError(
            f"text prompts need {' and '.join(missing)}: `apt-get install --no-install-recommends {' '.join(missing)}`"
        )
    # The same lock-aware installer as the sandbox's: another apt at work makes us wait, not fail.
    try:
        install_packages(missing)
    except AptError as exc:
        raise PromptError(str(exc)) from exc


def render_text(text: str, voice: str, directory: Path) -> Path:
    """The 8 kHz mono 16-bit wav for `text`, rendered now unless already cached."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{prompt_stem(text, voice)}.wav"
    if target.is_file() and target.stat().st_size > 44:
        return target
    ensure_tts_tools()
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        raw = Path(tmp) / "espeak.wav"
        converted = Path(tmp) / "out.wav"
        _run(["espeak-ng", "-v", voice, "-w", str(raw), "--", text])
        _run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(converted)])
        # Readable by Asterisk whatever user it runs as.
        converted.chmod(0o644)
        os.replace(converted, target)
    return target


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PromptError(f"`{argv[0]}` failed: {exc}") from exc
    if done.returncode != 0:
        raise PromptError(f"`{argv[0]}` failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def render_texts(texts: Iterable[str], voice: str, places: SoundPlaces) -> dict[str, str]:
    """Text -> the name Asterisk plays it by."""
    return {text: places.asterisk_name(render_text(text, voice, places.directory)) for text in texts}


def flow_sounds(flow: Flow, places: SoundPlaces) -> dict[str, str]:
    """Prompt name -> what Asterisk plays for it, rendering the flow's text prompts."""
    sounds: dict[str, str] = {}
    for name, prompt in flow.prompts.items():
        match prompt:
            case TextPrompt(text=text):
                sounds[name] = places.asterisk_name(render_text(text, flow.voice, places.directory))
            case SoundPrompt(sound=sound):
                sounds[name] = sound
    return sounds
