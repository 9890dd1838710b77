"""The chaos run's invariants, judged from the PBX side (pure: records in, verdicts out).

Ground truth is what the SIPp carrier and agent phones logged, each event with
SIPp's own timestamp (`dialer.sandbox.events`), and the database read after a
clean stop and a last reconcile. The dialer's own reports are never trusted:
its log is read only to know when it was blind (down, or its AMI link lost),
which can only relax a check, never satisfy one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dialer.sandbox.customers import CustomerKind, parse_customer_number
from dialer.sandbox.events import AgentEvent, CarrierEvent
from tests.integration.chaos.run_record import AttemptRow, LeadRow, RunRecord

# SIPp's clock and the daemon's are one machine's, but a retry is timed from the
# daemon's view of the call's end, which can only come after SIPp's.
CLOCK_SLACK_S = 0.25
# A number put on the do-not-call list mid-run may still get the call already
# leased and screened a moment before.
DNC_SLACK_S = 2.0
# Asterisk may hand two INVITEs paced 1/cps apart to the wire a little bunched.
CPS_JITTER_CALLS = 1
# Lead reasons that come from a campaign rule, not from the customer.
RULE_REASONS = frozenset({"dnc", "denied_number", "no_calling_window", "max_attempts_refused"})
STATUS_OUTCOME = {486: "busy", 603: "rejected", 503: "congestion", 404: "failed", 480: "no_answer"}


@dataclass
class Verdict:
    name: str
    title: str
    ok: bool
    figures: dict[str, object] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


@dataclass
class CarrierCall:
    """One INVITE at the carrier and what became of it."""

    number: str
    call_id: str
    invite_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    status: int | None = None
    cancelled: bool = False
    customer_hung_up: bool = False
    pbx_hung_up: bool = False
    agent: str | None = None  # the agent phone that answered this customer, if any

    @property
    def end(self) -> float:
        return self.ended_at if self.ended_at is not None else self.invite_at

    def outcome(self) -> str:
        """The customer's answer as the carrier saw it, in the dialer's words."""
        if self.status is not None:
            return STATUS_OUTCOME.get(self.status, "failed")
        if self.cancelled:
            return "no_answer"
        if self.answered_at is not None:
            return "answered" if self.agent else "abandoned"
        return "unknown"


def carrier_calls(events: Iterable[CarrierEvent], since: float) -> list[CarrierCall]:
    """Calls whose INVITE came at or after `since`, in INVITE order."""
    calls: dict[str, CarrierCall] = {}
    for event in events:
        if event.event == "invite":
            if event.at is not None and event.at >= since:
                calls[event.call_id] = CarrierCall(event.number, event.call_id, event.at)
            continue
        call = calls.get(event.call_id)
        if call is None or event.at is None:
            continue
        if event.event == "answered":
            call.answered_at = event.at
        elif event.event == "final":
            call.status, call.ended_at = event.status, event.at
        elif event.event == "cancelled":
            call.cancelled, call.ended_at = True, event.at
        elif event.event == "bye_sent":
            call.customer_hung_up, call.ended_at = True, event.at
        elif event.event == "bye_received":
            call.pbx_hung_up, call.ended_at = True, event.at
    return sorted(calls.values(), key=lambda c: c.invite_at)


def link_agents(calls: list[CarrierCall], agent_events: Iterable[AgentEvent], phone_of_attempt: dict[str, str]) -> int:
    """Mark each customer call an agent phone answered (by X-Dialer-Attempt's number and time).

    Returns how many agent answers found no customer call (should be 0)."""
    invites = {e.call_id: e for e in agent_events if e.event == "invite"}
    by_number: dict[str, list[CarrierCall]] = defaultdict(list)
    for call in calls:
        by_number[call.number].append(call)
    unmatched = 0
    for event in agent_events:
        if event.event != "answered" or event.at is None:
            continue
        invite = invites.get(event.call_id)
        phone = phone_of_attempt.get(invite.attempt or "") if invite else None
        match = next(
            (
                c
                for c in by_number.get(phone or "", [])
                if c.answered_at is not None and c.answered_at - 1.0 <= event.at <= c.end + 1.0
            ),
            None,
        )
        if match is None:
            unmatched += 1
        else:
            match.agent = event.agent
    return unmatched


def _within(at: float, spans: Sequence[tuple[float, float]], before: float = 0.0, after: float = 0.0) -> bool:
    return any(start - before <= at <= end + after for start, end in spans)


def _kind(number: str) -> CustomerKind:
    try:
        return parse_customer_number(number).kind
    except ValueError:
        return CustomerKind.NOT_FOUND  # the carrier answers 404 to any number outside its scheme


def customer_outcomes(number: str, ring_timeout_s: float) -> set[str]:
    """What this scripted customer can make of a call, in the dialer's outcome words."""
    try:
        behaviour = parse_customer_number(number)
    except ValueError:
        return {"failed"}
    if behaviour.kind is CustomerKind.ANSWER:
        return {"no_answer"} if behaviour.ring_s >= ring_timeout_s else {"answered", "abandoned"}
    return {behaviour.expected_outcome}


def _cut_by_restart(call: CarrierCall, run: RunRecord) -> bool:
    """Answered, and Asterisk hung up on the customer during a restart."""
    return call.answered_at is not None and call.pbx_hung_up and _within(call.end, run.restarts(), 0.5, 1.0)


def _in_fault(call: CarrierCall, run: RunRecord) -> bool:
    """The call ended while the daemon was blind, or a restart ended it."""
    return _within(call.end, run.blind, 0.5, 1.0) or _within(call.end, run.restarts(), 0.5, 1.0)


# -- the invariants ------------------------------------------------------------------------


def check_retry_spacing(calls: list[CarrierCall], run: RunRecord) -> Verdict:
    """No number gets a second INVITE inside the retry delay its previous call's outcome gives."""
    verdict = Verdict("retry_spacing", "no second INVITE inside a number's retry delay", True)
    by_number: dict[str, list[CarrierCall]] = defaultdict(list)
    for call in calls:
        by_number[call.number].append(call)
    redials = 0
    shortest = math.inf
    for number, seq in sorted(by_number.items()):
        rules = run.retry_rules.get(run.numbers.campaign_of.get(number, ""), {})
        for before, after in zip(seq, seq[1:]):
            redials += 1
            gap = after.invite_at - before.end
            shortest = min(shortest, gap)
            outcome = before.outcome()
            delays = []
            if outcome in rules:
                delays.append(rules[outcome].delay_s)
            if _in_fault(before, run) or outcome == "unknown":
                interrupted = rules.get("interrupted")
                delays.append(interrupted.delay_s if interrupted else 0.0)
            if not delays:
                verdict.violations.append(
                    f"{number}: dialed again {gap:.1f}s after a call that ended {outcome} (no retry rule: closes the lead)"
                )
                continue
            needed = min(delays)
            if gap + CLOCK_SLACK_S < needed:
                verdict.violations.append(
                    f"{number}: second INVITE {gap:.1f}s after the previous call ended {outcome}; retry delay {needed:.0f}s"
                )
    verdict.figures = {"redials": redials, "shortest_gap_s": None if math.isinf(shortest) else round(shortest, 1)}
    verdict.ok = not verdict.violations
    return verdict


def check_no_fault_closes(leads: list[LeadRow], calls: list[CarrierCall], run: RunRecord, campaigns: set[str]) -> Verdict:
    """Every closed lead closed by its customer's answer or a campaign rule, never by a fault."""
    verdict = Verdict("no_fault_closes", "no lead closed by a fault", True)
    last_call: dict[str, CarrierCall] = {}
    for call in calls:
        last_call[call.number] = call
    closed = open_ = 0
    reasons: dict[str, int] = defaultdict(int)
    for lead in leads:
        if lead.campaign not in campaigns or lead.phone not in run.numbers.campaign_of:
            continue
        if lead.state != "done":
            open_ += 1
            continue
        closed += 1
        reason = lead.final_reason or lead.final_outcome or "?"
        reasons[reason] += 1
        allowed = customer_outcomes(lead.phone, run.ring_timeout_s)
        retried = run.retry_rules.get(lead.campaign, {})
        by_customer = (reason in allowed and reason not in retried) or reason in {
            f"max_attempts_{o}" for o in allowed | {"interrupted"}
        }
        if not (by_customer or reason in RULE_REASONS):
            verdict.violations.append(
                f"lead {lead.id} {lead.phone} ({_kind(lead.phone).name.lower()} customer) closed as {reason!r}"
            )
            continue
        last = last_call.get(lead.phone)
        if reason == "answered" and last is not None and _cut_by_restart(last, run):
            verdict.violations.append(
                f"lead {lead.id} {lead.phone}: its last call was cut by an Asterisk restart "
                f"{last.end - (last.answered_at or last.end):.0f}s into the conversation, and the lead closed as answered"
            )
    verdict.figures = {"leads_closed": closed, "leads_not_done": open_, "reasons": dict(sorted(reasons.items()))}
    verdict.ok = not verdict.violations
    return verdict


def check_final_rows(attempts: list[AttemptRow], leads: list[LeadRow], calls: list[CarrierCall]) -> Verdict:
    """Every attempt has its final row, no lead is left leased, and no INVITE lacks an attempt."""
    verdict = Verdict("final_rows", "every attempt with a final row", True)
    for row in attempts:
        if row.state != "ended" or not row.outcome or row.ended_at is None:
            verdict.violations.append(f"attempt {row.id} ({row.phone}) left {row.state}, outcome {row.outcome}")
    for lead in leads:
        if lead.state == "leased":
            verdict.violations.append(f"lead {lead.id} ({lead.phone}) still leased")
    sent: dict[str, int] = defaultdict(int)
    for row in attempts:
        if row.outcome != "not_sent":
            sent[row.phone] += 1
    invites: dict[str, int] = defaultdict(int)
    for call in calls:
        invites[call.number] += 1
    # The INVITE carries the number as dialed; leads hold it as stored.
    for number, count in sorted(invites.items()):
        rows = sum(sent.get(form, 0) for form in {number, number.lstrip("+"), "+" + number.lstrip("+")})
        if count > rows:
            verdict.violations.append(f"{number}: {count} INVITE(s) at the carrier, {rows} attempt row(s)")
    verdict.figures = {"attempts": len(attempts), "not_sent": sum(1 for a in attempts if a.outcome == "not_sent")}
    verdict.ok = not verdict.violations
    return verdict


def check_forbidden_dials(calls: list[CarrierCall], run: RunRecord) -> Verdict:
    """No do-not-call, denied, premium or canary number dialed, nor any number that is no lead."""
    verdict = Verdict("forbidden_dials", "no denied or do-not-call number dialed", True)
    for call in calls:
        rule = run.numbers.forbidden.get(call.number)
        if rule is not None:
            if call.invite_at >= rule.since + DNC_SLACK_S:
                verdict.violations.append(f"{call.number} dialed ({rule.reason})")
            continue
        if call.number not in run.numbers.campaign_of:
            verdict.violations.append(f"{call.number} dialed, and it is no lead of the run")
    verdict.figures = {"numbers_guarded": len(run.numbers.forbidden)}
    verdict.ok = not verdict.violations
    return verdict


def check_daemon_up(run: RunRecord) -> Verdict:
    """/healthz answers all through the run, except from a kill until the new daemon is up."""
    verdict = Verdict("daemon_up", "the daemon never down except when killed", True)
    allowed: list[tuple[float, float]] = []
    for life in run.daemons:
        if life.ended_by in ("kill_daemon", "final_stop") and life.ended_at is not None:
            following = [d.started_at for d in run.daemons if d.started_at >= life.ended_at]
            until = (min(following) + run.startup_grace_s) if following else math.inf
            allowed.append(((life.stop_requested_at or life.ended_at) - 1.0, until))
    if run.daemons:
        first = run.daemons[0].started_at
        allowed.append((first - 1.0, first + run.startup_grace_s))
    outage: list[float] = []
    outages: list[tuple[float, float, str]] = []
    down = 0
    for sample in sorted(run.health, key=lambda s: s.at):
        if sample.ok:
            if outage:
                outages.append((outage[0], outage[-1], ""))
                outage = []
            continue
        down += 1
        if not _within(sample.at, allowed):
            outage.append(sample.at)
    if outage:
        outages.append((outage[0], outage[-1], ""))
    for start, end, _ in outages:
        verdict.violations.append(
            f"/healthz failed from +{start - run.started_at:.1f}s to +{end - run.started_at:.1f}s, no kill explains it"
        )
    for life in run.daemons:
        if life.ended_at is not None and life.ended_by is None:
            verdict.violations.append(
                f"daemon #{life.number} exited by itself at +{life.ended_at - run.started_at:.1f}s "
                f"(code {life.exit_code}): {life.last_error or 'see ' + life.log}"
            )
    verdict.figures = {
        "health_polls": len(run.health),
        "failed_polls": down,
        "daemon_starts": len(run.daemons),
        "unplanned_exits": sum(1 for d in run.daemons if d.ended_at is not None and d.ended_by is None),
    }
    verdict.ok = not verdict.violations
    return verdict


def check_abandon_rate(calls: list[CarrierCall], run: RunRecord, unmatched_agents: int) -> Verdict:
    """Customers who answered and reached no agent, over live answers (window history included)."""
    verdict = Verdict("abandon_rate", "abandon rate within the limit", True)
    live = [c for c in calls if c.answered_at is not None and c.number in run.numbers.campaign_of]
    cut = [c for c in live if c.agent is None and _cut_by_restart(c, run)]
    abandoned = [c for c in live if c.agent is None and c not in cut]
    counted = len(live) - len(cut)
    rate_run = len(abandoned) / counted if counted else 0.0
    rate_window = len(abandoned) / (counted + run.history_answered) if counted + run.history_answered else 0.0
    verdict.figures = {
        "live_answers": counted,
        "reached_agent": sum(1 for c in live if c.agent),
        "abandoned": len(abandoned),
        "cut_by_restart": len(cut),
        "rate_this_run": round(rate_run, 4),
        "rate_window": round(rate_window, 4),
        "limit": run.abandon_limit,
        "agent_answers_unmatched": unmatched_agents,
    }
    if rate_window > run.abandon_limit + 1e-9:
        verdict.violations.append(
            f"{len(abandoned)} abandoned of {counted} live answers (+{run.history_answered} in the window before the "
            f"run): {rate_window:.2%} over the limit {run.abandon_limit:.0%}"
        )
    verdict.ok = not verdict.violations
    return verdict


def max_in_window(times: Sequence[float], width: float) -> tuple[int, float | None]:
    """The most events in any half-open window [t, t + width) and where it starts."""
    best, where, j = 0, None, 0
    ordered = sorted(times)
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + width:
            j += 1
        if j - i > best:
            best, where = j - i, start
    return best, where


def check_cps(calls: list[CarrierCall], run: RunRecord) -> Verdict:
    """INVITEs on the trunk never faster than its calls-per-second limit."""
    verdict = Verdict("calls_per_second", "Originates never faster than the trunk's CPS", True)
    times = [c.invite_at for c in calls]
    one_s, at_1 = max_in_window(times, 1.0)
    five_s, at_5 = max_in_window(times, 5.0)
    allowed_1 = math.floor(run.cps_limit) + CPS_JITTER_CALLS
    allowed_5 = math.floor(run.cps_limit * 5) + CPS_JITTER_CALLS
    gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:])]
    verdict.figures = {
        "limit_cps": run.cps_limit,
        "limit_from": run.cps_source,
        "invites": len(times),
        "max_in_1s": one_s,
        "max_in_5s": five_s,
        "min_gap_ms": round(min(gaps) * 1000, 1) if gaps else None,
    }
    if one_s > allowed_1 and at_1 is not None:
        verdict.violations.append(
            f"{one_s} INVITEs within 1 s from +{at_1 - run.started_at:.1f}s (limit {run.cps_limit:g}/s)"
        )
    if five_s > allowed_5 and at_5 is not None:
        verdict.violations.append(
            f"{five_s} INVITEs within 5 s from +{at_5 - run.started_at:.1f}s (limit {run.cps_limit:g}/s)"
        )
    verdict.ok = not verdict.violations
    return verdict


def check_hostile_api(run: RunRecord) -> Verdict:
    """Hostile requests get a 4xx (or 503 while AMI is down), never a server error; nothing leaks."""
    verdict = Verdict("hostile_api", "hostile API input refused cleanly, no secret echoed", True)
    statuses: dict[str, int] = defaultdict(int)
    for call in run.api:
        statuses[str(call.status)] += 1
        if call.status is not None and call.status >= 500 and call.status != 503:
            verdict.violations.append(f"{call.name}: HTTP {call.status} {call.detail[:120]}")
    for place in run.leaked:
        verdict.violations.append(f"the planted secret showed up in {place}")
    verdict.figures = {"requests": len(run.api), "statuses": dict(sorted(statuses.items()))}
    verdict.ok = not verdict.violations
    return verdict


def judge(
    run: RunRecord,
    carrier: Sequence[CarrierEvent],
    agents: Sequence[AgentEvent],
    attempts: list[AttemptRow],
    leads: list[LeadRow],
    checked_campaigns: set[str],
) -> list[Verdict]:
    calls = carrier_calls(carrier, run.started_at)
    unmatched = link_agents(calls, [a for a in agents if a.at is None or a.at >= run.started_at],
                            {a.id: a.phone for a in attempts})
    return [
        check_retry_spacing(calls, run),
        check_no_fault_closes(leads, calls, run, checked_campaigns),
        check_final_rows(attempts, leads, calls),
        check_forbidden_dials(calls, run),
        check_daemon_up(run),
        check_abandon_rate(calls, run, unmatched),
        check_cps(calls, run),
        check_hostile_api(run),
    ]
