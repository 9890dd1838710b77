"""Live progress of a running daemon, for a person at a terminal or a log reader."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from dialer.daemon.server import Status


def status_line(status: Status) -> str:
    parts = []
    for c in status.campaigns:
        parts.append(
            f"{c.name}: placed {c.placed}  ringing {c.ringing}  waiting {c.waiting}  talking {c.talking}  "
            f"done {c.done}/{c.total}"
        )
    agents = f"agents busy {status.agents_busy}/{status.agents_logged_in}"
    ami = "" if status.ami_connected else "  [AMI disconnected]"
    return f"[{status.elapsed:5.0f}s] " + " | ".join(parts + [agents]) + ami


class ProgressPrinter:
    """Rewrites one line on a terminal; elsewhere prints a line every `interval` seconds."""

    def __init__(self, stream: TextIO = sys.stdout, interval: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval
        self._last = 0.0
        self._width = 0

    def __call__(self, status: Status) -> None:
        line = status_line(status)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
            self.stream.flush()
        elif time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
