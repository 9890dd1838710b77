"""The key-account team lent to the general queue on the real sandbox (issue 16
item 4): while no key customer is ringing, waiting or due the two dedicated
agents take standard calls, and yet every key customer who answered was offered
to an agent within `fallback_after` and none was abandoned. The figures before
and after are printed by `benchmarks/dedicated_team.py --sandbox`."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.sandbox import Sandbox, SandboxPorts, SandboxState
from tests.integration.conftest import PORT_OFFSET
from tests.integration.dedicated_team import FALLBACK_AFTER, KEY_BATCHES, run_case

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def team_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    handle = Sandbox(tmp_path_factory.mktemp("team-sandbox"), ports=SandboxPorts.offset(PORT_OFFSET + 5), agents=8)
    handle.up(progress=lambda message: print(f"[sandbox] {message}", file=sys.stderr))
    try:
        yield handle.state()
    finally:
        handle.down()


@pytest.mark.timeout(420)
def test_dedicated_agents_take_general_calls_and_key_customers_never_wait(
    team_sandbox: SandboxState, tmp_path: Path
) -> None:
    figures = run_case(team_sandbox, tmp_path, lend=True, serial=random.Random().randrange(1000, 7000))
    print(json.dumps(figures))
    # Every key customer reached, answered and offered to an agent at once.
    assert figures["key_calls"] == 2 * len(KEY_BATCHES), figures
    assert figures["key_answered"] == figures["key_calls"], figures
    assert figures["key_abandoned"] == 0, figures
    assert figures["key_not_offered"] == 0, figures
    assert figures["key_longest_wait"] <= FALLBACK_AFTER, figures
    # ... by their own team: a key call never had to fall back to a general agent.
    assert figures["key_taken_by_general"] == 0, figures
    # And the team was lent: its phones took standard customers between key calls.
    assert figures["standard_taken_by_key_team"] >= 1, figures
