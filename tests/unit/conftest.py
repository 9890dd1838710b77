"""Shared fixtures for the unit tests: recorded-style AMI dialogues."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from panoramisk.message import Message

AMI_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"

AmiStory = list[tuple[dict[str, str], float]]


def _read_story(name: str) -> AmiStory:
    """Parse a fixture the way the gateway does (panoramisk's parser, then `dict`).

    Each event's own `Timestamp` header (manager.conf has timestampevents on)
    stands for the time the daemon received it.
    """
    text = (AMI_FIXTURES / name).read_bytes().decode("utf-8")
    story: AmiStory = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        message = Message.from_line(block.strip().replace("\n", "\r\n"))
        assert message is not None, f"{name}: not an AMI block: {block[:60]!r}"
        event = {k: v for k, v in dict(message).items() if k != "content"}
        story.append((event, float(event["Timestamp"])))
    assert story, f"{name} holds no events"
    return story


@pytest.fixture
def ami_story() -> Callable[[str], AmiStory]:
    return _read_story
