"""What must hold after every step of a simulation, read from the SQLite file and the PBX's logs.

Each check returns the first broken invariant as a `Violation` naming the facts,
or None. They read the database through a plain sqlite3 connection (committed
state only, as another process would see it) and never write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dialer.config.campaign_rules import retry_rules
from dialer.config.models import Campaign
from dialer.core.calling_window import CallingWindow
from dialer.core.faults import DEFAULT_FAULT_RULE, FAULT_OUTCOME
from dialer.core.outcomes import LIVE_ANSWER, NOT_PLACED, Outcome, abandon_rate
from dialer.dst.pbx_world import DaemonPbx

SCREEN_TO_DIAL_S = 30.0
"""Grace past the window's close for a call screened inside it: the time its lease may take to become
an Originate (a slow database included)."""
ABANDON_MIN_ANSWERS = 100
"""Live answers in the window before the abandon ceiling is judged (the pacing's own young-window size)."""
FAULT_OUTCOMES = NOT_PLACED | {Outcome.interrupted}
"""Outcomes that say the PBX or the link failed, not the customer: never a lead's last word."""


@dataclass
class Violation:
    invariant: str
    at: float
    step: int
    facts: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        when = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")
        return f"invariant broken: {self.invariant} (step {self.step}, {when})\n" + "\n".join(
            f"  {fact}" for fact in self.facts
        )


def _epoch(value: str | None) -> float | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


@dataclass
class Attempt:
    id: str
    lead_id: int
    phone: str
    dialed_at: float
    ended_at: float | None
    outcome: str | None
    answered_at: float | None
    abandoned: bool
    cut_short: bool


@dataclass
class Ledger:
    """What the checks remember between steps, and the facts the driver tells them."""

    campaign: Campaign
    zone: str
    retry_delay_s: dict[str, float]
    listed_at: dict[str, float] = field(default_factory=dict)
    """Number -> when it was put on the do-not-call list or matched a deny pattern."""
    outcomes: dict[str, str] = field(default_factory=dict)
    imported: set[int] = field(default_factory=set)
    closed_by_rule: dict[int, str] = field(default_factory=dict)
    """Lead -> the outcome of the attempt after a fault that closed it because its rule ran out."""


class Checker:
    def __init__(self, db_path: str, pbx: DaemonPbx, ledger: Ledger) -> None:
        self._db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
        self.pbx = pbx
        self.ledger = ledger
        self.step = 0
        self._window: CallingWindow = ledger.campaign.calling_hours.window()

    def close(self) -> None:
        self._db.close()

    def _attempts(self) -> dict[str, Attempt]:
        rows = self._db.execute(
            "SELECT id, lead_id, phone, dialed_at, ended_at, outcome, answered_at, abandoned, cut_short"
            " FROM call_attempts ORDER BY dialed_at, id"
        ).fetchall()
        return {
            row[0]: Attempt(row[0], row[1], row[2], _epoch(row[3]) or 0.0, _epoch(row[4]), row[5],
                            _epoch(row[6]), bool(row[7]), bool(row[8]))
            for row in rows
        }

    def check(self, now: float, *, final: bool = False) -> Violation | None:
        self.step += 1
        attempts = self._attempts()
        leads = self._db.execute(
            "SELECT id, phone, state, lease_attempt_id, final_outcome FROM leads ORDER BY id"
        ).fetchall()
        for check in (self._one_call_per_agent, self._final_rows_stay, self._dial_log_matches, self._no_redial_inside_delay,
                      self._no_listed_number, self._inside_window, self._leads_kept, self._abandon_rate):
            found = check(now, attempts, leads, final)
            if found is not None:
                return found
        return None

    def _violation(self, name: str, now: float, *facts: str) -> Violation:
        return Violation(name, now, self.step, list(facts))

    def _one_call_per_agent(self, now, attempts, leads, final) -> Violation | None:
        for agent, intervals in self.pbx.bridged.items():
            ordered = sorted(intervals, key=lambda b: b.start)
            for first, second in zip(ordered, ordered[1:]):
                if first.end is None or second.start < first.end:
                    return self._violation("no agent on two calls", now,
                                           f"{agent} bridged to {second.attempt_id} at {second.start:.1f} while on"
                                           f" {first.attempt_id} (since {first.start:.1f}, until {first.end})")
        return None

    def _final_rows_stay(self, now, attempts, leads, final) -> Violation | None:
        for aid, attempt in attempts.items():
            seen = self.ledger.outcomes.get(aid)
            if seen is not None and attempt.outcome != seen:
                return self._violation("every attempt ends with one final row", now,
                                       f"attempt {aid} was {seen}, now {attempt.outcome}")
            if attempt.outcome is not None:
                self.ledger.outcomes[aid] = attempt.outcome
        if final:
            open_rows = [a for a in attempts.values() if a.outcome is None]
            if open_rows:
                a = open_rows[0]
                return self._violation("every attempt ends with one final row", now,
                                       f"{len(open_rows)} attempt(s) never ended, e.g. {a.id} to {a.phone}",
                                       f"calls still up in the PBX: {self.pbx.live_calls()}")
        return None

    def _dial_log_matches(self, now, attempts, leads, final) -> Violation | None:
        for dial in self.pbx.dial_log:
            if dial.attempt_id not in attempts and (final or now - dial.at > 60):
                return self._violation("every attempt ends with one final row", now,
                                       f"the PBX dialed {dial.number} as {dial.attempt_id} with no attempt row")
        return None

    def _no_redial_inside_delay(self, now, attempts, leads, final) -> Violation | None:
        by_number: dict[str, list[tuple[float, str]]] = {}
        for dial in self.pbx.dial_log:
            by_number.setdefault(dial.number, []).append((dial.at, dial.attempt_id))
        for number, dials in by_number.items():
            for (first_at, first), (second_at, second) in zip(dials, dials[1:]):
                before = attempts.get(first)
                if before is None:
                    continue
                if before.ended_at is None or before.outcome is None:
                    return self._violation(
                        "no number dialed again inside its retry delay", now,
                        f"{number} dialed at {first_at:.1f} ({first}) and again at {second_at:.1f} ({second})"
                        " while the first attempt was still open")
                # A call cut short is due again by the `interrupted` rule, whatever its outcome says.
                rule = "interrupted" if before.cut_short else before.outcome
                delay = self.ledger.retry_delay_s.get(rule)
                if delay is None:
                    return self._violation(
                        "no number dialed again inside its retry delay", now,
                        f"{number} dialed again at {second_at:.1f} ({second}) after a final {rule}"
                        f" at {before.ended_at:.1f} ({first}), which has no retry")
                if second_at < before.ended_at + delay - 1.0:
                    return self._violation(
                        "no number dialed again inside its retry delay", now,
                        f"{number}: {rule} ended {before.ended_at:.1f} ({first}); retry delay {delay:.0f} s;"
                        f" dialed again {second_at - before.ended_at:.1f} s later ({second})")
        return None

    def _no_listed_number(self, now, attempts, leads, final) -> Violation | None:
        for attempt in attempts.values():
            listed = self.ledger.listed_at.get(attempt.phone)
            if listed is not None and attempt.dialed_at >= listed and attempt.id in self._dialed():
                return self._violation("no denied or DNC number dialed", now,
                                       f"{attempt.phone} listed at {listed:.1f}, attempt {attempt.id} leased at"
                                       f" {attempt.dialed_at:.1f} and dialed")
        return None

    def _dialed(self) -> set[str]:
        return {d.attempt_id for d in self.pbx.dial_log}

    def _inside_window(self, now, attempts, leads, final) -> Violation | None:
        zone = ZoneInfo(self.ledger.zone)
        window = self._window
        for dial in self.pbx.dial_log:
            # The moment the PBX dialed, less the time a lease may take to become an Originate.
            for moment in (dial.at, dial.at - SCREEN_TO_DIAL_S):
                local = datetime.fromtimestamp(moment, zone)
                minute = local.hour * 60 + local.minute
                if (local.weekday() in window.days and local.date() not in window.holidays
                        and window.start_minute <= minute < window.end_minute):
                    break
            else:
                return self._violation("no call outside its window", now,
                                       f"{dial.number} ({dial.attempt_id}) dialed at "
                                       f"{datetime.fromtimestamp(dial.at, zone).isoformat()} local")
        return None

    def _leads_kept(self, now, attempts, leads, final) -> Violation | None:
        ids = {row[0] for row in leads}
        missing = self.ledger.imported - ids
        if missing:
            return self._violation("no lead lost or closed by a fault", now, f"leads gone: {sorted(missing)[:5]}")
        last: dict[int, Attempt] = {}
        for attempt in attempts.values():
            last[attempt.lead_id] = attempt
        for lead_id, phone, state, lease, final_outcome in leads:
            if state == "leased":
                row = attempts.get(lease or "")
                if row is None or row.outcome is not None or final:
                    return self._violation("no lead lost or closed by a fault", now,
                                           f"lead {lead_id} ({phone}) leased to attempt {lease}, which is "
                                           f"{'missing' if row is None else row.outcome or 'still open at the end'}")
            if state == "done" and lead_id in last and final_outcome == last[lead_id].outcome:
                # Closed by its last attempt (not by the screening: a number denied or listed since).
                attempt = last[lead_id]
                cut = attempt.id in self.pbx.cut_by_restart and attempt.outcome != "answered"
                if attempt.outcome in FAULT_OUTCOMES or attempt.cut_short or cut:
                    if not self._rule_spent(lead_id, attempt, attempts):
                        return self._violation("no lead lost or closed by a fault", now,
                                               f"lead {lead_id} ({phone}) done ({final_outcome}) after attempt"
                                               f" {attempt.id}: {attempt.outcome}, cut short {attempt.cut_short},"
                                               f" cut by a PBX restart {cut}")
                    self.ledger.closed_by_rule[lead_id] = attempt.outcome or ""
        return None

    def _rule_spent(self, lead_id: int, last: Attempt, attempts) -> bool:
        """Whether the lead's own rule for that kind of fault ran out: `interrupted` counts the
        lead's interrupted and cut-short attempts only, `refused` the lead's refusals only
        (dialer.core.faults: a refusal gives its attempt back, like an interrupted call)."""
        rules = retry_rules(self.ledger.campaign.retries)
        mine = [a for a in attempts.values() if a.lead_id == lead_id]
        if last.outcome == Outcome.interrupted or last.cut_short:
            rule = rules.get(FAULT_OUTCOME, DEFAULT_FAULT_RULE)
            spent = sum(1 for a in mine if a.outcome == Outcome.interrupted or a.cut_short)
        elif last.outcome in rules:
            # A call a PBX restart cut yet ended as the customer's outcome: only that outcome's own
            # count excuses the close, so a cause-0 hang-up read as a customer's answer is still caught.
            rule = rules[last.outcome]
            spent = sum(1 for a in mine if a.outcome == last.outcome)
        else:
            return False
        return spent >= rule.max_attempts

    def _abandon_rate(self, now, attempts, leads, final) -> Violation | None:
        live = [a for a in attempts.values() if a.answered_at is not None and a.outcome is not None
                and not a.cut_short and a.outcome in LIVE_ANSWER]
        if len(live) < ABANDON_MIN_ANSWERS:
            return None
        abandoned = sum(1 for a in live if a.abandoned)
        limit = self.ledger.campaign.dialing.abandon_limit
        # One call over the ceiling's share is the pacing's own granularity (it may place one call).
        if abandoned > limit * len(live) + 1:
            return self._violation("abandon rate within the limit per window", now,
                                   f"{abandoned} abandoned of {len(live)} live answers "
                                   f"({abandon_rate(abandoned, len(live)):.1%} > {limit:.0%})")
        return None


def agent_on_two_calls(pbx: DaemonPbx, agent: str, attempt_id: str, at: float) -> str | None:
    for start, end, other in pbx.bridged.get(agent, []):
        if end is None and other != attempt_id:
            return f"{agent} bridged to {attempt_id} at {at:.1f} while still on {other} (since {start:.1f})"
    return None
