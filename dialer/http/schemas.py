"""What the control API accepts and returns (pydantic models, shown in its OpenAPI description)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from dialer.ami.values import PRINTABLE_PATTERN, QUEUE_PATTERN, check_header_value, check_queue_name

from dialer.leads.csv_import import MAX_PHONE_DIGITS, MIN_PHONE_DIGITS

# Same rule as the CSV import: digits, an optional leading +.
PHONE_PATTERN = rf"^\+?[0-9]{{{MIN_PHONE_DIGITS},{MAX_PHONE_DIGITS}}}$"
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# Each queue given is one AMI action: a login names a few, never thousands.
MAX_QUEUES = 16
QueueName = Annotated[str, StringConstraints(pattern=QUEUE_PATTERN), AfterValidator(check_queue_name)]

# A lead's `data` is stored and echoed back on every lookup and screen pop.
MAX_DATA_KEYS = 50
MAX_DATA_BYTES = 16 * 1024
MAX_DATA_DEPTH = 4
DataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
DataValue = Annotated[str, StringConstraints(max_length=4000)]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _bounded_json(value: Any) -> Any:
    """The stored JSON stays small and shallow, whatever the field's type becomes."""
    if _depth(value) > MAX_DATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DATA_DEPTH} levels")
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_DATA_BYTES:
        raise ValueError(f"{size} bytes as JSON; {MAX_DATA_BYTES} at most")
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    message: str
    errors: list[FieldProblem] = []


class Health(BaseModel):
    ok: bool
    checks: dict[str, str] = {}


class ServerReadiness(BaseModel):
    name: str
    state: str
    """up (may get calls), shutting_down or down (dialer.control.daemon_view.AmiServerStatus)."""
    since: datetime


class Readiness(Health):
    servers: list[ServerReadiness] = []
    """Each AMI server: ready needs one that is up; no errors here, as /readyz takes no token."""


class ServerOut(ServerReadiness):
    calls_in_progress: int
    max_lines: int | None
    last_error: str | None


class CampaignOut(BaseModel):
    name: str
    state: str
    file: str | None
    mode: str | None
    max_lines: int | None
    total: int
    done: int
    placed: int
    ringing: int
    waiting: int
    talking: int
    outcomes: dict[str, int]
    answers_needed: int | None = None
    """While `settling`: live answers bridged in time still needed before the abandon rate is at its limit."""


class StopIn(_In):
    now: StrictBool = False
    """End at once even while the abandon window is over its limit (logged as campaign.stopped_over_limit)."""


class AbandonOut(BaseModel):
    rate: float
    answered: int
    """Live answers in the abandon window, the abandoned included."""
    abandoned: int
    limit: float
    answers_needed: int | None
    """Live answers bridged in time that bring the rate to the limit; null: none will."""


class CampaignStateOut(BaseModel):
    name: str
    state: str
    answers_needed: int | None = None
    """While `settling`: live answers bridged in time still needed before it takes the state asked."""
    abandon: AbandonOut | None = None
    """The abandon window when its rate is over the limit."""
    warning: str | None = None
    """Set when the campaign places no calls now while its abandon rate is over the limit (a pause, `now`)."""


class TrunkOut(BaseModel):
    name: str
    calls_per_second: float
    backed_off: bool
    """After repeated refusals no Originate goes to this trunk until one is accepted again."""
    backoff_seconds_left: float
    """Until the next probe call; 0 when not backed off, or when a probe may go."""
    consecutive_refusals: int
    refusals: int
    """Originates Asterisk refused on this trunk since the daemon started."""
    last_error: str | None


class WebhookOut(BaseModel):
    campaign: str
    webhook: str
    delivered: int
    pending: int
    dead: int
    """Dead letters: every allowed try failed; `dialer webhooks requeue` sends them again."""
    failed_tries: int
    last_error: str | None


class StatusOut(BaseModel):
    ami_connected: bool
    draining: bool
    uptime_seconds: float
    agents_logged_in: int
    agents_busy: int
    campaigns: list[CampaignOut]
    config_issues: list[str]
    """`file:line: field: message` of every campaign file the daemon could not take."""
    trunks: list[TrunkOut] = []
    """Each trunk in use or configured: its calls-per-second limit and failure backoff."""
    webhooks: list[WebhookOut] = []
    """Per campaign and webhook: deliveries and dead letters (dialer.webhook_dispatcher)."""
    servers: list[ServerOut] = []
    """Each AMI server, in the config's order: `ami_connected` is true while any one is logged in."""


class AgentOut(BaseModel):
    id: str
    name: str | None
    interface: str
    state: str
    queues: list[str]
    configured_queues: list[str]
    paused: bool
    call: str | None
    """Attempt id of the call bridged to the agent."""


class QueuesIn(_In):
    queues: list[QueueName] | None = Field(
        None,
        max_length=MAX_QUEUES,
        description=f"queues to log in to or out of, {MAX_QUEUES} at most, each a queue of this daemon's config "
        "(an agent's or a campaign's); default: the agent's queues from the config",
    )


class PauseIn(_In):
    paused: bool = True
    reason: Annotated[str, AfterValidator(check_header_value)] | None = Field(
        None, max_length=80, pattern=PRINTABLE_PATTERN, description="no control characters (it goes to AMI)"
    )
    queue: QueueName | None = Field(None, description="one queue of this daemon's config; default: all")


class LeadIn(_In):
    phone: str = Field(
        pattern=PHONE_PATTERN,
        description="digits with an optional leading +; read as `dialer leads import` reads it: E.164 in the "
        "campaign's region, invalid, premium-rate, emergency and denied numbers refused (422)",
    )
    name: str | None = Field(None, max_length=200)
    customer_id: str | None = Field(None, max_length=64)
    tier: str | None = Field(None, max_length=32)
    value: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=2)
    timezone: str | None = Field(None, max_length=64, description="IANA time zone, e.g. Europe/Paris")
    data: Annotated[dict[DataKey, DataValue], AfterValidator(_bounded_json)] = Field(
        {},
        max_length=MAX_DATA_KEYS,
        description=f"free fields kept with the lead: {MAX_DATA_KEYS} keys at most, "
        f"{MAX_DATA_BYTES} bytes at most as JSON",
    )


class ContactOut(BaseModel):
    attempt: str
    campaign: str
    dialed_at: datetime | None
    outcome: str | None
    agent_id: str | None


class LeadOut(BaseModel):
    id: int
    campaign: str
    phone: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    final_outcome: str | None
    customer_name: str | None
    customer_id: str | None
    tier: str | None
    value: float | None
    timezone: str | None
    data: dict[str, str]
    last_contacts: list[ContactOut]


class LeadAdded(BaseModel):
    added: bool
    """False when the number was already in the campaign (the lead is left as it was)."""
    lead: LeadOut


class CurrentCall(BaseModel):
    attempt: str
    campaign: str
    number: str
    state: str
    bridged_at: datetime | None
    lead: LeadOut | None
    screen_pop: dict[str, Any] | None = None
    """Customer, tier, value, last contacts, open callbacks and script (dialer.screen_pop)."""


class ScreenPop(BaseModel):
    agent: str
    call: CurrentCall | None


class DispositionIn(_In):
    attempt_id: str | None = Field(None, pattern=r"^[0-9a-f]{1,64}$", description="the call's attempt id")
    lead_id: int | None = Field(None, ge=1, le=2**62, description="or the lead (its latest attempt)")
    code: str = Field(pattern=NAME_PATTERN, description="a disposition code of the campaign, e.g. sale")
    callback_at: AwareDatetime | None = Field(None, description="for a callback: when, with a UTC offset")
    agent: str | None = Field(None, pattern=NAME_PATTERN)
    notes: str | None = Field(
        None, max_length=2000, description="what the agent found; stored, and sent with the campaign's webhooks"
    )


class DispositionOut(BaseModel):
    attempt_id: str
    lead_id: int
    campaign: str
    code: str
    action: str
    callback_id: int | None
    webhook_event_id: str | None = None
    """The id the campaign's webhooks get this disposition under (X-Dialer-Event-Id); none wants it: null."""


class CallbackOut(BaseModel):
    id: int
    campaign: str
    lead_id: int
    phone: str
    agent_id: str | None
    due_at: datetime
    state: str
    attempt_id: str | None
