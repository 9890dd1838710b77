"""The session's Asterisk sandbox: built (or reused) once, torn down at the end."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from dialer.sandbox import Sandbox, SandboxPorts, SandboxState

# Far from the defaults, so a developer's own `dialer sandbox up` keeps running;
# DIALER_TEST_PORT_OFFSET lets two test runs share one machine.
PORT_OFFSET = int(os.environ.get("DIALER_TEST_PORT_OFFSET", "200"))


@pytest.fixture(scope="session")
def sandbox_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    handle = Sandbox(tmp_path_factory.mktemp("sandbox"), ports=SandboxPorts.offset(PORT_OFFSET), agents=3)
    handle.up(progress=lambda message: print(f"[sandbox] {message}", file=sys.stderr))
    try:
        yield handle
    finally:
        handle.down()


@pytest.fixture(scope="session")
def sandbox(sandbox_handle: Sandbox) -> SandboxState:
    return sandbox_handle.state()
