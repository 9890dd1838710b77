"""The control API, metrics and health checks: one FastAPI app over a running daemon.

The app holds the daemon's narrow interfaces only (`dialer.control.daemon_view`):
it reads the view and sends commands; it never changes the daemon's state itself.

Every route but the health checks (and `/metrics`, unless configured) needs
`Authorization: Bearer <token>`. Errors are JSON `{"message": ..., "errors": [...]}`:
401 no or wrong token, 404 unknown campaign/agent/lead, 409 a request the
campaign's state refuses or Asterisk refuses (pausing a phone in no queue), 413 a body over `MAX_BODY_BYTES` (dialer.http.body_limit),
422 malformed input, 503 AMI or the database not available right now.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and the dependencies in them are local to build_app.
import dataclasses
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialer import __version__
from dialer.ami.errors import AmiActionFailed, AmiError, AmiUnsafeValue
from dialer.config.models import AgentConfig
from dialer.control.campaign_states import ControlError, RunState, abandon_figures, over_limit_note
from dialer.control.daemon_view import DaemonControl
from dialer.dispositions import DispositionError, apply_disposition
from dialer.http import schemas as s
from dialer.http.body_limit import MAX_BODY_BYTES, BodyLimit
from dialer.http.desk_pages import STATIC_DIR, DeskError, DeskHeaders, desk_error_response, desk_router
from dialer.leads.intake import LeadIntake, LeadRefused
from dialer.metrics import CONTENT_TYPE
from dialer.screen_pop import for_attempt as screen_pop_for_attempt
from dialer.store.callbacks import list_callbacks
from dialer.store.webhook_outbox import summary as webhook_summary
from dialer.store.store import StoreError

log = structlog.get_logger("dialer.http")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def lead_out(row: dict[str, Any]) -> s.LeadOut:
    # The store's customer_id is the row key; the API shows the CRM's id.
    return s.LeadOut(**{**row, "customer_id": row["external_id"]})


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorBody, "description": text}
    for code, text in (
        (401, "no token or a wrong one"),
        (404, "not found"),
        (409, "refused in the current state"),
        (413, f"request body over {MAX_BODY_BYTES} bytes"),
        (422, "malformed input"),
        (503, "AMI or the database is not available"),
    )
}


def build_app(daemon: DaemonControl) -> FastAPI:
    app = FastAPI(
        title="dialer control API",
        version=__version__,
        description="Control and watch a running `dialer run` daemon.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(BodyLimit)
    app.add_middleware(DeskHeaders)
    bearer = HTTPBearer(auto_error=False, description="the token of http.token / token_file / token_env")

    def authorised(credentials: HTTPAuthorizationCredentials | None) -> None:
        http = daemon.config.http
        if http is None:
            raise ApiError(401, "the control API has no token configured")
        try:
            expected = http.resolve_token()
        except (OSError, LookupError) as exc:
            log.error("http.token_unavailable", error=str(exc))
            raise ApiError(401, "the daemon cannot read its API token") from None
        if credentials is None:
            raise ApiError(401, "missing token: send 'Authorization: Bearer <token>'")
        if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
            raise ApiError(401, "wrong token")

    async def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        authorised(credentials)

    api = APIRouter(dependencies=[Depends(require_token)], responses=_ERRORS)

    # -- errors -------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"message": exc.message, "errors": []}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse({"message": message, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body that is not JSON: malformed input like any other.
            return JSONResponse({"message": f"body: {exc.detail}", "errors": []}, status_code=422)
        return JSONResponse({"message": str(exc.detail), "errors": []}, status_code=exc.status_code)

    @app.exception_handler(AmiUnsafeValue)
    async def _ami_unsafe(_request: Request, exc: AmiUnsafeValue) -> JSONResponse:
        # The schemas refuse such input first; this is the gateway's last guard speaking.
        return JSONResponse({"message": f"AMI: {exc}", "errors": []}, status_code=422)

    @app.exception_handler(AmiActionFailed)
    async def _ami_refused(_request: Request, exc: AmiActionFailed) -> JSONResponse:
        # Asterisk answered, and said no: the request, not the service, is at fault.
        return JSONResponse({"message": f"AMI: {exc}", "errors": []}, status_code=409)

    @app.exception_handler(AmiActionFailed)
    async def _ami_refused(_request: Request, exc: AmiActionFailed) -> JSONResponse:
        # Asterisk answered, and said no (pausing an agent who is in no queue): the
        # agent's state, not an outage.
        return JSONResponse({"message": f"AMI: {exc}", "errors": []}, status_code=409)

    @app.exception_handler(AmiError)
    async def _ami_error(_request: Request, exc: AmiError) -> JSONResponse:
        return JSONResponse({"message": f"AMI: {exc}", "errors": []}, status_code=503)

    @app.exception_handler(StoreError)
    async def _store_error(_request: Request, exc: StoreError) -> JSONResponse:
        log.error("http.store_error", error=str(exc))
        return JSONResponse({"message": "database not available", "errors": []}, status_code=503)

    # -- health and metrics (no token) ----------------------------------------------

    @app.get("/healthz", response_model=s.Health, tags=["health"])
    async def healthz() -> s.Health:
        """The process is alive and its event loop answers."""
        return s.Health(ok=True)

    @app.get("/readyz", response_model=s.Readiness, tags=["health"], responses={503: {"model": s.Readiness}})
    async def readyz() -> Response:
        """Ready to dial: at least one AMI server is up (logged in, booted, not shutting down) and
        the database takes writes. The body lists each server's state."""
        checks: dict[str, str] = {}
        servers = daemon.ami_servers
        checks["ami"] = "ok" if any(server.can_dial for server in servers) else "not logged in"
        if daemon.store is None:
            checks["database"] = "not open"
        else:
            try:
                await daemon.store.check_writable()
                checks["database"] = "ok"
            except StoreError as exc:
                # No token guards this route: the driver's message (SQL, paths,
                # parameters) goes to the log only.
                log.warning("http.readyz_database", error=str(exc)[:2000])
                checks["database"] = "database not writable"
        ok = all(v == "ok" for v in checks.values())
        listed = [s.ServerReadiness(name=server.name, state=server.state, since=_utc(server.since)) for server in servers]
        body = s.Readiness(ok=ok, checks=checks, servers=listed).model_dump(mode="json")
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}, 401: _ERRORS[401]},
    )
    async def metrics(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Response:
        if daemon.config.http is not None and daemon.config.http.metrics_need_token:
            authorised(credentials)
        return Response(await daemon.metrics.render(), media_type=CONTENT_TYPE)

    # -- status and campaigns ---------------------------------------------------------

    async def campaign_out(name: str) -> s.CampaignOut:
        runner = daemon.runners.get(name)
        file = daemon.campaign_file(name)
        base = {
            "name": name,
            "state": daemon.campaign_state(name).value,
            "file": str(file) if file else None,
            "mode": None,
            "max_lines": None,
            "total": 0,
            "done": 0,
            "placed": 0,
            "ringing": 0,
            "waiting": 0,
            "talking": 0,
            "outcomes": {},
        }
        if runner is None:
            return s.CampaignOut(**base)
        assert daemon.store is not None
        progress = await daemon.store.progress(runner.campaign_id)
        counts = runner.live_counts()
        settling = base["state"] == RunState.settling.value
        return s.CampaignOut(
            **{
                **base,
                "answers_needed": runner.abandon_state(daemon.clock()).answers_needed if settling else None,
                "mode": runner.campaign.dialing.mode.value,
                "max_lines": runner.campaign.dialing.max_lines,
                "total": progress.pending + progress.leased + progress.done,
                "done": progress.done,
                "placed": runner.placed,
                "ringing": counts.ringing,
                "waiting": counts.waiting,
                "talking": counts.talking,
                "outcomes": progress.outcomes,
            }
        )

    def known_campaign(name: str) -> str:
        if not daemon.campaign_exists(name):
            raise ApiError(404, f"no campaign named {name!r}")
        return name

    @api.get("/status", response_model=s.StatusOut, tags=["status"])
    async def status() -> s.StatusOut:
        current = await daemon.status()
        return s.StatusOut(
            ami_connected=current.ami_connected,
            draining=daemon.draining,
            uptime_seconds=round(current.elapsed, 1),
            agents_logged_in=current.agents_logged_in,
            agents_busy=current.agents_busy,
            campaigns=[await campaign_out(n) for n in daemon.known_campaigns()],
            config_issues=daemon.config_issues(),
            trunks=[s.TrunkOut(**vars(t)) for t in daemon.trunk_views()],
            webhooks=[s.WebhookOut(**row) for row in await webhook_summary(daemon.store)] if daemon.store else [],
            servers=[
                s.ServerOut(name=server.name, state=server.state, since=_utc(server.since),
                            calls_in_progress=server.calls, max_lines=server.max_lines, last_error=server.last_error)
                for server in daemon.ami_servers
            ],
        )

    @api.get("/campaigns", response_model=list[s.CampaignOut], tags=["campaigns"])
    async def campaigns() -> list[s.CampaignOut]:
        return [await campaign_out(n) for n in daemon.known_campaigns()]

    @api.get("/campaigns/{name}", response_model=s.CampaignOut, tags=["campaigns"])
    async def campaign(name: str) -> s.CampaignOut:
        return await campaign_out(known_campaign(name))

    def state_out(name: str, state: RunState) -> s.CampaignStateOut:
        """The state, and the abandon window's figures when its rate is over the limit."""
        runner = daemon.runners.get(name)
        window = runner.abandon_state(daemon.clock()) if runner is not None else None
        if window is None or window.answers_needed == 0:
            return s.CampaignStateOut(name=name, state=state.value)
        quiet = state in (RunState.running, RunState.settling, RunState.draining)
        return s.CampaignStateOut(
            name=name,
            state=state.value,
            answers_needed=window.answers_needed if state is RunState.settling else None,
            abandon=s.AbandonOut(**abandon_figures(window)),
            warning=None if quiet else over_limit_note(state, window),
        )

    def control_route(action: str) -> None:
        async def change(name: str) -> s.CampaignStateOut:
            known_campaign(name)
            try:
                state = await getattr(daemon, f"{action}_campaign")(name)
            except ControlError as exc:
                raise ApiError(409, str(exc)) from None
            return state_out(name, state)

        api.add_api_route(
            f"/campaigns/{{name}}/{action}",
            change,
            methods=["POST"],
            response_model=s.CampaignStateOut,
            response_model_exclude_none=True,
            tags=["campaigns"],
            name=f"{action}_campaign",
            summary=f"{action.capitalize()} a campaign",
        )

    for action in ("start", "pause", "resume"):
        control_route(action)

    @api.post(
        "/campaigns/{name}/stop",
        response_model=s.CampaignStateOut,
        response_model_exclude_none=True,
        tags=["campaigns"],
        name="stop_campaign",
        summary="Stop a campaign",
    )
    async def stop_campaign(
        name: str,
        request: Request,
        body: s.StopIn | None = None,
        now: Annotated[bool | None, Query(description="as the body's `now`")] = None,
    ) -> s.CampaignStateOut:
        """At once when the abandon window's rate is at or under its limit; else it settles first
        (state `settling`: progressive, one call per free agent, until it is). `now: true` ends
        at once anyway, a settling under way too."""
        if len(request.query_params.getlist("now")) > 1 or (now is not None and body is not None):
            raise ApiError(422, "now: give it once, in the body or in the query")
        known_campaign(name)
        at_once = now if now is not None else body is not None and body.now
        try:
            state = await daemon.stop_campaign(name, now=at_once)
        except ControlError as exc:
            raise ApiError(409, str(exc)) from None
        return state_out(name, state)

    # -- agents -----------------------------------------------------------------------

    def agent_config(agent_id: str) -> AgentConfig:
        for agent in daemon.config.agents:
            if agent.id == agent_id:
                return agent
        raise ApiError(404, f"no agent {agent_id!r}")

    def agent_out(agent: AgentConfig) -> s.AgentOut:
        state = daemon.agent(agent.interface)
        return s.AgentOut(
            id=agent.id,
            name=agent.name,
            interface=agent.interface,
            state=state.label if state else "logged_out",
            queues=sorted(state.queues) if state else [],
            configured_queues=list(agent.queues),
            paused=bool(state and state.paused),
            call=state.on_call if state else None,
        )

    def known_queues(queues: list[str]) -> list[str]:
        """`queues` without repeats, if each is a queue of the config (agents', campaigns',
        tier routing's); else 422 before any AMI action."""
        known = {q for a in daemon.config.agents for q in a.queues}
        for runner in list(daemon.runners.values()):
            campaign = runner.campaign
            known.add(campaign.queue)
            for rule in campaign.tiers.routing.values():
                known.update(q for q in (rule.queue, rule.fallback_queue) if q)
        unknown = [q for q in queues if q not in known]
        if unknown:
            raise ApiError(422, f"queues: not a queue of this daemon's config: {', '.join(sorted(set(unknown)))}")
        return list(dict.fromkeys(queues))

    def require_ami() -> None:
        if not daemon.ami_connected:
            raise ApiError(503, "not logged in to AMI right now")

    @api.get("/agents", response_model=list[s.AgentOut], tags=["agents"])
    async def agents() -> list[s.AgentOut]:
        return [agent_out(a) for a in daemon.config.agents]

    @api.get("/agents/{agent_id}", response_model=s.AgentOut, tags=["agents"])
    async def agent(agent_id: str) -> s.AgentOut:
        return agent_out(agent_config(agent_id))

    @api.post("/agents/{agent_id}/login", response_model=s.AgentOut, tags=["agents"])
    async def agent_login(agent_id: str, body: s.QueuesIn | None = None) -> s.AgentOut:
        """Add the agent to its queues (or the ones given) with AMI QueueAdd."""
        config = agent_config(agent_id)
        queues = known_queues(body.queues if body and body.queues is not None else config.queues)
        require_ami()
        await daemon.agent_login(config.id, queues)
        return agent_out(config)

    @api.post("/agents/{agent_id}/logout", response_model=s.AgentOut, tags=["agents"])
    async def agent_logout(agent_id: str, body: s.QueuesIn | None = None) -> s.AgentOut:
        """Remove the agent from its queues (or the ones given) with AMI QueueRemove."""
        config = agent_config(agent_id)
        given = known_queues(body.queues) if body and body.queues is not None else None
        require_ami()
        state = daemon.agent(config.interface)
        current = sorted(state.queues) if state else list(config.queues)
        await daemon.agent_logout(config.id, given if given is not None else current or list(config.queues))
        return agent_out(config)

    @api.post("/agents/{agent_id}/pause", response_model=s.AgentOut, tags=["agents"])
    async def agent_pause(agent_id: str, body: s.PauseIn) -> s.AgentOut:
        """Pause (or unpause, `paused: false`) the agent with AMI QueuePause."""
        config = agent_config(agent_id)
        if body.queue:
            known_queues([body.queue])
        require_ami()
        await daemon.agent_pause(config.id, body.paused, body.queue, body.reason)
        return agent_out(config)

    @api.get("/agents/{agent_id}/current", response_model=s.ScreenPop, tags=["agents"])
    async def agent_current(agent_id: str) -> s.ScreenPop:
        """Screen pop: the call the agent is on, with the customer and their last contacts."""
        config = agent_config(agent_id)
        state = daemon.agent(config.interface)
        # From the moment the phone rings (dialer.screen_pop).
        attempt_id = (state.on_call or state.ringing_for) if state else None
        if attempt_id is None:
            return s.ScreenPop(agent=agent_id, call=None)
        for runner in daemon.runners.values():
            attempt = runner.attempts.get(attempt_id)
            if attempt is None:
                continue
            assert daemon.store is not None
            found = await daemon.store.find_leads(lead_id=attempt.lead_id)
            return s.ScreenPop(
                agent=agent_id,
                call=s.CurrentCall(
                    attempt=attempt.id,
                    campaign=runner.campaign.name,
                    number=attempt.phone,
                    state=attempt.state.value,
                    bridged_at=datetime.fromtimestamp(attempt.bridged_at, UTC) if attempt.bridged_at else None,
                    lead=lead_out(found[0]) if found else None,
                    screen_pop=await screen_pop_for_attempt(daemon.store, runner, attempt.id),
                ),
            )
        inbound = daemon.inbound.calls.get(attempt_id) if daemon.inbound is not None else None
        if inbound is not None:
            # A customer calling back (dialer.inbound): `attempt` is the inbound call's id.
            assert daemon.store is not None
            known = inbound.customer
            found = await daemon.store.find_leads(lead_id=known.lead_id) if known and known.lead_id else []
            return s.ScreenPop(
                agent=agent_id,
                call=s.CurrentCall(
                    attempt=inbound.id,
                    campaign=inbound.campaign.name,
                    number=inbound.caller or "",
                    state="bridged" if inbound.bridged_at is not None else "ringing",
                    bridged_at=datetime.fromtimestamp(inbound.bridged_at, UTC) if inbound.bridged_at else None,
                    lead=lead_out(found[0]) if found else None,
                    screen_pop=await daemon.inbound.screen_pop(inbound),
                ),
            )
        return s.ScreenPop(agent=agent_id, call=None)

    # -- leads -------------------------------------------------------------------------

    @api.post("/campaigns/{name}/leads", response_model=s.LeadAdded, status_code=201, tags=["leads"])
    async def add_lead(name: str, body: s.LeadIn) -> s.LeadAdded | JSONResponse:
        known_campaign(name)
        runner = daemon.runners.get(name)
        if runner is None:
            raise ApiError(409, f"campaign {name!r} is not loaded (disabled in its file)")
        # The same intake as a CSV import: the campaign's number format, region and deny rules.
        intake = LeadIntake.for_campaign(runner.campaign, daemon.config.default_region)
        fields = {k: getattr(body, k) for k in ("phone", "name", "customer_id", "tier", "value", "timezone")}
        try:
            row = intake.check(fields, {str(k): str(v) for k, v in body.data.items()})
        except LeadRefused as refused:
            problems = [{"field": f"body.{p.field}", "message": p.message} for p in refused.problems]
            return JSONResponse({"message": str(refused), "errors": problems}, status_code=422)
        assert daemon.store is not None
        summary = await daemon.store.import_leads(runner.campaign_id, [row])
        lead = next(l for l in await daemon.store.find_leads(phone=row.phone) if l["campaign"] == name)
        return s.LeadAdded(added=summary.added == 1, lead=lead_out(lead))

    @api.get("/leads", response_model=list[s.LeadOut], tags=["leads"])
    async def find_leads(phone: Annotated[str, Query(pattern=s.PHONE_PATTERN)]) -> list[s.LeadOut]:
        assert daemon.store is not None
        return [lead_out(lead) for lead in await daemon.store.find_leads(phone=phone)]

    @api.get("/leads/{lead_id}", response_model=s.LeadOut, tags=["leads"])
    async def lead_by_id(lead_id: int) -> s.LeadOut:
        assert daemon.store is not None
        found = await daemon.store.find_leads(lead_id=lead_id) if 0 < lead_id < 2**62 else []
        if not found:
            raise ApiError(404, f"no lead {lead_id}")
        return lead_out(found[0])

    # -- dispositions and callbacks (dialer.dispositions, issue #5) ---------------------------

    @api.post("/dispositions", response_model=s.DispositionOut, tags=["dispositions"])
    async def disposition(body: s.DispositionIn) -> s.DispositionOut:
        """Record what a call came to (by attempt, or a lead's latest attempt) and apply its action."""
        assert daemon.store is not None
        try:
            result = await apply_disposition(
                daemon.store,
                {name: runner.campaign for name, runner in daemon.runners.items()},
                code=body.code,
                now=datetime.fromtimestamp(daemon.clock(), UTC),
                attempt_id=body.attempt_id,
                lead_id=body.lead_id,
                callback_at=body.callback_at,
                agent=body.agent,
                notes=body.notes,
            )
        except DispositionError as exc:
            raise ApiError(422, str(exc)) from None
        if result.event_id:
            daemon.webhooks_due()
        return s.DispositionOut(
            attempt_id=result.attempt_id,
            lead_id=result.lead_id,
            campaign=result.campaign,
            code=result.code,
            action=result.action.value,
            callback_id=result.callback_id,
            webhook_event_id=result.event_id,
        )

    @api.get("/callbacks", response_model=list[s.CallbackOut], tags=["dispositions"])
    async def callbacks(
        campaign: Annotated[str | None, Query(pattern=s.NAME_PATTERN)] = None, include_closed: bool = False
    ) -> list[s.CallbackOut]:
        """Scheduled callbacks, soonest first (closed ones too with include_closed)."""
        assert daemon.store is not None
        found = await list_callbacks(daemon.store, campaign=campaign, include_closed=include_closed)
        return [s.CallbackOut(**dataclasses.asdict(c)) for c in found]

    app.include_router(api)

    # -- the agent desk and the supervisor's wall (dialer.http.desk_pages, issue 14) ------------
    app.add_exception_handler(DeskError, desk_error_response)  # type: ignore[arg-type]
    app.include_router(desk_router(daemon))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
