"""The Originate's channel variables: the contract with `[dialer-outbound]` (pure).

`asterisk-conf/README.md` documents each variable; this is the one place that
decides them. Each variable has one source, by a fixed precedence instead of
the order dicts happen to be merged in:

1. the call itself: `DIALER_ATTEMPT`, `DIALER_CAMPAIGN` (never overridden);
2. the routing of its tier, when it has one, else the campaign's queue and agent wait;
3. the campaign's media: a rendered abandon message replaces the campaign's sound
   name; IVR and AMD variables;
4. `DIALER_AGENT` only on a callback promised to an agent free now.

Values are passed on as given: the AMI gateway checks every one of them
(`dialer.ami.values`), and lead or CRM data is made safe before it gets here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dialer.core.routing import Routing

MEDIA_VARIABLES = frozenset(
    {"DIALER_ABANDON_MSG", "DIALER_IVR", "DIALER_AMD", "DIALER_AMD_PARAMS", "DIALER_ON_MACHINE", "DIALER_MACHINE_MSG"}
)
"""What the campaign's IVR/AMD settings and rendered messages may set (dialer.ivr.service)."""


@dataclass(frozen=True)
class CampaignDialplan:
    """The campaign's part of every Originate, the same for all its calls."""

    campaign: str
    queue: str
    agent_wait: int
    abandon_message: str = ""
    media: Mapping[str, str] = field(default_factory=dict)
    """IVR/AMD variables and rendered messages; only names of MEDIA_VARIABLES."""

    def __post_init__(self) -> None:
        unknown = set(self.media) - MEDIA_VARIABLES
        if unknown:
            raise ValueError(f"not a media variable of the dialplan: {', '.join(sorted(unknown))}")


def routing_variables(routing: Routing) -> dict[str, str]:
    """The variables of a tier routing for `[dialer-outbound]` (the inbound route's
    answer to `[dialer-inbound]` carries the same ones)."""
    return {
        "DIALER_QUEUE": routing.queue,
        "DIALER_PRIORITY": str(routing.priority),
        "DIALER_AGENT_WAIT": str(routing.timeout),
        "DIALER_FALLBACK_QUEUE": routing.fallback_queue or "",
        "DIALER_FALLBACK_PRIORITY": str(routing.fallback_priority),
        "DIALER_FALLBACK_WAIT": str(routing.fallback_timeout),
        "DIALER_TIER": routing.tier,
    }


def media_variables(
    *,
    abandon_message: str | None = None,
    ivr_flow: str | None = None,
    amd_parameters: str | None = None,
    on_machine: str = "",
    machine_message: str | None = None,
) -> dict[str, str]:
    """A campaign's media part (`CampaignDialplan.media`): the rendered abandon message,
    the IVR flow, and AMD (on when `amd_parameters` is given) with what to do on a machine."""
    out: dict[str, str] = {}
    if abandon_message is not None:
        out["DIALER_ABANDON_MSG"] = abandon_message
    if ivr_flow:
        out["DIALER_IVR"] = ivr_flow
    if amd_parameters is not None:
        out["DIALER_AMD"] = "1"
        out["DIALER_AMD_PARAMS"] = amd_parameters
        out["DIALER_ON_MACHINE"] = on_machine
        if machine_message is not None:
            out["DIALER_MACHINE_MSG"] = machine_message
    return out


def originate_variables(
    attempt_id: str,
    dialplan: CampaignDialplan,
    *,
    routing: Routing | None = None,
    customer: str = "",
    callback_agent: str | None = None,
) -> dict[str, str]:
    """The variables of one call's Originate.

    `routing` is the tier routing of the call (`dialer.core.routing.route`), None
    for a call with no tier decision; `customer` its customer id, sent with the
    routing only.
    """
    variables = {
        "DIALER_ATTEMPT": attempt_id,
        "DIALER_CAMPAIGN": dialplan.campaign,
        "DIALER_QUEUE": dialplan.queue,
        "DIALER_AGENT_WAIT": str(dialplan.agent_wait),
        "DIALER_ABANDON_MSG": dialplan.abandon_message,
    }
    if routing is not None:
        variables.update(routing_variables(routing))
        variables["DIALER_CUSTOMER"] = customer
    variables.update(dialplan.media)
    if callback_agent:
        variables["DIALER_AGENT"] = callback_agent
    return variables
