"""The agent desk and the supervisor's wall: server-rendered pages, live feeds, their JSON twins.

Roles: an agent sees their own state and call only; a supervisor (or the admin,
signed in with the API token) sees every campaign and agent, starts/pauses/stops
campaigns and listens to calls. Every value reaches HTML through the one Jinja
environment here, which escapes everything (autoescape). Every state-changing
request needs the session's CSRF token (form field `csrf` or header
`X-CSRF-Token`) and, when the browser sends one, an Origin of this server.
Live updates are server-sent events, swapped in by the vendored htmx SSE
extension: the page never polls.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.
import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import jinja2
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dialer.config.campaign_rules import WEEKDAYS, DispositionAction
from dialer.control.campaign_states import ControlError, over_limit_note
from dialer.control.daemon_view import DaemonControl
from dialer.control.desk_state import MONITOR_MODES, PAUSE_REASONS, DeskAgent, DeskCall, DeskRefused
from dialer.dispositions import MAX_NOTES, DispositionError, apply_disposition
from dialer.http.desk_auth import DeskUsersError, Role, Session, check_credentials, read_users
from dialer.http.wall_figures import campaign_figures

log = structlog.get_logger("dialer.desk")

COOKIE = "dialer_desk"
MAX_FORM_FIELDS = 20
WALL_EVERY_S = 2.0
WALL_CACHE_S = 1.0
"""How often the wall's feed sends fresh figures (the page itself never asks)."""
KEEPALIVE_S = 15.0
STATE_NAMES = {
    "logged_out": "Logged out",
    "ready": "Ready",
    "paused": "Paused",
    "ringing": "Ringing",
    "in_call": "In call",
    "wrapup": "Wrap-up",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


class DeskError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


STATIC_DIR = Path(__file__).with_name("static")
"""htmx and its SSE extension, vendored with their licences, and the pages' CSS."""

# The one place values become HTML: autoescape on for every template.
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_templates.globals.update(duration=duration, state_names=STATE_NAMES, pause_reasons=PAUSE_REASONS, max_notes=MAX_NOTES)


def render(name: str, **values: Any) -> str:
    values.setdefault("flash", None)
    values.setdefault("session", None)
    return _templates.get_template(name).render(**values)


def sse(event: str, html: str) -> str:
    """One server-sent event; each line of the HTML its own `data:` line (a newline cannot end it early)."""
    lines = html.replace("\r", "").split("\n")
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


# -- JSON shapes (OpenAPI) ----------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeskInboundOut(BaseModel):
    caller: str | None = Field(description="the caller's number as recognised; null: withheld or not a number")
    known: bool = Field(description="false: an unknown caller (no screen pop, no disposition)")
    answers_attempt: str | None = Field(description="the attempt that did not reach this customer, if any")
    answers_outcome: str | None = Field(description="its outcome: abandoned, no_answer, busy ...")


class DeskCallOut(BaseModel):
    attempt: str = Field(description="the outbound attempt's id, or the inbound call's (in-...)")
    campaign: str
    lead_id: int | None = Field(description="null: an inbound caller the dialer does not know")
    customer_zone: str | None
    screen_pop: dict[str, Any] | None
    disposition: str | None
    ended: bool
    inbound: DeskInboundOut | None = Field(None, description="set for a customer calling back (inbound)")


class DeskMeOut(BaseModel):
    user: str
    role: str
    state: str = Field(description="ready, paused, ringing, in_call, wrapup or logged_out (agents)")
    seconds_in_state: float
    pause_reason: str | None = None
    call: DeskCallOut | None = None


class DeskDispositionIn(_In):
    code: str = Field(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    notes: str = Field("", max_length=MAX_NOTES)
    callback_local: str | None = Field(
        None, max_length=32, description="YYYY-MM-DDTHH:MM in the customer's own zone (the call's customer_zone)"
    )


class DeskDispositionOut(BaseModel):
    attempt: str
    code: str
    action: str
    callback_id: int | None
    callback_at: str | None = Field(description="the callback's time with the customer's UTC offset")


class DeskPauseIn(_In):
    reason: str = Field(description=f"one of {', '.join(PAUSE_REASONS)}")


class WallAgentOut(BaseModel):
    id: str
    name: str
    state: str
    seconds_in_state: float
    pause_reason: str | None
    call: str | None
    campaign: str | None
    on_call: bool
    disposition: str | None


class WallOut(BaseModel):
    campaigns: list[dict[str, Any]]
    agents: list[WallAgentOut]


class MonitorIn(_In):
    agent: str = Field(max_length=64)
    mode: str = Field(description="listen, whisper or barge")


class MonitorOut(BaseModel):
    channel_id: str


class DeskErrorBody(BaseModel):
    message: str
    errors: list[dict[str, Any]] = []


_JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": DeskErrorBody, "description": text}
    for code, text in (
        (401, "not signed in (the desk session cookie)"),
        (403, "not for this role, or a missing or wrong X-CSRF-Token, or another site's Origin"),
        (404, "the desk is off: no http.desk_users_file"),
        (409, "refused in the current state (no call, AMI down, in wrap-up)"),
        (413, "request body too large"),
        (422, "malformed input"),
    )
}


def desk_router(daemon: DaemonControl) -> APIRouter:
    router = APIRouter(tags=["desk"], responses=_JSON_ERRORS)

    def desk() -> Any:
        if daemon.desk is None:
            raise DeskError(404, "the agent desk is off (no http.desk_users_file)")
        return daemon.desk

    # -- sessions --------------------------------------------------------------------------

    def current(request: Request) -> Session | None:
        if daemon.desk is None:
            return None
        return daemon.desk.sessions.get(request.cookies.get(COOKIE), daemon.clock())

    def same_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is None:
            return  # not sent by every browser on same-origin forms; the CSRF token still guards
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise DeskError(403, "cross-site request refused")

    def signed_in(*roles: Role) -> Any:
        def dependency(request: Request) -> Session:
            desk()
            session = current(request)
            if session is None:
                raise DeskError(401, "sign in first")
            if session.role not in roles:
                raise DeskError(403, f"not for the {session.role.value} role")
            return session

        return dependency

    def changing(*roles: Role) -> Any:
        """A state-changing request: signed in with one of `roles`, same origin, the session's CSRF token."""
        check_role = signed_in(*roles)

        async def dependency(request: Request) -> Session:
            session = check_role(request)
            same_origin(request)
            token = request.headers.get("x-csrf-token")
            if token is None:
                token = (await form(request)).get("csrf")
            if not token or not secrets.compare_digest(token.encode(), session.csrf.encode()):
                raise DeskError(403, "missing or wrong CSRF token: reload the page")
            return session

        return dependency

    async def form(request: Request) -> dict[str, str]:
        cached = getattr(request.state, "desk_form", None)
        if cached is not None:
            return cached
        values: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", "replace")
            try:
                parsed = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
            except ValueError:
                raise DeskError(422, "too many form fields") from None
            values = {k: v[0] for k, v in parsed.items()}
        request.state.desk_form = values
        return values

    AgentSession = Annotated[Session, Depends(signed_in(Role.agent))]
    AgentChange = Annotated[Session, Depends(changing(Role.agent))]
    WallSession = Annotated[Session, Depends(signed_in(Role.supervisor, Role.admin))]
    WallChange = Annotated[Session, Depends(changing(Role.supervisor, Role.admin))]
    AnyChange = Annotated[Session, Depends(changing(Role.agent, Role.supervisor, Role.admin))]

    def page(html: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def back(session: Session, where: str, message: str | None = None) -> RedirectResponse:
        session.flash = message
        return RedirectResponse(where, status_code=303)

    def take_flash(session: Session) -> str | None:
        message, session.flash = session.flash, None
        return message

    def home(session: Session) -> str:
        return "/desk/agent" if session.role is Role.agent else "/desk/wall"

    # -- sign-in ------------------------------------------------------------------------------

    @router.get("/desk", include_in_schema=False)
    async def desk_home(request: Request) -> Response:
        desk()
        session = current(request)
        return RedirectResponse(home(session) if session else "/desk/sign-in", status_code=303)

    @router.get("/desk/sign-in", include_in_schema=False)
    async def sign_in_page() -> HTMLResponse:
        desk()
        return page(render("sign_in.html", error=None, user=None))

    @router.post("/desk/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        the_desk = desk()
        same_origin(request)
        values = await form(request)
        user_id = values.get("user", "")[:64]
        secret = values.get("secret", "")
        now = daemon.clock()
        client = request.client.host if request.client else "?"
        keys = [f"ip:{client}", f"user:{user_id}"]
        if the_desk.limiter.blocked(keys, now):
            log.warning("desk.sign_in_limited", user=user_id, client=client)
            return page(render("sign_in.html", error="Too many failed sign-ins: wait a minute.", user=user_id), 429)
        http = daemon.config.http
        assert http is not None and http.desk_users_file is not None
        try:
            users = read_users(http.desk_users_file)
        except DeskUsersError as exc:
            log.error("desk.users_file", error=str(exc))
            return page(render("sign_in.html", error="Sign-in is not available: see the daemon's log.", user=user_id), 503)
        try:
            token: str | None = http.resolve_token()
        except (OSError, LookupError):
            token = None
        user = await asyncio.to_thread(check_credentials, users, user_id, secret, token)
        if user is not None and user.role is Role.agent and user.id not in the_desk.agents:
            log.warning("desk.sign_in_unknown_agent", user=user_id)
            user = None
        if user is None:
            the_desk.limiter.failed(keys, now)
            log.info("desk.sign_in_failed", user=user_id, client=client)
            return page(render("sign_in.html", error="Wrong user id or secret.", user=user_id), 401)
        # A new session id at every sign-in, and the old one (if any) ended: a cookie set
        # by someone else before sign-in is never promoted (session fixation).
        the_desk.sessions.close(request.cookies.get(COOKIE))
        session = the_desk.sessions.open(user.id, user.role, now, user.phone)
        log.info("desk.signed_in", user=user.id, role=user.role.value)
        response = RedirectResponse(home(session), status_code=303)
        response.set_cookie(
            COOKIE,
            session.id,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/desk",
        )
        return response

    @router.post("/desk/sign-out", include_in_schema=False)
    async def sign_out(session: AnyChange) -> Response:
        desk().sessions.close(session.id)
        response = RedirectResponse("/desk/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/desk", httponly=True, samesite="strict")
        return response

    # -- agent ----------------------------------------------------------------------------------

    def agent_of(session: Session) -> DeskAgent:
        agent = desk().agents.get(session.user)
        if agent is None:
            raise DeskError(403, "not an agent of this daemon's config")
        return agent

    def call_zone(call: DeskCall) -> ZoneInfo | None:
        return ZoneInfo(call.zones[0]) if call.zones else None

    def zone_label(call: DeskCall) -> str:
        return call.zones[0] if call.zones else "zone unknown: UTC"

    def window_text(call: DeskCall) -> str:
        runner = daemon.runners.get(call.campaign)
        if runner is None:
            return "campaign not loaded"
        hours = runner.campaign.calling_hours
        days = ", ".join(d for d in WEEKDAYS if d in hours.days)
        return f"{days} {hours.start} to {hours.end}"

    def codes(call: DeskCall) -> list[str]:
        runner = daemon.runners.get(call.campaign)
        return list(runner.campaign.dispositions) if runner else []

    def agent_values(session: Session, agent: DeskAgent) -> dict[str, Any]:
        return {
            "session": session,
            "agent": agent,
            "now": daemon.clock(),
            "zone_label": zone_label,
            "window_text": window_text,
            "codes": codes,
        }

    @router.get("/desk/agent", include_in_schema=False)
    async def agent_page(session: AgentSession) -> HTMLResponse:
        agent = agent_of(session)
        return page(render("agent.html", flash=take_flash(session), **agent_values(session, agent)))

    @router.get("/desk/agent/events", include_in_schema=False)
    async def agent_events(request: Request, session: AgentSession, since: int | None = None) -> StreamingResponse:
        the_desk = desk()
        agent = agent_of(session)
        try:
            queue = the_desk.feeds.open(session.user)
        except DeskRefused as exc:
            raise DeskError(429, str(exc)) from None

        async def stream() -> AsyncIterator[str]:
            try:
                # The state at connect time: a page (re)connecting misses nothing. The call
                # view only when it changed since the page was rendered, so a fresh page
                # keeps what the agent already typed in its form.
                yield sse("state", render("agent_state.html", **agent_values(session, agent)))
                if since != agent.pop_version:
                    yield sse("pop", render("agent_pop.html", **agent_values(session, agent)))
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except asyncio.TimeoutError:
                        if current_session_gone(session):
                            return  # signed out or expired: the feed ends with the session
                        yield ": keep-alive\n\n"
                        continue
                    if event is None or current_session_gone(session):
                        return
                    kind = event[0]
                    if kind == "state":
                        yield sse("state", render("agent_state.html", **agent_values(session, agent)))
                    elif kind == "pop":
                        yield sse("pop", render("agent_pop.html", **agent_values(session, agent)))
            finally:
                the_desk.feeds.close(session.user, queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    def current_session_gone(session: Session) -> bool:
        return daemon.desk is None or daemon.desk.sessions.get(session.id, daemon.clock()) is None

    @router.post("/desk/agent/ready", include_in_schema=False)
    async def agent_ready(session: AgentChange) -> Response:
        try:
            await desk().ready(agent_of(session).config.id)
        except DeskRefused as exc:
            return back(session, "/desk/agent", str(exc))
        return back(session, "/desk/agent")

    @router.post("/desk/agent/pause", include_in_schema=False)
    async def agent_pause(request: Request, session: AgentChange) -> Response:
        reason = (await form(request)).get("reason", "")
        try:
            await desk().pause(agent_of(session).config.id, reason)
        except DeskRefused as exc:
            return back(session, "/desk/agent", str(exc))
        return back(session, "/desk/agent")

    async def dispose(session: Session, code: str, notes: str, callback_local: str | None) -> DeskDispositionOut:
        """The agent's own call only: the attempt comes from the desk, never from the request."""
        agent = agent_of(session)
        call = agent.call
        if call is None:
            raise DeskError(409, "no call to give a disposition for")
        if call.lead_id is None:
            # An unknown inbound caller: no lead to apply it to, nor to call back.
            raise DeskError(409, "unknown caller: no customer record to give a disposition for; press Ready")
        if len(notes) > MAX_NOTES:
            raise DeskError(422, f"notes: at most {MAX_NOTES} characters")
        runner = daemon.runners.get(call.campaign)
        if runner is None:
            raise DeskError(409, f"campaign {call.campaign} is not loaded")
        action = runner.campaign.dispositions.get(code)
        if action is None:
            raise DeskError(422, f"unknown disposition {code[:32]!r}")
        now = datetime.fromtimestamp(daemon.clock(), UTC)
        callback_at = None
        if action is DispositionAction.callback:
            if not callback_local:
                raise DeskError(422, "a callback needs a time: pick one in the customer's time")
            zone = call_zone(call) or ZoneInfo("UTC")
            try:
                local = datetime.fromisoformat(callback_local)
            except ValueError:
                raise DeskError(422, "callback time: not a date and time") from None
            if local.tzinfo is not None:
                raise DeskError(422, "callback time: give the customer's local time, without an offset")
            callback_at = local.replace(tzinfo=zone)
            zones = [ZoneInfo(z) for z in call.zones] or [zone]
            if callback_at <= now:
                raise DeskError(422, "callback time: in the past")
            if callback_at > now + timedelta(days=366):
                raise DeskError(422, "callback time: more than a year ahead")
            if not runner.campaign.calling_hours.window().open_in_all(callback_at, zones):
                raise DeskError(
                    422, f"callback time {local:%Y-%m-%d %H:%M} is outside the calling window ({window_text(call)})"
                )
        assert daemon.store is not None
        try:
            result = await apply_disposition(
                daemon.store,
                {name: r.campaign for name, r in daemon.runners.items()},
                code=code,
                now=now,
                # An inbound call is no attempt: its disposition goes to the caller's lead.
                attempt_id=call.attempt if call.inbound is None else None,
                lead_id=call.lead_id if call.inbound is not None else None,
                callback_at=callback_at,
                agent=agent.config.id,
                notes=notes or None,
            )
        except DispositionError as exc:
            raise DeskError(422, str(exc)) from None
        webhooks = getattr(daemon, "webhooks", None)
        if result.event_id and webhooks is not None:
            webhooks.wake()
        shown = f"{callback_at:%Y-%m-%d %H:%M} {zone_label(call)}" if callback_at else None
        desk().noted_disposition(agent.config.id, code, shown)
        log.info("desk.disposition", agent=agent.config.id, attempt=call.call_id, code=code,
                 callback=result.callback_id, lead=result.lead_id)
        return DeskDispositionOut(
            attempt=call.call_id,
            code=code,
            action=result.action.value,
            callback_id=result.callback_id,
            callback_at=callback_at.isoformat() if callback_at else None,
        )

    @router.post("/desk/agent/disposition", include_in_schema=False)
    async def agent_disposition(request: Request, session: AgentChange) -> Response:
        values = await form(request)
        try:
            done = await dispose(session, values.get("code", ""), values.get("notes", ""), values.get("callback_local") or None)
        except DeskError as exc:
            return back(session, "/desk/agent", exc.message)
        return back(session, "/desk/agent", f"Recorded {done.code}.")

    # -- agent JSON (OpenAPI) ----------------------------------------------------------------------

    def call_out(call: DeskCall | None) -> DeskCallOut | None:
        if call is None:
            return None
        inbound = call.inbound
        return DeskCallOut(
            attempt=call.call_id,
            campaign=call.campaign,
            lead_id=call.lead_id,
            customer_zone=call.zones[0] if call.zones else None,
            screen_pop=call.pop,
            disposition=call.disposition,
            ended=call.ended,
            inbound=None if inbound is None else DeskInboundOut(
                caller=inbound.caller,
                known=call.lead_id is not None,
                answers_attempt=inbound.answers_attempt,
                answers_outcome=inbound.answers_outcome,
            ),
        )

    @router.get("/desk/api/me", response_model=DeskMeOut)
    async def me(request: Request) -> DeskMeOut:
        """The signed-in user; for an agent, their state and their own call (session cookie)."""
        desk()
        session = current(request)
        if session is None:
            raise DeskError(401, "sign in first")
        if session.role is not Role.agent:
            return DeskMeOut(user=session.user, role=session.role.value, state="-", seconds_in_state=0.0)
        agent = agent_of(session)
        return DeskMeOut(
            user=session.user,
            role=session.role.value,
            state=agent.state,
            seconds_in_state=round(daemon.clock() - agent.since, 1),
            pause_reason=agent.pause_reason,
            call=call_out(agent.call),
        )

    @router.post("/desk/api/ready", response_model=DeskMeOut)
    async def me_ready(request: Request, session: AgentChange) -> DeskMeOut:
        """End wrap-up (or a pause): unpause in every queue. Needs header X-CSRF-Token."""
        try:
            await desk().ready(agent_of(session).config.id)
        except DeskRefused as exc:
            raise DeskError(409, str(exc)) from None
        return await me(request)

    @router.post("/desk/api/pause", response_model=DeskMeOut)
    async def me_pause(request: Request, body: DeskPauseIn, session: AgentChange) -> DeskMeOut:
        """Pause in every queue with a reason from the fixed list. Needs header X-CSRF-Token."""
        try:
            await desk().pause(agent_of(session).config.id, body.reason)
        except DeskRefused as exc:
            raise DeskError(409, str(exc)) from None
        return await me(request)

    @router.post("/desk/api/disposition", response_model=DeskDispositionOut)
    async def me_disposition(body: DeskDispositionIn, session: AgentChange) -> DeskDispositionOut:
        """The disposition of the agent's own current or last call. Needs header X-CSRF-Token."""
        return await dispose(session, body.code, body.notes, body.callback_local)

    # -- supervisor -----------------------------------------------------------------------------------

    figures_cache: dict[str, Any] = {"at": None, "campaigns": []}
    figures_lock = asyncio.Lock()

    async def all_campaign_figures(now: float) -> list[dict[str, Any]]:
        # Every open wall page shares one reading of the store per WALL_CACHE_S: a hundred
        # supervisors' feeds cost what one does.
        async with figures_lock:
            at = figures_cache["at"]
            if at is None or not 0 <= now - at < WALL_CACHE_S:
                figures_cache["campaigns"] = [await campaign_figures(daemon, n) for n in daemon.known_campaigns()]
                figures_cache["at"] = now
            return list(figures_cache["campaigns"])

    async def wall_values(session: Session, *, fresh: bool = False) -> dict[str, Any]:
        the_desk = desk()
        now = daemon.clock()
        if fresh:
            figures_cache["at"] = None
        campaigns = await all_campaign_figures(now)
        agents = []
        for agent in the_desk.agents.values():
            state = the_desk.board_state(agent)
            agents.append(
                {
                    "id": agent.config.id,
                    "name": agent.config.name or agent.config.id,
                    "state": agent.state,
                    "seconds": round(now - agent.since, 1),
                    "for": duration(now - agent.since),
                    "pause_reason": agent.pause_reason,
                    "call": agent.call.call_id if agent.call else None,
                    "campaign": agent.call.campaign if agent.call else None,
                    "on_call": bool(state and state.on_call),
                    "disposition": agent.last_disposition,
                }
            )
        return {
            "session": session,
            "campaigns": [c for c in campaigns if c["report"] is not None],
            "agents": agents,
            "updated": datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S UTC"),
        }

    @router.get("/desk/wall", include_in_schema=False)
    async def wall_page(session: WallSession) -> HTMLResponse:
        return page(render("wall.html", flash=take_flash(session), **await wall_values(session, fresh=True)))

    @router.get("/desk/wall/events", include_in_schema=False)
    async def wall_events(session: WallSession) -> StreamingResponse:
        the_desk = desk()
        try:
            queue = the_desk.feeds.open(session.user)
        except DeskRefused as exc:
            raise DeskError(429, str(exc)) from None

        async def stream() -> AsyncIterator[str]:
            try:
                while True:
                    yield sse("wall", render("wall_body.html", **await wall_values(session)))
                    try:
                        # Sooner when an agent's state changes; else every WALL_EVERY_S.
                        event = await asyncio.wait_for(queue.get(), WALL_EVERY_S)
                        if event is None:
                            return
                        await asyncio.sleep(0.2)  # a burst of agent events: one render
                        while not queue.empty():
                            if queue.get_nowait() is None:
                                return
                    except asyncio.TimeoutError:
                        pass
                    if current_session_gone(session):
                        return
            finally:
                the_desk.feeds.close(session.user, queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @router.get("/desk/api/wall", response_model=WallOut)
    async def wall_json(session: WallSession) -> WallOut:
        """Every campaign's figures (the report's, and live ones) and every agent's state (supervisor, admin)."""
        values = await wall_values(session, fresh=True)
        return WallOut(
            campaigns=values["campaigns"],
            agents=[
                WallAgentOut(**{**a, "seconds_in_state": a["seconds"]})
                for a in values["agents"]
            ],
        )

    @router.post("/desk/wall/campaigns/{name}/{action}", include_in_schema=False)
    async def wall_control(name: str, action: str, session: WallChange) -> Response:
        if action not in ("start", "pause", "resume", "stop", "stop-now") or not daemon.campaign_exists(name):
            return back(session, "/desk/wall", "no such campaign or action")
        try:
            if action == "stop-now":
                state = await daemon.stop_campaign(name, now=True)
            else:
                state = await getattr(daemon, f"{action}_campaign")(name)
        except ControlError as exc:
            return back(session, "/desk/wall", str(exc))
        log.info("desk.campaign_control", user=session.user, campaign=name, action=action)
        runner = daemon.runners.get(name)
        note = over_limit_note(state, runner.abandon_state(daemon.clock())) if runner is not None else None
        return back(session, "/desk/wall", f"{name}: {state.value}" + (f" ({note})" if note else ""))

    async def monitor(session: Session, agent_id: str, mode: str) -> MonitorOut:
        if mode not in MONITOR_MODES:
            raise DeskError(422, f"mode: one of {', '.join(MONITOR_MODES)}")
        if not session.phone:
            raise DeskError(409, "you have no phone in the desk users file (dialer desk set-secret --phone)")
        try:
            channel_id = await desk().monitor(agent_id, mode, session.phone)
        except DeskRefused as exc:
            raise DeskError(409, str(exc)) from None
        return MonitorOut(channel_id=channel_id)

    @router.post("/desk/wall/monitor", include_in_schema=False)
    async def wall_monitor(request: Request, session: WallChange) -> Response:
        values = await form(request)
        try:
            await monitor(session, values.get("agent", ""), values.get("mode", ""))
        except DeskError as exc:
            return back(session, "/desk/wall", exc.message)
        return back(session, "/desk/wall", "Your phone rings: answer it to join the call.")

    @router.post("/desk/api/monitor", response_model=MonitorOut)
    async def monitor_json(body: MonitorIn, session: WallChange) -> MonitorOut:
        """Ring the supervisor's phone into the agent's call: listen, whisper or barge. Needs X-CSRF-Token."""
        return await monitor(session, body.agent, body.mode)

    return router


def desk_error_response(request: Request, exc: DeskError) -> Response:
    """JSON for the JSON routes and feeds; a page (or the sign-in page) for the others."""
    path = request.url.path
    if path.startswith("/desk/api/") or path.endswith("/events"):
        return JSONResponse({"message": exc.message, "errors": []}, status_code=exc.status)
    if exc.status == 401:
        return RedirectResponse("/desk/sign-in", status_code=303)
    return HTMLResponse(render("sign_in.html", error=exc.message, user=None), status_code=exc.status)


class DeskHeaders:
    """ASGI middleware: the Content-Security-Policy (no inline script, nothing from elsewhere) and
    friends on the desk's pages and static files. Pure ASGI, so the live feeds stream untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/desk" or path.startswith(("/desk/", "/static/"))):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),  # no-referrer would make Origin "null"
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
