"""`dialer leads import` with E.164 numbers, `dialer dnc`, `dialer callbacks list` and
`dialer events import`, run as a user runs them (argv in, output and exit code out), on SQLite
and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dialer.cli.main import main
from dialer.store.schema import leads
from dialer.store.store import Store


def setup(
    tmp: Path, *campaigns: dict[str, Any], default_region: str | None = "US", url: str = "sqlite+aiosqlite:///dialer.db"
) -> Path:
    (tmp / "campaigns").mkdir()
    for campaign in campaigns:
        body = {
            "type": "telemarketing",
            "trunk": "PJSIP/{number}@carrier",
            "caller_id": "+15550100",
            "queue": "sales",
            **campaign,
        }
        (tmp / "campaigns" / f"{campaign['name']}.yaml").write_text(yaml.safe_dump(body))
    config = tmp / "dialer.yaml"
    settings: dict[str, Any] = {
        "ami": [{"username": "dialer", "secret": "x"}],
        "database": {"url": url},
        "campaign_dir": "campaigns",
    }
    if default_region:
        settings["default_region"] = default_region
    config.write_text(yaml.safe_dump(settings))
    return config


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


async def lead_rows(url: str) -> list[dict[str, Any]]:
    store = await Store.open(url)
    try:
        async with store.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(select(leads).order_by(leads.c.id))).mappings()]
    finally:
        await store.close()


def test_leads_import_normalises_to_e164_and_rejects_invalid_numbers_by_line(tmp_path: Path, store_url: str, capsys) -> None:
    config = setup(tmp_path, {"name": "sales"}, url=store_url)
    (tmp_path / "leads.csv").write_text("phone,name\n(212) 555-0123,Ann\n12345,Bob\n+44 20 7946 0018,Cy\n")
    code, out, err = run(capsys, config, "leads", "import", "sales", str(tmp_path / "leads.csv"))
    assert code == 1
    assert "imported 2 lead(s)" in out
    assert f"{tmp_path / 'leads.csv'}:3: phone: not a valid number in US: '12345'" in err
    rows = asyncio.run(lead_rows(store_url))
    assert [r["phone"] for r in rows] == ["+12125550123", "+442079460018"]


def test_an_as_is_campaign_keeps_lab_numbers(tmp_path: Path, capsys) -> None:
    config = setup(tmp_path, {"name": "lab", "numbers": {"format": "as_is"}}, default_region=None)
    (tmp_path / "leads.csv").write_text("phone\n1030200007\n")
    code, out, _ = run(capsys, config, "leads", "import", "lab", str(tmp_path / "leads.csv"))
    assert code == 0 and "imported 1 lead(s)" in out


def test_dnc_import_add_list_remove(tmp_path: Path, store_url: str, capsys) -> None:
    config = setup(tmp_path, {"name": "sales"}, url=store_url)
    (tmp_path / "dnc.csv").write_text("phone\n212-555-0123\n+1 310 555 0100\nnonsense\n")
    code, out, err = run(capsys, config, "dnc", "import", str(tmp_path / "dnc.csv"))
    assert (code, out.strip()) == (1, "the global list: 2 number(s) added, 0 already listed, 1 row(s) rejected")
    assert ":4: phone:" in err
    code, out, _ = run(capsys, config, "dnc", "add", "--campaign", "sales", "(212) 555-0199", "+12125550123")
    assert (code, out.strip()) == (0, "campaign sales's list: 2 number(s) added, 0 already listed")
    code, out, _ = run(capsys, config, "dnc", "list")
    assert [line.split("\t")[:2] for line in out.splitlines()] == [
        ["+12125550123", "global"],
        ["+13105550100", "global"],
    ]
    code, out, _ = run(capsys, config, "dnc", "list", "--all")
    assert len(out.splitlines()) == 4
    code, out, _ = run(capsys, config, "dnc", "remove", "+13105550100")
    assert out.strip() == "the global list: 1 number(s) removed"
    code, _, err = run(capsys, config, "dnc", "add", "--campaign", "nope", "+12125550123")
    assert code == 2 and "no campaign named 'nope'" in err


def test_callbacks_list_shows_scheduled_callbacks(tmp_path: Path, store_url: str, capsys) -> None:
    from dialer.config.loader import load_campaign_dir
    from dialer.dispositions import apply_disposition
    from dialer.leads.csv_import import LeadRow

    config = setup(tmp_path, {"name": "sales"}, url=store_url)
    code, out, _ = run(capsys, config, "callbacks", "list")
    assert (code, out.strip()) == (0, "no callbacks scheduled")

    async def schedule() -> None:
        store = await Store.open(store_url)
        try:
            campaign_id = await store.sync_campaign("sales", "telemarketing")
            await store.import_leads(campaign_id, [LeadRow(line=2, phone="+12125550123")])
            [lease] = await store.lease_due_leads(campaign_id, 1, datetime.now(UTC))
            campaigns, _ = load_campaign_dir(tmp_path / "campaigns")
            await apply_disposition(
                store,
                campaigns,
                attempt_id=lease.attempt_id,
                code="callback",
                now=datetime.now(UTC),
                callback_at=datetime(2030, 1, 2, 15, 0, tzinfo=UTC),
                agent="agent2",
            )
        finally:
            await store.close()

    asyncio.run(schedule())
    code, out, _ = run(capsys, config, "callbacks", "list")
    assert "2030-01-02 15:00:00  sales            +12125550123     agent2       scheduled" in out
    code, out, _ = run(capsys, config, "callbacks", "list", "--json")
    [entry] = json.loads(out)
    assert (entry["number"], entry["agent"], entry["due_at"], entry["state"]) == (
        "+12125550123",
        "agent2",
        "2030-01-02T15:00:00Z",
        "scheduled",
    )


def test_events_import_schedules_revisits_n_days_after_each_event_once(tmp_path: Path, store_url: str, capsys) -> None:
    config = setup(
        tmp_path,
        {"name": "revisits", "type": "callback", "revisit": {"complaint_closed": 7, "low_satisfaction": 2}},
        {"name": "sales"},
        url=store_url,
    )
    (tmp_path / "events.csv").write_text(
        "phone,event,date,name\n"
        "(212) 555-0123,complaint_closed,2026-11-20,Ann\n"
        "+1 310 555 0100,low_satisfaction,2026-11-21T09:30:00-08:00,Bob\n"
        "+1 415 555 0100,new_customer,2026-11-21,Cy\n"  # no campaign revisits new customers
        "+1 415 555 0101,birthday,2026-11-21,Dee\n"
    )
    code, out, err = run(capsys, config, "events", "import", str(tmp_path / "events.csv"))
    # All or nothing: one bad row and nothing is imported.
    assert code == 2 and f"{tmp_path / 'events.csv'}:5: event: unknown event 'birthday'" in err
    assert out == "" and not (tmp_path / "dialer.db").exists()
    assert asyncio.run(lead_rows(store_url)) == []
    (tmp_path / "events.csv").write_text((tmp_path / "events.csv").read_text().replace("birthday", "new_customer"))
    code, out, err = run(capsys, config, "events", "import", str(tmp_path / "events.csv"))
    assert code == 0, err
    assert out.strip() == "revisits: 2 revisit(s) scheduled, 0 already imported, 0 lead(s) in a call now"
    rows = asyncio.run(lead_rows(store_url))
    assert [(r["phone"], r["state"], r["next_attempt_at"]) for r in rows] == [
        ("+12125550123", "pending", datetime(2026, 11, 27)),
        ("+13105550100", "pending", datetime(2026, 11, 23, 17, 30)),
    ]
    code, out, _ = run(capsys, config, "events", "import", str(tmp_path / "events.csv"))
    assert out.strip() == "revisits: 0 revisit(s) scheduled, 2 already imported, 0 lead(s) in a call now"


def test_campaign_rule_fields_are_validated_with_their_line(tmp_path: Path, capsys) -> None:
    setup(tmp_path, {"name": "sales", "calling_hours": {"start": "21:00", "end": "08:00"}})
    (tmp_path / "campaigns" / "bad.yaml").write_text(
        "name: bad\ntype: telemarketing\ntrunk: PJSIP/{number}@c\ncaller_id: '1'\nqueue: q\n"
        "retries:\n  busy: {delay_minutes: 5, max_attempts: 0}\ndispositions:\n  Sale!: close\n"
    )
    code = main(["validate", str(tmp_path / "campaigns")])
    out, err = capsys.readouterr()
    err += out
    assert code != 0
    assert "sales.yaml" in err and "calling_hours" in err and "before end" in err
    assert "bad.yaml:7: retries.busy.max_attempts" in err
    assert "dispositions" in err
