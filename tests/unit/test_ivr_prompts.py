"""Text prompts rendered with espeak-ng + sox (installed by the IVR when root), cached by hash."""

from __future__ import annotations

import wave
from pathlib import Path

from dialer.ivr.flow import Flow
from dialer.ivr.prompts import SoundPlaces, flow_sounds, prompt_stem, render_text


def test_the_name_depends_on_text_and_voice_only() -> None:
    assert prompt_stem("Hello.", "en") == prompt_stem("Hello.", "en")
    assert prompt_stem("Hello.", "en") != prompt_stem("Hello!", "en")
    assert prompt_stem("Hello.", "en") != prompt_stem("Hello.", "fr")


def test_asterisk_names_a_file_by_its_own_path_without_extension() -> None:
    places = SoundPlaces(Path("/host/root/srv/sounds"), "/srv/sounds/")
    assert places.asterisk_name(Path("/host/root/srv/sounds/tts-abc.wav")) == "/srv/sounds/tts-abc"


def test_rendering_gives_8khz_mono_and_is_cached(tmp_path: Path) -> None:
    first = render_text("Thank you, goodbye.", "en", tmp_path)
    with wave.open(str(first)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
        assert 0.5 < audio.getnframes() / 8000 < 5
    stamp = first.stat().st_mtime_ns
    assert render_text("Thank you, goodbye.", "en", tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp files left


def test_a_flow_renders_its_text_prompts_and_keeps_its_sound_prompts(tmp_path: Path) -> None:
    flow = Flow.model_validate(
        {
            "name": "f",
            "prompts": {"hi": "Hi.", "logo": {"sound": "custom/logo"}},
            "start": "a",
            "nodes": {"a": {"type": "hangup", "say": "hi"}, "b": {"type": "hangup", "say": "logo"}},
        }
    )
    sounds = flow_sounds(flow, SoundPlaces(tmp_path, "/chroot/sounds"))
    assert sounds == {"hi": f"/chroot/sounds/{prompt_stem('Hi.', 'en')}", "logo": "custom/logo"}
    assert (tmp_path / f"{prompt_stem('Hi.', 'en')}.wav").is_file()
