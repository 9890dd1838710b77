"""Wrap-up on the sandbox: after a call the agent stays paused in the queue until they
press ready, the pacing places no call for them meanwhile, and it learns the wrap-up
they actually took (a scripted 3 s), not the 0 s it assumed before the agent desk."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from dialer.http.desk_auth import Role, set_user
from dialer.sandbox import CustomerKind, SandboxState, customer_number
from tests.integration.campaign_lab import make_lab
from tests.integration.test_ops_sandbox import TOKEN, RunningDaemon, free_port

pytestmark = pytest.mark.sandbox

SCRIPTED_WRAPUP_S = 3.0


def dialed_at(daemon: RunningDaemon) -> list[float]:
    return [
        datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
        for e in daemon.logged("call.dialing")
    ]


@pytest.mark.timeout(120)
def test_the_pacing_waits_for_and_learns_the_real_wrapup(sandbox: SandboxState, tmp_path: Path) -> None:
    lab = make_lab(
        tmp_path, sandbox, campaign="wrap", agents=1,
        dialing={"mode": "progressive", "max_lines": 1, "allow_short_ring": True, "ring_timeout": 8,
                 "agent_wait": 10},
        rules={"wrapup_limit": 60, "dispositions": {"sale": "close"}},
    )
    config = yaml.safe_load(lab.config.read_text())
    config["http"] = {"port": free_port(), "token": TOKEN, "desk_users_file": "desk-users.yaml"}
    lab.config.write_text(yaml.safe_dump(config))
    set_user(tmp_path / "desk-users.yaml", "agent1", Role.agent, "agent-one-secret")
    daemon = RunningDaemon(lab)
    try:
        daemon.ready()
        base = f"http://127.0.0.1:{daemon.port}"
        with httpx.Client(base_url=base, timeout=10) as agent, httpx.Client(base_url=base, timeout=10) as admin:
            assert agent.post("/desk/sign-in", data={"user": "agent1", "secret": "agent-one-secret"}).status_code == 303
            csrf = re.search(r'name="csrf" value="([^"]+)"', agent.get("/desk/agent").text).group(1)  # type: ignore[union-attr]
            assert admin.post("/desk/sign-in", data={"user": "admin", "secret": TOKEN}).status_code == 303
            serial = int(time.time()) % 9000 + 1000
            for i in range(2):
                lead = {"phone": customer_number(CustomerKind.ANSWER, 1, 3, serial + i), "name": f"Customer {i}"}
                assert agent.post("/campaigns/wrap/leads", json=lead,
                                  headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 201

            daemon.wait_for(lambda: agent.get("/desk/api/me").json()["state"] == "wrapup", 30,
                            "the agent never went into wrap-up after the first call")
            wrapup_from = time.time()
            time.sleep(SCRIPTED_WRAPUP_S)
            # Meanwhile the only agent is in wrap-up: the second lead waits.
            assert len(dialed_at(daemon)) == 1
            assert agent.get("/desk/api/me").json()["state"] == "wrapup"
            headers = {"X-CSRF-Token": csrf}
            assert agent.post("/desk/api/disposition", json={"code": "sale", "notes": "done"},
                              headers=headers).status_code == 200
            ready = agent.post("/desk/api/ready", headers=headers)
            assert ready.status_code == 200 and ready.json()["state"] == "ready"
            ready_at = time.time()
            took = ready_at - wrapup_from

            daemon.wait_for(lambda: len(dialed_at(daemon)) == 2, 10, "no second call after ready")
            assert dialed_at(daemon)[1] >= wrapup_from + SCRIPTED_WRAPUP_S
            [done] = daemon.logged("desk.wrapup_done")
            assert SCRIPTED_WRAPUP_S <= done["seconds"] <= took + 1.0
            live = admin.get("/desk/api/wall").json()["campaigns"][0]["live"]
            # What the pacing's statistics hold: the measured wrap-up, and no 0 s sample.
            assert live["wrapups"] == 1 and live["wrapup_mean"] == pytest.approx(done["seconds"], abs=0.01)
    finally:
        daemon.kill()
