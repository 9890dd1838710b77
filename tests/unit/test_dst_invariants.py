"""The simulation's check "no lead closed by a fault" against the campaign's own retry rules: a lead a
refusal closed is no violation once its refusals reach the `refused` rule's maximum (a refusal gives
its attempt back, like an interrupted, not-sent or cut-short one), and is one before."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from dialer.config.campaign_rules import retry_rules
from dialer.config.loader import load_campaign
from dialer.core.retry import Close, Retry, after_attempt
from dialer.dst.invariants import Checker, Ledger
from dialer.dst.pbx_world import DaemonPbx
from dialer.store.store import Store

START = datetime(2026, 6, 2, 15, 0)
PHONE = "+12125550100"


async def _checker(tmp_path: Path, outcomes: list[str]) -> Checker:
    """A database holding one lead, closed as `refused` by the last of `outcomes` (one attempt each)."""
    (tmp_path / "dst.yaml").write_text(yaml.safe_dump({
        "name": "dst", "type": "telemarketing", "trunk": "PJSIP/{number}@carrier", "caller_id": "+15550100",
        "queue": "sales", "calling_hours": {"start": "09:00", "end": "20:00"},
        "retries": {"no_answer": {"delay_minutes": 5, "max_attempts": 3},
                    "interrupted": {"delay_minutes": 3, "max_attempts": 3},
                    "refused": {"delay_minutes": 1, "max_attempts": 5}},
    }))
    campaign = load_campaign(tmp_path / "dst.yaml")
    db = tmp_path / "dialer.db"
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    await store.close()
    counted = sum(1 for o in outcomes if o not in ("interrupted", "not_sent", "refused"))
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO campaigns (id, name, type, created_at, updated_at)"
                     " VALUES (1, 'dst', 'telemarketing', ?, ?)", (str(START), str(START)))
        conn.execute("INSERT INTO customers (id, phone, created_at) VALUES (1, ?, ?)", (PHONE, str(START)))
        conn.execute("INSERT INTO leads (id, campaign_id, customer_id, phone, state, attempts, final_outcome, data,"
                     " created_at, final_reason) VALUES (1, 1, 1, ?, 'done', ?, 'refused', '{}', ?, 'max_attempts_refused')",
                     (PHONE, counted, str(START)))
        for n, outcome in enumerate(outcomes):
            at = START + timedelta(minutes=10 * n)
            conn.execute("INSERT INTO call_attempts (id, lead_id, campaign_id, phone, attempt_no, state, outcome,"
                         " dialed_at, ended_at, abandoned, cut_short) VALUES (?, 1, 1, ?, ?, 'ended', ?, ?, ?, 0, 0)",
                         (f"a{n}", PHONE, n + 1, outcome, str(at), str(at + timedelta(seconds=20))))
    checker = Checker(str(db), DaemonPbx(random.Random(0), ["PJSIP/agent1"], lambda _line: None),
                      Ledger(campaign, "America/New_York", {}))
    checker.ledger.imported.add(1)
    return checker


def _now() -> float:
    return START.replace(tzinfo=UTC).timestamp() + 3600.0


async def test_a_fifth_refusal_closes_a_lead_without_a_violation(tmp_path: Path) -> None:
    outcomes = ["no_answer", "refused", "refused", "refused", "refused", "refused"]
    checker = await _checker(tmp_path, outcomes)
    try:
        # The product's own rule closes it there, and not one refusal earlier.
        rules = retry_rules(checker.ledger.campaign.retries)
        assert after_attempt("refused", 5, START, rules) == Close("max_attempts_refused")
        assert isinstance(after_attempt("refused", 4, START, rules), Retry)
        assert checker.check(_now()) is None
        assert checker.ledger.closed_by_rule == {1: "refused"}
    finally:
        checker.close()


async def test_a_refusal_that_is_only_the_leads_fifth_attempt_is_a_violation(tmp_path: Path) -> None:
    # Seed 12 over 0.045 days, lead 64, before refusals gave their attempt back: one no_answer,
    # then four refusals, closed as max_attempts_refused though only four refusals came.
    checker = await _checker(tmp_path, ["no_answer", "refused", "refused", "refused", "refused"])
    try:
        found = checker.check(_now())
        assert found is not None and found.invariant == "no lead lost or closed by a fault"
        assert checker.ledger.closed_by_rule == {}
    finally:
        checker.close()


async def test_attempts_a_fault_gave_back_do_not_spend_the_refused_rule(tmp_path: Path) -> None:
    # Five rows, but an interrupted one and one never sent gave their attempts back: three counted.
    checker = await _checker(tmp_path, ["no_answer", "interrupted", "not_sent", "refused", "refused"])
    try:
        found = checker.check(_now())
        assert found is not None and found.invariant == "no lead lost or closed by a fault"
        assert "lead 1 " in found.facts[0] and ": refused," in found.facts[0]
        assert checker.ledger.closed_by_rule == {}
    finally:
        checker.close()
