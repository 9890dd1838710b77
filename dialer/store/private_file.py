"""Database files readable by their owner only.

A SQLite database holds customers' names, numbers and call history: it is
created 0600 whatever the umask of the process that first opens it (the
daemon outside systemd's UMask=, or any CLI command). SQLite gives the
-wal and -shm files it creates later the main file's mode, so they follow.
"""

from __future__ import annotations

import os
from pathlib import Path

MODE = 0o600


def create_private(path: Path) -> None:
    """Create `path` empty with MODE unless it exists (an existing file keeps its mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, MODE)
    except FileExistsError:
        return
    os.close(fd)
