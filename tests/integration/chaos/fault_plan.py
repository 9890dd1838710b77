"""When each fault strikes: a seeded schedule, so a failing seed replays (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = (
    "kill_daemon",  # kill -9 the daemon's process group, start a new one
    "cut_ami",  # the AMI proxy closes both sides of the daemon's connection
    "half_open_ami",  # the AMI proxy stops forwarding, keeps the sockets open
    "restart_asterisk",  # `core restart now`, as the sandbox runs it
    "drop_files",  # 50 campaign files moved into the directory at once
    "edit_files",  # edit, break, remove and restore campaign files
    "fuzz_api",  # hostile requests at the control API
)
# Not faults, but moments the run changes its lists: leads arrive through the API,
# numbers go on the do-not-call list while the campaign runs.
ACTIONS = ("api_leads", "dnc_add")
FIRST_AT_S = 8.0
RESTART_SPACING_S = 25.0


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the chaos phase starts
    kind: str
    index: int
    variant: str = ""

    def rng(self, seed: int) -> random.Random:
        """The fault's own randomness (which file, which variant), stable per seed and index."""
        return random.Random(f"{seed}:{self.index}:{self.kind}")


def plan(seed: int, duration_s: float, faults_per_minute: float = 5.0) -> list[Planned]:
    """Every kind at least once, more at random up to the rate, one kill while Asterisk restarts."""
    rng = random.Random(seed)
    last = max(FIRST_AT_S + 1.0, duration_s - 6.0)
    count = max(len(KINDS), round(faults_per_minute * duration_s / 60.0))
    kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(count - len(KINDS))]
    times: list[tuple[float, str]] = []
    restarts: list[float] = []
    for kind in kinds:
        for _ in range(50):
            at = rng.uniform(FIRST_AT_S, last)
            if kind != "restart_asterisk" or all(abs(at - r) >= RESTART_SPACING_S for r in restarts):
                break
        else:
            continue  # no room for one more restart in a short run
        if kind == "restart_asterisk":
            restarts.append(at)
        times.append((at, kind))
    # The daemon killed around an Asterisk restart, its new self started while AMI
    # cannot be reached: it must start, answer /healthz and log in once it can.
    first_restart = min(restarts)
    times.append((first_restart + rng.uniform(0.3, 1.5), "kill_daemon:ami_down"))
    times.append((rng.uniform(0.12, 0.25) * duration_s, "api_leads"))
    times.append((rng.uniform(0.5, 0.7) * duration_s, "api_leads"))
    times.append((rng.uniform(0.3, 0.6) * duration_s, "dnc_add"))
    times.sort()
    return [
        Planned(at=round(at, 2), kind=kind.partition(":")[0], index=i, variant=kind.partition(":")[2])
        for i, (at, kind) in enumerate(times)
    ]
