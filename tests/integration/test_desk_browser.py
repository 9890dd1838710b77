"""The agent desk and the supervisor's wall in a real browser (Debian's chromium, driven by
Playwright, headless) against `dialer run` on the sandbox: the agent's SIP phone rings,
the screen pop shows that customer within a second, the agent gives a disposition and a
callback in the customer's time, takes a scripted wrap-up and presses ready; the database,
`dialer report --json`, the supervisor page and the pacing all show it.

Screenshots for the docs: `DIALER_DESK_SCREENSHOTS=docs/images` writes them there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from dialer.apt import install_packages
from dialer.sandbox import CustomerKind, SandboxState, customer_number, read_agent_events
from tests.integration.campaign_lab import Lab, make_lab
from tests.integration.test_ops_sandbox import TOKEN, RunningDaemon, free_port

pytestmark = pytest.mark.sandbox

NAME = 'Ada <img src=x onerror="alert(1)"> Lovelace'
SCRIPT = "Hello, this is the renewal team.</div><script>alert('x')</script>"
ZONE = ZoneInfo("America/New_York")
SECRETS = {"agent1": "agent-one-secret-1", "agent2": "agent-two-secret-2", "boss": "the-supervisor-secret"}
WRAPUP_S = 2.5
VIEWPORT = {"width": 1366, "height": 768}
COMPLAINTS: list[str] = []


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with the lock-aware installer when missing (as the sandbox
    installs sip-tester): Playwright never downloads a browser here."""
    found = shutil.which("chromium")
    if found is None:
        install_packages(["chromium"], progress=lambda message: print(f"[chromium] {message}"))
        found = shutil.which("chromium")
    assert found is not None, "chromium is not installed and apt-get could not install it"
    return found


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        handle = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            yield handle
        finally:
            handle.close()


@pytest.fixture
def running() -> Iterator[list[RunningDaemon]]:
    started: list[RunningDaemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def desk_lab(tmp: Path, sandbox: SandboxState, holiday: date) -> Lab:
    lab = make_lab(
        tmp,
        sandbox,
        campaign="desk",
        agents=2,
        dialing={"mode": "progressive", "max_lines": 1, "allow_short_ring": True, "ring_timeout": 8, "agent_wait": 10},
        rules={
            "script": SCRIPT,
            "wrapup_limit": 60,
            "calling_hours": {"start": "00:00", "end": "24:00", "timezone": "America/New_York",
                              "holidays": [holiday.isoformat()]},
            "dispositions": {"sale": "close", "call_back": "callback", "not_interested": "close", "dnc": "dnc"},
        },
    )
    config = yaml.safe_load(lab.config.read_text())
    config["http"] = {"port": free_port(), "token": TOKEN, "desk_users_file": "desk-users.yaml"}
    lab.config.write_text(yaml.safe_dump(config))
    # Secrets set as an operator does, through the CLI (the secret on standard input).
    for user, extra in (("agent1", []), ("agent2", []), ("boss", ["--role", "supervisor", "--phone", "PJSIP/agent3"])):
        done = subprocess.run(
            [sys.executable, "-m", "dialer", "desk", "set-secret", user, *extra, "--config", str(lab.config)],
            input=SECRETS[user] + "\n", capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 0, done.stderr
    assert "agent-one-secret" not in (tmp / "desk-users.yaml").read_text()
    return lab


def sign_in(browser: Any, base: str, user: str, secret: str, *, keyboard: bool = False) -> Any:
    context = browser.new_context(viewport=VIEWPORT, base_url=base)
    page = context.new_page()
    # Anything the browser complains about (a CSP violation, a script error) fails the test.
    page.on("console", lambda message: message.type == "error" and COMPLAINTS.append(message.text))
    page.on("pageerror", lambda error: COMPLAINTS.append(str(error)))
    page.goto("/desk/sign-in")
    with page.expect_navigation():
        if keyboard:  # the keyboard alone: Tab to the first field, type, Tab, type, Enter
            page.keyboard.press("Tab")
            page.keyboard.type(user)
            page.keyboard.press("Tab")
            page.keyboard.type(secret)
            page.keyboard.press("Enter")
        else:
            page.get_by_label("User id").fill(user)
            page.get_by_label("Secret").fill(secret)
            page.get_by_role("button", name="Sign in").click()
    assert "/desk/sign-in" not in page.url, page.locator("main").inner_text()
    return page


def figures(page: Any, campaign: str) -> dict[str, str]:
    section = page.locator(f'section[data-campaign="{campaign}"]')
    return {
        element.get_attribute("data-figure"): element.inner_text().strip()
        for element in section.locator("[data-figure]").all()
    }


def flat(report: dict[str, Any]) -> dict[str, str]:
    out = {f"leads.{k}": str(v) for k, v in report["leads"].items()}
    out.update({f"outcomes.{k}": str(v) for k, v in report["outcomes"].items()})
    out.update({f"dispositions.{k}": str(v) for k, v in report["dispositions"].items()})
    for key in ("attempts", "live_answered", "abandoned", "abandon_rate"):
        out[key] = str(report[key])
    out["final_reasons.dnc"] = str(report["final_reasons"].get("dnc", 0))
    return out


def api(daemon: RunningDaemon, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{daemon.port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.timeout(240)
def test_agent_desk_and_wall_in_a_browser(
    sandbox: SandboxState, tmp_path: Path, running: list[RunningDaemon], browser: Any
) -> None:
    COMPLAINTS.clear()
    today = datetime.now(ZONE).date()
    holiday = today + timedelta(days=3)
    lab = desk_lab(tmp_path, sandbox, holiday)
    daemon = RunningDaemon(lab)
    running.append(daemon)
    daemon.ready()
    base = f"http://127.0.0.1:{daemon.port}"

    agent = sign_in(browser, base, "agent1", SECRETS["agent1"])
    other = sign_in(browser, base, "agent2", SECRETS["agent2"], keyboard=True)
    wall = sign_in(browser, base, "boss", SECRETS["boss"])
    assert agent.url.endswith("/desk/agent") and wall.url.endswith("/desk/wall")
    agent.locator('#agent-state[data-state="ready"]').wait_for(timeout=10_000)
    # Agent 2 pauses (with a reason), so the call can only ring agent 1's phone.
    other.get_by_label("Pause reason").select_option("lunch")
    other.get_by_role("button", name="Pause").click()
    other.locator('#agent-state[data-state="paused"]').wait_for(timeout=10_000)
    assert "lunch" in other.locator("#agent-state").inner_text()

    number = customer_number(CustomerKind.ANSWER, 1, 8, int(time.time()) % 9000 + 1000)
    added = api(daemon, "/campaigns/desk/leads", {"phone": number, "name": NAME, "tier": "gold", "value": "4200"})
    assert added["added"]

    agent.wait_for_selector("#customer-name", timeout=20_000)
    shown_at = time.time()
    assert agent.locator("#customer-name").inner_text() == NAME  # as text, not markup
    attempt = agent.locator("#customer-name").get_attribute("data-attempt")
    [invite] = [e for e in read_agent_events(sandbox) if e.event == "invite" and e.attempt == attempt]
    assert invite.agent == "agent1" and invite.at is not None
    pop_delay = shown_at - invite.at
    print(f"screen pop shown {pop_delay:.3f} s after the agent's phone got the INVITE")
    assert pop_delay < 1.0
    assert agent.locator("#customer-tier").inner_text() == "gold"
    assert "<script>alert('x')</script>" in agent.locator("#script").inner_text()
    assert agent.locator("script:not([src])").count() == 0
    # Not agent 2's customer: nothing in their live page nor their JSON.
    assert NAME not in other.content() and "Lovelace" not in other.content()
    assert other.request.get(f"{base}/desk/api/me").json()["call"] is None

    # The supervisor listens in: their own phone (agent3 here) is called into ChanSpy.
    wall.reload()
    wall.get_by_role("button", name="listen agent1").click()
    wall.wait_for_selector("#flash")
    daemon.wait_for(
        lambda: [e for e in read_agent_events(sandbox) if e.event == "answered" and e.agent == "agent3"
                 and e.at and e.at > invite.at],
        10, "the supervisor's phone was not called",
    )
    if os.environ.get("DIALER_DESK_SCREENSHOTS"):
        agent.screenshot(path=str(Path(os.environ["DIALER_DESK_SCREENSHOTS"]) / "desk-agent-call.png"))
        wall.screenshot(path=str(Path(os.environ["DIALER_DESK_SCREENSHOTS"]) / "desk-wall-call.png"))

    # The customer hangs up: wrap-up, paused in the queue, disposition buttons.
    agent.locator('#agent-state[data-state="wrapup"]').wait_for(timeout=20_000)
    wrapup_from = time.time()
    agent.get_by_label("Notes").fill("Wants the <b>gold</b> plan; call after the board meeting")
    agent.get_by_label(re.compile("Callback at")).fill(f"{holiday.isoformat()}T10:30")
    agent.get_by_role("button", name="call_back").click()
    agent.wait_for_selector("#flash")
    assert "outside the calling window" in agent.locator("#flash").inner_text()
    day = today + timedelta(days=2)
    agent.get_by_label("Notes").fill("Wants the <b>gold</b> plan; call after the board meeting")
    agent.get_by_label(re.compile("Callback at")).fill(f"{day.isoformat()}T10:30")
    agent.get_by_role("button", name="call_back").click()
    agent.wait_for_selector("#disposition-done")
    assert "America/New_York" in agent.locator("#disposition-done").inner_text()
    if os.environ.get("DIALER_DESK_SCREENSHOTS"):
        agent.screenshot(path=str(Path(os.environ["DIALER_DESK_SCREENSHOTS"]) / "desk-agent-wrapup.png"))
    time.sleep(max(0.0, WRAPUP_S - (time.time() - wrapup_from)))  # the scripted wrap-up
    agent.get_by_role("button", name="Ready").click()
    agent.locator('#agent-state[data-state="ready"]').wait_for(timeout=10_000)

    [done] = daemon.wait_for(lambda: daemon.logged("desk.wrapup_done"), 5, "no wrap-up recorded")
    assert WRAPUP_S <= done["seconds"] < WRAPUP_S + 5
    # The database.
    with sqlite3.connect(tmp_path / "dialer.db") as db:
        row = db.execute(
            "select disposition, disposition_agent, disposition_notes from call_attempts where id = ?", (attempt,)
        ).fetchone()
        due = db.execute("select due_at, agent_id from callbacks where requested_by_attempt = ?", (attempt,)).fetchone()
    assert row == ("call_back", "agent1", "Wants the <b>gold</b> plan; call after the board meeting")
    assert due[1] == "agent1"
    local = datetime.fromisoformat(due[0]).replace(tzinfo=ZoneInfo("UTC")).astimezone(ZONE)
    assert (local.date(), local.hour, local.minute) == (day, 10, 30)
    # The report, and the supervisor page showing the same figures.
    report = lab.report()
    assert report["dispositions"] == {"call_back": 1}
    wall.reload()
    wall.wait_for_selector('section[data-campaign="desk"]')
    assert figures(wall, "desk") == {**flat(report), "outside_window": "0"}
    row_of_agent = wall.locator('tr[data-agent="agent1"]')
    assert row_of_agent.locator(".agent-disposition").inner_text() == "call_back"
    assert row_of_agent.locator(".agent-state").get_attribute("data-state") == "ready"
    assert "lunch" in wall.locator('tr[data-agent="agent2"] .agent-state').inner_text()
    # The pacing learned the wrap-up the agent took, not 0.
    live = wall.request.get(f"{base}/desk/api/wall").json()["campaigns"][0]["live"]
    assert live["wrapups"] == 1 and live["wrapup_mean"] >= WRAPUP_S
    if os.environ.get("DIALER_DESK_SCREENSHOTS"):
        wall.screenshot(path=str(Path(os.environ["DIALER_DESK_SCREENSHOTS"]) / "desk-wall.png"), full_page=False)
    assert COMPLAINTS == []
