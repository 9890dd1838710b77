"""Big and hostile imports, run as a user runs them: `dialer leads import` writes in short
batches (another writer gets in between, a re-run after a crash adds nothing twice,
progress on stderr), `dialer events import` is all or nothing, and the CSV loader
survives arbitrary input within bounded time and memory."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.cli.main import main
from dialer.leads.csv_import import LeadImport, LeadRow, RowError, parse_leads_csv
from dialer.leads.phone_numbers import NumberPolicy
from dialer.store.store import Store

AREAS = (212, 213, 305, 312, 404, 415, 503, 617, 713)


def setup(tmp: Path, **campaign: object) -> Path:
    (tmp / "campaigns").mkdir()
    body = {
        "name": "bulk",
        "type": "telemarketing",
        "trunk": "PJSIP/{number}@carrier",
        "caller_id": "+15550100",
        "queue": "sales",
        "numbers": {"default_region": "US"},
        **campaign,
    }
    (tmp / "campaigns" / f"{body['name']}.yaml").write_text(yaml.safe_dump(body))
    config = tmp / "dialer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": [{"username": "dialer", "secret": "x"}],
                "database": {"url": f"sqlite+aiosqlite:///{tmp}/dialer.db"},
                "campaign_dir": str(tmp / "campaigns"),
            }
        )
    )
    return config


def us_number(i: int) -> str:
    return f"+1{AREAS[i % len(AREAS)]}{200 + i // len(AREAS) // 10_000}{i // len(AREAS) % 10_000:04d}"


def write_leads(path: Path, count: int) -> Path:
    path.write_text("phone,name\n" + "".join(f"{us_number(i)},Customer {i}\n" for i in range(count)))
    return path


def lead_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM leads").fetchone()[0]


def test_another_writer_gets_in_between_the_batches_of_a_big_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon's lease and outcome writes must not wait for a whole import (before: one
    transaction, so every other write failed with "database is locked" until it ended)."""
    rows = 6000
    config = setup(tmp_path)
    leads_csv = write_leads(tmp_path / "leads.csv", rows)
    monkeypatch.setattr("dialer.store.store.IMPORT_BATCH", 500, raising=False)
    db = tmp_path / "dialer.db"
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    result: list[int] = []
    importer = threading.Thread(
        target=lambda: result.append(main(["leads", "import", "bulk", str(leads_csv), "--config", str(config)]))
    )
    writes_during_import = 0
    locked = 0
    importer.start()
    with sqlite3.connect(db, timeout=2.0) as other:
        while importer.is_alive():
            try:
                other.execute("INSERT INTO agents (id, interface, state, state_changed_at) VALUES (?, 'x', 'x', '2026-01-01')",
                              (f"probe{writes_during_import}-{time.monotonic_ns()}",))
                other.commit()
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
                locked += 1
                continue
            visible = other.execute("SELECT count(*) FROM leads").fetchone()[0]
            if 0 < visible < rows:
                writes_during_import += 1
            time.sleep(0.01)
    importer.join()
    assert result == [0], capsys.readouterr().err[-2000:]
    assert lead_count(db) == rows
    assert writes_during_import > 0, f"no write got in while the import ran ({locked} refused as locked)"


def test_progress_is_shown_and_a_rerun_after_a_crash_adds_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path)
    leads_csv = write_leads(tmp_path / "leads.csv", 1000)
    monkeypatch.setattr("dialer.store.store.IMPORT_BATCH", 100, raising=False)
    # Ctrl-C (or a crash) after the third batch: three batches are in, the rest is not.
    from dialer.cli import leads as leads_cli

    shown = leads_cli.Progress.show

    def crash_after_three(progress: leads_cli.Progress, done: int) -> None:
        shown(progress, done)
        if done >= 300:
            raise KeyboardInterrupt

    monkeypatch.setattr(leads_cli.Progress, "show", crash_after_three)
    assert main(["leads", "import", "bulk", str(leads_csv), "--config", str(config)]) == 130
    assert lead_count(tmp_path / "dialer.db") == 300
    monkeypatch.setattr(leads_cli.Progress, "show", shown)
    capsys.readouterr()
    assert main(["leads", "import", "bulk", str(leads_csv), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "imported 700 lead(s), 300 already in the campaign, 0 row(s) rejected" in out
    # Not a terminal: one line per tenth of the file.
    progress = [line for line in err.splitlines() if "row(s) written" in line]
    assert progress[0] == "bulk: 100/1000 row(s) written (10 %)" and progress[-1].startswith("bulk: 1000/1000")
    assert len(progress) == 10
    assert lead_count(tmp_path / "dialer.db") == 1000


def test_bad_rows_are_reported_by_line_and_good_rows_kept_across_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path)
    monkeypatch.setattr("dialer.store.store.IMPORT_BATCH", 2, raising=False)
    lines = ["phone,name", "+12125550101,a", "+41900123456,premium", "+12125550102,b", "not a number,c",
             "+12125550103,=cmd|' /C calc'!A0", "+12125550104,\x00nul"]
    (tmp_path / "leads.csv").write_text("\n".join(lines) + "\n")
    code = main(["leads", "import", "bulk", str(tmp_path / "leads.csv"), "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{tmp_path / 'leads.csv'}:3: phone: '+41900123456' is a premium-rate number" in err
    assert f"{tmp_path / 'leads.csv'}:5: phone: not a phone number: 'not a number'" in err
    assert "imported 4 lead(s), 0 already in the campaign, 2 row(s) rejected" in out
    with sqlite3.connect(tmp_path / "dialer.db") as conn:
        names = dict(conn.execute("SELECT phone, name FROM customers"))
    # A formula is data; a NUL is cleaned out.
    assert names["+12125550103"] == "=cmd|' /C calc'!A0" and names["+12125550104"] == "nul"


# -- dialer events import ------------------------------------------------------------------


def test_an_events_file_with_an_absurd_date_imports_nothing_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, name="revisits", type="callback", revisit={"complaint_closed": 7})
    events = tmp_path / "events.csv"
    events.write_text(
        "phone,event,date\n"
        "+12125550123,complaint_closed,2026-11-20\n"
        "+13105550100,complaint_closed,9999-12-31\n"
        "+13105550101,complaint_closed,1970-01-01\n"
        "+13105550102,complaint_closed,2026-11-20T23:00:00-14:00\n"
    )
    code = main(["events", "import", str(events), "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert f"{events}:3: date: '9999-12-31' is out of range" in err
    assert f"{events}:4: date: '1970-01-01' is out of range" in err
    assert "nothing imported" in err and out == ""
    # Nothing written: not even the good rows' leads.
    db = tmp_path / "dialer.db"
    assert not db.exists() or lead_count(db) == 0
    events.write_text("phone,event,date\n+12125550123,complaint_closed,2026-11-20\n")
    assert main(["events", "import", str(events), "--config", str(config)]) == 0
    assert lead_count(db) == 1


# -- the CSV loader under arbitrary input -----------------------------------------------------


def check_result(result: LeadImport) -> None:
    assert isinstance(result, LeadImport)
    assert all(isinstance(e, RowError) and e.line >= 1 and e.message for e in result.errors)
    assert all(isinstance(r, LeadRow) for r in result.rows)
    phones = [r.phone for r in result.rows]
    assert len(phones) == len(set(phones))
    for row in result.rows:
        for text in (row.name or "", row.customer_id or "", *row.data, *row.data.values()):
            assert "\x00" not in text


CSV_BITS = st.sampled_from(
    ["phone", "name", "number", "value", "timezone", ",", ";", "\t", '"', '""', "\n", "\r", "\r\n", "\x00", "\ufeff",
     "+12125550123", "5550100", "=1+2", "@SUM(A1)", "-", "Europe/Paris", "../../etc/passwd", "1e999", "12,50", " "]
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(CSV_BITS, st.text(max_size=20)), max_size=60))
def test_any_text_gives_rows_and_line_errors_never_an_exception(parts: list[str]) -> None:
    text = "".join(parts)
    check_result(parse_leads_csv(text))
    check_result(parse_leads_csv(text, NumberPolicy(e164=True, default_region="US")))


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_any_bytes_in_a_file_give_rows_and_line_errors(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("csv") / "leads.csv"
    path.write_bytes(raw)
    check_result(parse_leads_csv(path, NumberPolicy(e164=True, default_region="US")))


@pytest.mark.parametrize(
    "text, message",
    [
        ("phone," + "," * 2_000_000 + "\n+12125550123,\n", "line longer than"),
        ("phone,name\n+12125550123," + "x" * 5_000_000 + "\n", "line longer than"),
        ('phone,name\n+12125550123,"' + "x\n" * 200_000 + '"\n', "field larger than field limit"),
        ("phone" + ",c" * 5000 + "\n+12125550123\n", "columns; at most"),
    ],
    ids=["two million columns", "a 5 MB field", "a quoted field of 200 000 lines", "5000 columns"],
)
def test_huge_lines_fields_and_headers_are_refused_within_bounded_memory(text: str, message: str) -> None:
    tracemalloc.start()
    try:
        result = parse_leads_csv(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert any(message in e.message for e in result.errors), result.errors[:3]
    assert peak < 5 * len(text) + 20_000_000, peak


def test_the_csv_field_limit_is_put_back_after_a_parse() -> None:
    import csv

    before = csv.field_size_limit()
    parse_leads_csv("phone\n+12125550123\n")
    assert csv.field_size_limit() == before


async def test_the_store_import_is_idempotent_under_concurrent_batches(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    try:
        campaign = await store.sync_campaign("bulk", "telemarketing")
        rows = [LeadRow(line=i, phone=us_number(i)) for i in range(300)]
        summaries = await asyncio.gather(*(store.import_leads(campaign, rows, batch_size=50) for _ in range(4)))
        assert sum(s.added for s in summaries) == 300
        assert all(s.added + s.already_in_campaign == 300 for s in summaries)
        assert len(await store.leads(campaign)) == 300
    finally:
        await store.close()
