"""The chaos run's lab: its numbers, config, campaign files, leads and do-not-call list.

Two campaigns are checked. `chaos` holds several hundred sandbox customers
(numbers kept as written; their digits script what they do, see
`dialer.sandbox.customers`). `guard` reads numbers as E.164 with region US and
holds real-looking numbers, some on the do-not-call list in their other written
form; any of them reaching the carrier gets a 404, so a dial shows in SIPp's log.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialer.config.models import DialerConfig
from dialer.sandbox import CustomerKind, SandboxState, customer_number
from tests.integration.chaos.run_record import NumberPlan, RetryRule

CHAOS = "chaos"
GUARD = "guard"
RING_TIMEOUT_S = 5
DEFAULT_CPS = 10.0  # for a trunk dialer.yaml does not list (issue 11, item 14)
CHAOS_CPS = 6.0
HISTORY_ANSWERED = 150
CANARY = "6666666666"  # what an injected AMI Originate dials; the carrier 404s it
DENY_PATTERN = r"^1[0-9]{5}99[0-9]{2}$"  # answering customers with serial 99xx
# Retry delays short enough for retries inside a 3-minute run.
CHAOS_RETRIES = {
    "busy": {"delay_minutes": 0.3, "max_attempts": 3},
    "no_answer": {"delay_minutes": 0.4, "max_attempts": 2},
    "congestion": {"delay_minutes": 0.2, "max_attempts": 3},
    "abandoned": {"delay_minutes": 0.3, "max_attempts": 3},
    "interrupted": {"delay_minutes": 0.15, "max_attempts": 4},
}
GUARD_RETRIES = {"interrupted": {"delay_minutes": 0.15, "max_attempts": 4}}
# kind, ring seconds, talk seconds, share of the leads
# Three agents take the answering customers, so they are a sixth of the list and
# talk briefly: the run is about faults, and wants many calls and retries in minutes.
MIX = [
    (CustomerKind.ANSWER, 1, 2, 0.09),
    (CustomerKind.ANSWER, 2, 3, 0.06),
    (CustomerKind.ANSWER, RING_TIMEOUT_S + 3, 3, 0.02),  # answers too late: no answer
    (CustomerKind.BUSY, 1, 0, 0.20),
    (CustomerKind.NO_ANSWER, 0, 0, 0.06),
    (CustomerKind.REJECT, 1, 0, 0.12),
    (CustomerKind.CONGESTION, 1, 0, 0.20),
    (CustomerKind.NOT_FOUND, 0, 0, 0.25),
]
# The guard campaign's numbers (E.164; fictional 555-01xx numbers, valid for libphonenumber).
GUARD_CONTROL_CSV = "+12025550123"
GUARD_DNC_NATIONAL = "2025550177"  # listed in national form; the lead comes in E.164
GUARD_DNC_E164 = "+12025550188"  # listed in E.164; the lead comes through the API in national form
GUARD_CONTROL_API = "2025550145"
PREMIUM = ("+41900123456", "+8860204123456")


def written_forms(number: str) -> set[str]:
    """The forms a US number may reach the carrier in, however it was stored."""
    digits = number.lstrip("+")
    national = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    return {"+1" + national, "1" + national, national} if len(national) == 10 else {number, digits, "+" + digits}


@dataclass
class ChaosLab:
    dir: Path
    config: Path
    campaigns: Path
    staging: Path
    token: str
    http_port: int
    proxy_port: int
    seed: int
    leads: int
    numbers: NumberPlan = field(default_factory=NumberPlan)
    chaos_csv: list[str] = field(default_factory=list)
    dnc_before: list[str] = field(default_factory=list)
    dnc_during: list[str] = field(default_factory=list)
    api_chaos: list[tuple[str, str]] = field(default_factory=list)  # (number, why)
    api_guard: list[tuple[str, str]] = field(default_factory=list)
    controls: set[str] = field(default_factory=set)
    """Allowed numbers added late (API) whose dial shows the checks above are not vacuous."""
    secret_marker: str = ""
    cps_limit: float = DEFAULT_CPS
    cps_source: str = "default (trunk not listed)"

    @property
    def db(self) -> Path:
        return self.dir / "dialer.db"

    def retry_rules(self) -> dict[str, dict[str, RetryRule]]:
        def rules(spec: dict[str, dict[str, float]]) -> dict[str, RetryRule]:
            return {k: RetryRule(v["delay_minutes"] * 60.0, int(v["max_attempts"])) for k, v in spec.items()}

        return {CHAOS: rules(CHAOS_RETRIES), GUARD: rules(GUARD_RETRIES)}


def chaos_campaign(max_lines: int = 16, mode: str = "ratio") -> dict[str, Any]:
    return {
        "name": CHAOS,
        "type": "telemarketing",
        "trunk": "PJSIP/{number}@carrier",
        "caller_id": "+15550100",
        "queue": "sales",
        "dialing": {
            "mode": mode,
            "ratio": 3.0,
            "ring_timeout": RING_TIMEOUT_S,
            "allow_short_ring": True,
            "max_lines": max_lines,
            "agent_wait": 2,
        },
        "numbers": {"format": "as_is", "deny": [DENY_PATTERN]},
        "retries": CHAOS_RETRIES,
    }


def guard_campaign() -> dict[str, Any]:
    return {
        "name": GUARD,
        "type": "callback",
        "trunk": "PJSIP/{number}@carrier",
        "caller_id": "+15550100",
        "queue": "sales",
        "dialing": {"mode": "progressive", "ring_timeout": RING_TIMEOUT_S, "allow_short_ring": True, "max_lines": 2},
        "calling_hours": {"start": "00:00", "end": "24:00"},
        "numbers": {"format": "e164", "default_region": "US"},
        "retries": GUARD_RETRIES,
    }


def dropped_campaign(name: str, rng: random.Random) -> dict[str, Any]:
    """One of the 50 files dropped at once: valid, no leads, some disabled."""
    return {
        "name": name,
        "type": rng.choice(["telemarketing", "survey", "callback"]),
        "enabled": rng.random() > 0.2,
        "trunk": "PJSIP/{number}@carrier",
        "caller_id": "+15550100",
        "queue": "sales",
        "dialing": {"mode": rng.choice(["progressive", "ratio"]), "max_lines": rng.randint(1, 5)},
        "numbers": {"format": "as_is"},
    }


def hostile_campaign(name: str) -> dict[str, Any]:
    """A dropped file whose caller ID carries a whole AMI action (issue 11, item 2)."""
    campaign = dropped_campaign(name, random.Random(name))
    campaign["enabled"] = True
    campaign["caller_id"] = (
        f"+15550100\r\n\r\nAction: Originate\r\nChannel: PJSIP/{CANARY}@carrier\r\nApplication: Wait\r\nData: 1"
    )
    return campaign


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_numbers(lab: ChaosLab) -> None:
    rng = random.Random(lab.seed)
    extra = 40
    serial = rng.randrange(0, 9899 - lab.leads - extra)
    plan = lab.numbers

    def take(kind: CustomerKind, ring: int, talk: int) -> str:
        nonlocal serial
        number = customer_number(kind, ring, talk, serial)
        serial += 1
        if kind is CustomerKind.ANSWER:
            plan.talk_s[number] = talk
        return number

    weights = [share for *_, share in MIX]
    for _ in range(lab.leads):
        kind, ring, talk, _share = rng.choices(MIX, weights)[0]
        lab.chaos_csv.append(take(kind, ring, talk))
    rng.shuffle(lab.chaos_csv)
    for number in lab.chaos_csv:
        plan.allow(number, CHAOS)
    # On the list before the start, and imported anyway: never dialed.
    lab.dnc_before = [take(CustomerKind.ANSWER, 1, 3) for _ in range(6)]
    for number in lab.dnc_before:
        plan.forbid(number, "on the global do-not-call list")
    # Imported last, listed mid-run: not dialed from then on (since is set when listed).
    lab.dnc_during = [take(CustomerKind.ANSWER, 1, 3) for _ in range(6)]
    for number in lab.dnc_during:
        plan.allow(number, CHAOS)
    denied = [customer_number(CustomerKind.ANSWER, 1, 3, 9900 + rng.randrange(0, 50)) for _ in range(4)]
    denied = sorted(set(denied))
    for number in denied:
        plan.forbid(number, f"denied by the campaign's rule {DENY_PATTERN}")
    lab.chaos_csv += lab.dnc_before + denied + lab.dnc_during

    # Through the API, mid-run (issue 11, item 5: one intake for every way in).
    for _ in range(3):
        number = take(CustomerKind.ANSWER, 1, 3)
        lab.api_chaos.append((number, "allowed"))
        plan.allow(number, CHAOS)
        lab.controls.add(number)
    api_dnc = take(CustomerKind.ANSWER, 1, 3)
    lab.dnc_before.append(api_dnc)
    plan.forbid(api_dnc, "on the global do-not-call list (lead added through the API)")
    lab.api_chaos.append((api_dnc, "dnc"))
    api_denied = customer_number(CustomerKind.ANSWER, 1, 3, 9950 + rng.randrange(0, 49))
    plan.forbid(api_denied, f"denied by the campaign's rule {DENY_PATTERN} (lead added through the API)")
    lab.api_chaos.append((api_denied, "denied"))
    lab.api_chaos.append(("+19005550123", "premium"))

    for form in written_forms(GUARD_CONTROL_CSV) | written_forms(GUARD_CONTROL_API):
        plan.allow(form, GUARD)
    lab.controls |= written_forms(GUARD_CONTROL_CSV) | written_forms(GUARD_CONTROL_API)
    for form in written_forms(GUARD_DNC_NATIONAL):
        plan.forbid(form, f"on the do-not-call list as {GUARD_DNC_NATIONAL} (national form)")
    for form in written_forms(GUARD_DNC_E164):
        plan.forbid(form, f"on the do-not-call list as {GUARD_DNC_E164} (lead added through the API as national)")
    for premium in (*PREMIUM, "+19005550123"):
        for form in (premium, premium.lstrip("+")):
            plan.forbid(form, "premium rate (added through the API)")
    lab.api_guard = [
        (GUARD_DNC_E164[2:], "dnc"),
        (PREMIUM[0], "premium"),
        (PREMIUM[1], "premium"),
        (GUARD_CONTROL_API, "allowed"),
    ]
    plan.forbid(CANARY, "AMI injection canary: an injected Originate dialed it")


def write_lab(lab: ChaosLab, sandbox: SandboxState, trunks_supported: bool | None = None) -> None:
    """Files of the lab; `trunks_supported`: whether the daemon's checkout reads `trunks`
    in dialer.yaml (default: this checkout's)."""
    lab.campaigns.mkdir(parents=True, exist_ok=True)
    lab.staging.mkdir(parents=True, exist_ok=True)
    write_yaml(lab.campaigns / f"{CHAOS}.yaml", chaos_campaign())
    write_yaml(lab.campaigns / f"{GUARD}.yaml", guard_campaign())
    (lab.dir / "ami-secret").write_text(sandbox.ami.secret)
    (lab.dir / "api-token").write_text(lab.token)
    config: dict[str, Any] = {
        "ami": [
            {
                "host": "127.0.0.1",
                "port": lab.proxy_port,
                "username": sandbox.ami.username,
                "secret_file": str(lab.dir / "ami-secret"),
                "connect_timeout": 3.0,
                "action_timeout": 4.0,
                "ping_interval": 2.0,
            }
        ],
        "database": {"url": "sqlite+aiosqlite:///dialer.db"},
        "campaign_dir": "campaigns",
        "logging": {"level": "info", "format": "json"},
        "agents": [{"id": a.id, "interface": a.interface, "queues": ["sales"]} for a in sandbox.agents],
        "http": {"bind": "127.0.0.1", "port": lab.http_port, "token_file": str(lab.dir / "api-token")},
        "default_region": "US",
        "drain_timeout": 10,
    }
    if trunks_supported is None:
        trunks_supported = "trunks" in DialerConfig.model_fields
    if trunks_supported:
        config["trunks"] = [{"name": "carrier", "calls_per_second": CHAOS_CPS}]
        lab.cps_limit, lab.cps_source = CHAOS_CPS, "dialer.yaml trunks"
    write_yaml(lab.config, config)
    (lab.dir / "chaos-leads.csv").write_text(
        "phone,name\n" + "".join(f"{n},Customer {i}\n" for i, n in enumerate(lab.chaos_csv, 1))
    )
    (lab.dir / "guard-leads.csv").write_text(f"phone,name\n{GUARD_CONTROL_CSV},Control\n+1{GUARD_DNC_NATIONAL},Listed\n")
    # A file outside the campaign directory that a planted symlink points at (item 6).
    lab.secret_marker = "chaos-secret-" + secrets.token_hex(8)
    (lab.dir / "outside-secret.txt").write_text(f"root:{lab.secret_marker}:19000:0:99999:7:::\n")


def new_lab(root: Path, seed: int, leads: int, http_port: int, proxy_port: int) -> ChaosLab:
    root.mkdir(parents=True, exist_ok=True)
    lab = ChaosLab(
        dir=root,
        config=root / "dialer.yaml",
        campaigns=root / "campaigns",
        staging=root / "staging",
        token=secrets.token_urlsafe(32),
        http_port=http_port,
        proxy_port=proxy_port,
        seed=seed,
        leads=leads,
    )
    make_numbers(lab)
    return lab


SEED_HISTORY = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
from dialer.leads.csv_import import LeadRow
from dialer.store.store import Store

async def main(db, campaign, calls):
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        campaign_id = await store.sync_campaign(campaign, "telemarketing")
        await store.import_leads(campaign_id, [LeadRow(line=i, phone=f"0{i:09d}") for i in range(calls)])
        then = datetime.now(UTC) - timedelta(hours=1)
        for lease in await store.lease_due_leads(campaign_id, calls, then):
            await store.finish_attempt(
                lease.attempt_id, outcome="answered", lead_state="done", answered_at=then + timedelta(seconds=3),
                bridged_at=then + timedelta(seconds=3), ended_at=then + timedelta(seconds=60),
            )
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""
"""Answered calls from an hour ago in the campaign's abandon window, so ratio and predictive
pacing may dial ahead of the agents from the first tick, within the budget they earn. A
script, run with the daemon's own checkout: its schema is the one the daemon expects."""
