"""The daemon's campaign runners by name, safe to walk across awaits.

The main loop ticks every runner, `status()` reads the store for each, the HTTP
handlers and the shutdown walk them too, each awaiting inside the loop; meanwhile
the campaign watcher and the API add runners. With a plain dict, the first
runner added during such a walk ends it with "dictionary changed size during
iteration" (issue 11: 50 files dropped at once killed the daemon).

So a change never touches the dict being walked: it replaces it (copy on
write). A walk goes on over the runners there were when it began; the next
walk sees the new ones. Adding costs a copy of a few dozen references, and
runners are added rarely.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dialer.daemon.campaign_runner import CampaignRunner


class RunnerTable(MutableMapping[str, "CampaignRunner"]):
    def __init__(self) -> None:
        self._runners: dict[str, CampaignRunner] = {}

    def __getitem__(self, name: str) -> CampaignRunner:
        return self._runners[name]

    def __setitem__(self, name: str, runner: CampaignRunner) -> None:
        self._runners = {**self._runners, name: runner}

    def __delitem__(self, name: str) -> None:
        runners = dict(self._runners)
        del runners[name]
        self._runners = runners

    def __contains__(self, name: object) -> bool:
        return name in self._runners

    def __iter__(self) -> Iterator[str]:
        return iter(self._runners)

    def __len__(self) -> int:
        return len(self._runners)

    # Views of the current dict, which no later change mutates.
    def keys(self) -> KeysView[str]:
        return self._runners.keys()

    def values(self) -> ValuesView[CampaignRunner]:
        return self._runners.values()

    def items(self) -> ItemsView[str, CampaignRunner]:
        return self._runners.items()

    def __repr__(self) -> str:
        return f"RunnerTable({sorted(self._runners)})"
