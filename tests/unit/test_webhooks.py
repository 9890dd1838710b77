"""Disposition webhooks: the campaign fields, the outbox written with the disposition, and
the dispatcher against well-behaved and hostile receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from dialer.config.loader import ConfigError, load_campaign
from dialer.config.models import Campaign
from dialer.config.webhooks import WebhookConfig
from dialer.core import records as r
from dialer.core.webhook_delivery import ATTEMPT_HEADER, OutboxState
from dialer.dispositions import DispositionError, apply_disposition, on_disposition_event
from dialer.ivr.interpreter import Answer, AnswerStatus
from dialer.leads.intake import LeadRow
from dialer.store import webhook_outbox
from dialer.store.schema import call_attempts, leads, webhook_outbox as outbox_table
from dialer.store.store import Store
from dialer.store.survey_store import SurveyStore
from dialer.webhook_dispatcher import WebhookDispatcher
from dialer.webhook_report import add_webhooks, webhooks_text
from daemon_process import free_port
from webhook_receiver import Receiver

SECRET = "whsec-0123456789abcdef0123"
SECRET_ENV = "DIALER_TEST_HOOK_SECRET"


def campaign(url: str, **hook: Any) -> Campaign:
    return Campaign.model_validate(
        {
            "name": "revisit",
            "type": "survey",
            "trunk": "PJSIP/{number}@carrier",
            "caller_id": "+15550100",
            "queue": "sales",
            "dispositions": {"complaint": "close", "unhappy": "close", "sale": "close", "later": "callback"},
            "webhooks": [
                {
                    "name": "crm",
                    "url": url,
                    "dispositions": ["complaint", "unhappy"],
                    "secret_env": SECRET_ENV,
                    "first_retry": 0.05,
                    "max_retry": 0.1,
                    "timeout": 1,
                    **hook,
                }
            ],
        }
    )


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    handle = await Store.open(store_url)
    try:
        yield handle
    finally:
        await handle.close()


async def answered_attempts(store: Store, count: int) -> tuple[int, list[str]]:
    campaign_id = await store.sync_campaign("revisit", "survey")
    await store.import_leads(
        campaign_id,
        [
            LeadRow(line=i, phone=f"+1202555{i:04d}", name=f"Customer {i}", customer_id=f"C-{i}", tier="key")
            for i in range(count)
        ],
    )
    found = []
    for lease in await store.lease_due_leads(campaign_id, count, datetime.now(UTC)):
        await store.finish_attempt(lease.attempt_id, outcome="answered", lead_state="done")
        found.append(lease.attempt_id)
    return campaign_id, found


async def outbox_rows(store: Store) -> list[dict[str, Any]]:
    async with store._read() as conn:
        return [dict(row) for row in (await conn.execute(select(outbox_table).order_by(outbox_table.c.id))).mappings()]


# -- the campaign fields ----------------------------------------------------------------


def _load(tmp_path: Path, hook: dict[str, Any]) -> str:
    path = tmp_path / "c.yaml"
    body = yaml.safe_load(campaign("https://crm.example/hooks").model_dump_json(exclude={"webhooks"}))
    body["webhooks"] = [hook]
    path.write_text(yaml.safe_dump(body))
    try:
        load_campaign(path)
    except ConfigError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://crm.example/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://user:pw@crm.example/x", "credentials"),
        ("https://token@crm.example/x", "credentials"),
        ("https://crm.example/x?api_key=abc", "looks like a credential"),
        ("https://crm.example/x?a=1&Access-Token=abc", "looks like a credential"),
        ("https:///nohost", "names no host"),
        ("https://crm.example/x#frag", "fragment"),
        ("https://crm.example/a b", "spaces"),
        ("https://crm.example:99999/x", "not a URL"),
        ("https://crm.example/" + "a" * 2000, "longer than"),
    ],
)
def test_a_webhook_url_must_be_plain_http_or_https_without_credentials(tmp_path: Path, url: str, why: str) -> None:
    message = _load(tmp_path, {"name": "crm", "url": url, "secret_env": "X"})
    assert "webhooks.0.url" in message and why in message, message
    assert "pw@" not in message.split("webhooks.0.url")[1] or why == "credentials"


def test_a_webhook_needs_a_secret_from_env_or_file_never_inline(tmp_path: Path) -> None:
    assert "exactly one of secret_env, secret_file" in _load(tmp_path, {"name": "crm", "url": "https://a.example/"})
    inline = _load(tmp_path, {"name": "crm", "url": "https://a.example/", "secret": "hunter2-hunter2-hunter2"})
    assert "webhooks.0.secret" in inline and "hunter2" not in inline, inline
    assert "absolute" in _load(tmp_path, {"name": "crm", "url": "https://a.example/", "secret_file": "rel/secret"})
    both = {"name": "crm", "url": "https://a.example/", "secret_env": "X", "secret_file": "/etc/x"}
    assert "exactly one" in _load(tmp_path, both)


def test_a_webhook_names_only_codes_the_campaign_has_and_names_are_unique(tmp_path: Path) -> None:
    unknown = _load(tmp_path, {"name": "crm", "url": "https://a.example/", "secret_env": "X", "dispositions": ["nope"]})
    assert "unknown disposition code(s) nope" in unknown
    path = tmp_path / "twice.yaml"
    body = yaml.safe_load(campaign("https://crm.example/hooks").model_dump_json(exclude={"webhooks"}))
    hook = {"name": "crm", "url": "https://a.example/", "secret_env": "X"}
    body["webhooks"] = [hook, hook]
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError, match="appears twice"):
        load_campaign(path)
    assert "timeout" in _load(tmp_path, {**hook, "timeout": 0})
    assert "first_retry" in _load(tmp_path, {**hook, "first_retry": 60, "max_retry": 10})


def test_private_and_loopback_addresses_are_allowed() -> None:
    for url in ("http://10.1.2.3/hook", "http://127.0.0.1:8080/hook", "http://[::1]/hook", "https://crm.lan/x?y=1"):
        assert WebhookConfig(name="lan", url=url, secret_env="X").url == url


# -- the outbox, written with the disposition -------------------------------------------


async def test_the_disposition_and_its_delivery_are_written_together_with_the_whole_payload(store: Store) -> None:
    campaign_id, [attempt] = await answered_attempts(store, 1)
    surveys = SurveyStore(store)
    await surveys.start_survey(attempt, campaign_id, "satisfaction", datetime.now(UTC))
    await surveys.add_answer(attempt, campaign_id, 1, Answer("score", "2", AnswerStatus.answered, 1, "2", 0.0), datetime.now(UTC))
    await surveys.end_survey(attempt, "completed", datetime.now(UTC))
    settings = campaign("https://crm.example/hooks")
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    result = await apply_disposition(
        store, {"revisit": settings}, attempt_id=attempt, code="complaint", now=now, agent="agent1",
        notes="Boiler still leaks;\nsecond visit promised \"soon\"",
    )
    assert result.event_id
    [row] = await outbox_rows(store)
    assert (row["event_id"], row["state"], row["tries"], row["webhook"]) == (result.event_id, "pending", 0, "crm")
    assert row["secret_source"] == f"env:{SECRET_ENV}" and SECRET not in json.dumps(row, default=str)
    body = json.loads(row["body"])
    assert body == {
        "event_id": result.event_id,
        "event": "disposition",
        "occurred_at": "2026-11-30T12:00:00.000Z",
        "campaign": "revisit",
        "customer": {"id": "C-0", "name": "Customer 0", "phone": "+12025550000"},
        "tier": "key",
        "attempt": {
            "id": attempt,
            "number": 1,
            "phone": "+12025550000",
            "outcome": "answered",
            "dialed_at": body["attempt"]["dialed_at"],
        },
        "disposition": {"code": "complaint", "action": "close", "callback_at": None},
        "agent": "agent1",
        "notes": "Boiler still leaks;\nsecond visit promised \"soon\"",
        "survey": {
            "flow": "satisfaction",
            "status": "completed",
            "answers": [{"question": "score", "value": "2", "status": "answered"}],
        },
    }
    async with store._read() as conn:
        notes = (await conn.execute(select(call_attempts.c.disposition_notes))).scalar_one()
    assert notes.startswith("Boiler")


async def test_only_the_codes_a_webhook_names_are_queued(store: Store) -> None:
    _, attempts = await answered_attempts(store, 3)
    settings = {"revisit": campaign("https://crm.example/hooks")}
    now = datetime.now(UTC)
    sale = await apply_disposition(store, settings, attempt_id=attempts[0], code="sale", now=now)
    unhappy = await apply_disposition(store, settings, attempt_id=attempts[1], code="unhappy", now=now)
    later = now + timedelta(days=1)
    await apply_disposition(store, settings, attempt_id=attempts[2], code="later", now=now, callback_at=later)
    assert sale.event_id is None
    assert [row["event_id"] for row in await outbox_rows(store)] == [unhappy.event_id]


async def test_a_failed_disposition_writes_no_delivery_and_a_failed_outbox_write_no_disposition(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, [attempt] = await answered_attempts(store, 1)
    settings = {"revisit": campaign("https://crm.example/hooks")}
    with pytest.raises(DispositionError):
        await apply_disposition(store, settings, attempt_id=attempt, code="nope", now=datetime.now(UTC))

    async def broken(*_: Any, **__: Any) -> dict[str, Any]:
        raise OperationalError("INSERT INTO webhook_outbox", {}, Exception("disk I/O error"))

    monkeypatch.setattr(webhook_outbox, "_payload", broken)
    with pytest.raises(DispositionError, match="cannot record"):
        await apply_disposition(store, settings, attempt_id=attempt, code="complaint", now=datetime.now(UTC))
    assert await outbox_rows(store) == []
    async with store._read() as conn:
        row = (await conn.execute(select(call_attempts.c.disposition, leads.c.final_reason).join(
            leads, leads.c.id == call_attempts.c.lead_id))).one()
    assert tuple(row) == (None, None), "the disposition was rolled back with its delivery"


async def test_notes_are_bounded_and_plain_text(store: Store) -> None:
    _, [attempt] = await answered_attempts(store, 1)
    settings = {"revisit": campaign("https://crm.example/hooks")}
    with pytest.raises(DispositionError, match="at most 2000"):
        await apply_disposition(store, settings, attempt_id=attempt, code="complaint", now=datetime.now(UTC), notes="x" * 2001)
    with pytest.raises(DispositionError, match="control characters"):
        await apply_disposition(store, settings, attempt_id=attempt, code="complaint", now=datetime.now(UTC), notes="a\x1b[2Jb")
    assert await outbox_rows(store) == []


async def test_an_ami_disposition_with_notes_queues_its_delivery(store: Store) -> None:
    _, [attempt] = await answered_attempts(store, 1)
    record = r.DispositionRequested(
        attempt_id=attempt, at=1_764_500_000.0, code="unhappy", callback_at=None, agent="agent2", notes="Rude engineer"
    )
    result = await on_disposition_event(store, {"revisit": campaign("https://crm.example/hooks")}, record)
    assert result is not None and result.event_id
    body = json.loads((await outbox_rows(store))[0]["body"])
    assert (body["notes"], body["agent"], body["disposition"]["code"]) == ("Rude engineer", "agent2", "unhappy")


# -- the dispatcher -------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    handle = Receiver(free_port())
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()


async def queue(store: Store, settings: Campaign, count: int = 1) -> list[str]:
    _, attempts = await answered_attempts(store, count)
    ids = []
    for attempt in attempts:
        result = await apply_disposition(
            store, {"revisit": settings}, attempt_id=attempt, code="complaint", now=datetime.now(UTC)
        )
        assert result.event_id
        ids.append(result.event_id)
    return ids


async def drain(dispatcher: WebhookDispatcher, store: Store, until: Any, seconds: float = 10) -> list[dict[str, Any]]:
    """Run the dispatcher until `until(rows)` holds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        await dispatcher.dispatch_due()
        rows = await outbox_rows(store)
        if until(rows):
            return rows
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.02)


async def test_a_delivery_is_signed_carries_its_event_id_and_is_marked_delivered(
    store: Store, receiver: Receiver
) -> None:
    settings = campaign(receiver.url)
    [event_id] = await queue(store, settings)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings})
    try:
        rows = await drain(dispatcher, store, lambda rows: rows[0]["state"] == "delivered")
    finally:
        await dispatcher.close()
    [got] = receiver.received
    assert got.event_id == event_id and got.json()["event_id"] == event_id
    assert got.signed_by(SECRET.encode()) and not got.signed_by(b"another-secret-0123456")
    assert got.body == rows[0]["body"].encode(), "the stored bytes are the bytes signed and sent"
    assert got.headers["content-type"] == "application/json" and got.headers[ATTEMPT_HEADER.lower()] == "1"
    assert (rows[0]["tries"], rows[0]["last_status"], rows[0]["last_error"]) == (1, 204, None)


async def test_a_receiver_down_past_the_limit_makes_a_dead_letter_and_requeue_sends_it(
    store: Store, receiver: Receiver
) -> None:
    settings = campaign(receiver.url, max_attempts=3)
    receiver.mode, receiver.status = "status", 503
    [event_id] = await queue(store, settings)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings})
    try:
        rows = await drain(dispatcher, store, lambda rows: rows[0]["state"] == "dead")
        assert (rows[0]["tries"], rows[0]["failed_tries"], rows[0]["last_error"]) == (3, 3, "HTTP 503")
        assert [g.headers[ATTEMPT_HEADER.lower()] for g in receiver.received] == ["1", "2", "3"]
        assert {g.event_id for g in receiver.received} == {event_id}, "a retry carries the same event id"
        assert len({g.body for g in receiver.received}) == 1, "and the same bytes"
        summary = await webhook_outbox.summary(store)
        assert summary == [
            {"campaign": "revisit", "webhook": "crm", "delivered": 0, "pending": 0, "dead": 1, "failed_tries": 3,
             "last_error": "HTTP 503"}
        ]
        [dead] = await webhook_outbox.list_deliveries(store, state=OutboxState.dead)
        assert await webhook_outbox.requeue(store, datetime.now(UTC), ids=[dead.id + 1]) == 0
        receiver.mode = "ok"
        assert await webhook_outbox.requeue(store, datetime.now(UTC), campaign="revisit") == 1
        rows = await drain(dispatcher, store, lambda rows: rows[0]["state"] == "delivered")
    finally:
        await dispatcher.close()
    assert (rows[0]["tries"], rows[0]["failed_tries"]) == (1, 3)
    assert receiver.answered_ok == [event_id]
    report: dict[str, Any] = {}
    await add_webhooks(report, store, rows[0]["campaign_id"], settings)
    assert report["webhooks"]["crm"]["delivered"] == 1 and report["webhooks"]["crm"]["failed_tries"] == 3
    assert "crm" in webhooks_text(report) and "1 delivered" in webhooks_text(report)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("black_hole", "no answer within 1 s"),  # never answers
        ("drip", "no answer within 1 s"),  # answers a byte a second: per-phase timeouts would never fire
        ("redirect", "HTTP 302 redirect to 'http://127.0.0.2:9/elsewhere', not followed"),
    ],
)
async def test_hostile_receivers_cost_one_bounded_failed_try(
    store: Store, receiver: Receiver, mode: str, error: str
) -> None:
    settings = campaign(receiver.url)
    receiver.mode = mode
    await queue(store, settings)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings})
    try:
        rows = await drain(dispatcher, store, lambda rows: rows[0]["tries"] >= 1, seconds=5)
    finally:
        await dispatcher.close()
    assert (rows[0]["state"], rows[0]["last_error"]) == ("pending", error)
    assert len(receiver.received) >= 1


async def test_a_5_gb_answer_is_not_read(store: Store, receiver: Receiver) -> None:
    settings = campaign(receiver.url)
    receiver.mode = "huge"
    await queue(store, settings)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings})
    try:
        rows = await drain(dispatcher, store, lambda rows: rows[0]["state"] == "delivered", seconds=5)
    finally:
        await dispatcher.close()
    assert rows[0]["last_status"] == 200
    await asyncio.sleep(0.2)
    # What the socket buffers took before the connection was closed, not the 5 GB announced.
    assert receiver.huge_bytes_sent < 64 * 1024**2, receiver.huge_bytes_sent


async def test_tls_is_verified(store: Store, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(cert), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    assert await made.wait() == 0
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    hits: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hits.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 204 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port, ssl=context)
    settings = campaign(f"https://127.0.0.1:{port}/hook")
    await queue(store, settings)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings})
    try:
        rows = await drain(dispatcher, store, lambda rows: rows[0]["tries"] >= 1, seconds=5)
    finally:
        await dispatcher.close()
        server.close()
        await server.wait_closed()
    assert rows[0]["state"] == "pending" and "CERTIFICATE_VERIFY_FAILED" in rows[0]["last_error"], rows[0]
    assert hits == [], "no request went to a server whose certificate is not trusted"


async def test_a_missing_secret_fails_the_try_and_names_the_variable_only(
    store: Store, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = campaign(receiver.url)
    await queue(store, settings)
    monkeypatch.setenv(SECRET_ENV, "short")
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings})
    try:
        rows = await drain(dispatcher, store, lambda rows: rows[0]["tries"] >= 1)
        assert "at least 16" in rows[0]["last_error"] and "short" not in rows[0]["last_error"]
        monkeypatch.delenv(SECRET_ENV)
        rows = await drain(dispatcher, store, lambda rows: "not set" in rows[0]["last_error"])
    finally:
        await dispatcher.close()
    assert rows[0]["last_error"] == f"secret unavailable: environment variable {SECRET_ENV} is not set"
    assert receiver.received == [], "nothing unsigned is sent"


async def test_deliveries_in_flight_never_exceed_the_concurrency(store: Store, receiver: Receiver) -> None:
    settings = campaign(receiver.url, timeout=0.5)
    receiver.mode = "black_hole"
    await queue(store, settings, count=10)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings}, concurrency=3)
    peak = 0
    try:
        for _ in range(60):
            await dispatcher.dispatch_due()
            peak = max(peak, dispatcher.in_flight)
            await asyncio.sleep(0.02)
    finally:
        await dispatcher.close()
    assert peak == 3
    assert len(receiver.received) >= 3


async def test_the_current_campaign_settings_win_over_the_queued_url(store: Store, receiver: Receiver) -> None:
    """An operator who fixes a wrong URL in the campaign file fixes the deliveries already queued."""
    wrong = campaign(f"http://127.0.0.1:{free_port()}/nobody")
    await queue(store, wrong)
    fixed = campaign(receiver.url)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": fixed})
    try:
        await drain(dispatcher, store, lambda rows: rows[0]["state"] == "delivered")
    finally:
        await dispatcher.close()
    assert len(receiver.answered_ok) == 1
    # A delivery whose campaign is gone still goes to the URL it was queued with.
    async with store._write() as conn:
        await conn.execute(update(outbox_table).values(state="pending", tries=0, url=receiver.url, next_try_at=datetime(2000, 1, 1)))
    dispatcher = WebhookDispatcher(store, lambda: {})
    try:
        await drain(dispatcher, store, lambda rows: rows[0]["state"] == "delivered")
    finally:
        await dispatcher.close()
    assert len(receiver.answered_ok) == 2


async def test_a_receivers_control_characters_never_reach_the_stored_error(store: Store) -> None:
    """`dialer webhooks list` prints last_error on a terminal: a hostile Location must not drive it."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://x/\x9b2J\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    settings = campaign(f"http://127.0.0.1:{port}/hook")
    await queue(store, settings)
    dispatcher = WebhookDispatcher(store, lambda: {"revisit": settings})
    try:
        rows = await drain(dispatcher, store, lambda rows: rows[0]["tries"] >= 1, seconds=5)
    finally:
        await dispatcher.close()
        server.close()
        await server.wait_closed()
    error = rows[0]["last_error"]
    assert error and error.isprintable() and "\x9b" not in error and "redirect" in error, error


async def test_the_cli_lists_dead_letters_and_requeues_them(
    tmp_path: Path, store_url: str, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from dialer.cli.main import main
    from dialer.cli.status import render

    config = tmp_path / "dialer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": [{"username": "dialer", "secret": "x"}],
                "database": {"url": store_url},
                "campaign_dir": str(tmp_path),
            }
        )
    )
    settings = campaign("http://127.0.0.1:9/never")
    [event_id] = await queue(store, settings)
    async with store._write() as conn:
        await conn.execute(update(outbox_table).values(state="dead", tries=12, failed_tries=12, last_error="HTTP 503"))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["webhooks", "list", "--dead", "--json", "--config", str(config)]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["event_id"], listed["state"], listed["tries"], listed["last_error"]) == (event_id, "dead", 12, "HTTP 503")
    assert await asyncio.to_thread(main, ["webhooks", "list", "--config", str(config)]) == 0
    assert event_id in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["webhooks", "requeue", "--config", str(config)]) == 2
    assert "name the deliveries" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["webhooks", "requeue", str(listed["id"] + 7), "--config", str(config)]) == 1
    assert "not dead letters" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["webhooks", "requeue", str(listed["id"]), "--config", str(config)]) == 0
    assert "1 dead letter(s) queued again" in capsys.readouterr().out
    [row] = await outbox_rows(store)
    assert (row["state"], row["tries"], row["failed_tries"]) == ("pending", 0, 12)
    status = {
        "ami_connected": True, "agents_logged_in": 0, "agents_busy": 0, "uptime_seconds": 1, "draining": False,
        "campaigns": [], "config_issues": [], "trunks": [],
        "webhooks": [{"campaign": "revisit", "webhook": "crm", "delivered": 3, "pending": 0, "dead": 2,
                      "failed_tries": 24, "last_error": "HTTP 503"}],
    }
    assert "webhook revisit/crm: 3 delivered, 0 pending, 2 dead letter(s) (last error: HTTP 503" in render(status)


def test_the_ami_userevent_carries_the_agents_notes() -> None:
    from dialer.ami.events import to_record

    event = {"Event": "UserEvent", "UserEvent": "DialerDisposition", "Attempt": "ab12", "Code": "Complaint",
             "Agent": "agent1", "Notes": "  boiler leaks  "}
    record = to_record(event, 1000.0)
    assert isinstance(record, r.DispositionRequested)
    assert (record.code, record.notes) == ("complaint", "boiler leaks")
    assert to_record({**event, "Notes": "  "}, 1000.0).notes is None  # type: ignore[union-attr]
