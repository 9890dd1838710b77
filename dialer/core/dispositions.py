"""What an agent's disposition does to the lead and to its next attempt (pure).

A campaign maps disposition codes to actions (`campaigns/README.md`):

- close: the lead is done, its final reason the code (sale, not_interested ...);
- callback: call again at the customer's `callback_at`, preferably by the same agent;
- dnc: the number goes on the global do-not-call list and the lead is done;
- retry: call again after the campaign's `no_answer` retry delay.

`decide` checks the request against the campaign's codes and returns the
lead's event (`dialer.core.lead_lifecycle`) and what else to record;
`dialer.dispositions` reads and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from dialer.core.lead_lifecycle import Disposed

DEFAULT_RETRY_DELAY = timedelta(hours=1)
"""A `retry` disposition's delay for a campaign with no `no_answer` retry rule."""


class DispositionAction(str, Enum):
    close = "close"  # the lead is done, its final reason the disposition code
    callback = "callback"  # call again at the time the customer chose
    dnc = "dnc"  # the customer asked not to be called: global do-not-call list, lead done
    retry = "retry"  # call again per the retry policy of outcome `no_answer`


class DispositionRefused(ValueError):
    """The disposition cannot be applied; the message says why (for the agent or the API client)."""


@dataclass(frozen=True)
class Disposition:
    action: DispositionAction
    lead_event: Disposed | None
    """What happens to the lead; None for a callback, whose booking makes the lead due (`CallbackBooked`)."""
    callback_at: datetime | None = None
    add_to_dnc: bool = False
    """Whether the number goes on the global do-not-call list."""


def decide(
    code: str,
    actions: Mapping[str, DispositionAction],
    *,
    campaign: str,
    attempt_id: str,
    attempt_outcome: str | None,
    retry_delay: timedelta | None,
    callback_at: datetime | None,
    now: datetime,
) -> Disposition:
    """The effect of disposition `code` on the attempt `attempt_id` at `now`.

    `actions` are the campaign's codes, `retry_delay` its `no_answer` retry
    delay (None: the default), `attempt_outcome` the attempt's outcome so far
    (None while the call is up: it reached the customer). Raises
    DispositionRefused for an unknown code or a callback without a future time.
    """
    action = actions.get(code)
    if action is None:
        known = ", ".join(sorted(actions))
        raise DispositionRefused(f"unknown disposition {code!r} for campaign {campaign} (known: {known})")
    if action is DispositionAction.callback:
        if callback_at is None or callback_at <= now:
            raise DispositionRefused(f"disposition {code!r} needs callback_at, a time in the future")
        return Disposition(action, None, callback_at=callback_at)
    if action is DispositionAction.retry:
        delay = DEFAULT_RETRY_DELAY if retry_delay is None else retry_delay
        return Disposition(action, Disposed(attempt_id, retry_at=now + delay))
    dnc = action is DispositionAction.dnc
    closed = Disposed(attempt_id, final_outcome=attempt_outcome or "answered", final_reason="dnc" if dnc else code)
    return Disposition(action, closed, add_to_dnc=dnc)
