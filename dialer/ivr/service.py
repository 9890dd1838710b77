"""The IVR inside the daemon: flows and prompts made ready at start, the FastAGI server.

`IvrService.prepare` loads the flows the campaigns name and renders every text the
dialplan will play (flow prompts, abandon and machine messages); `start` opens the
FastAGI server (panoramisk's `fast_agi`) the dialplan reaches with
`AGI(${DIALER_AGI}/ivr,<attempt id>)`; `variables(campaign)` are the channel
variables the Originate carries for it (asterisk-conf/README.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from panoramisk import fast_agi

from dialer.ami.values import check_sound
from dialer.config.models import Campaign, DialerConfig
from dialer.core.originate import media_variables
from dialer.ivr.agi_server import GuardedApplication
from dialer.ivr.flow import Flow, TextPrompt
from dialer.ivr.loader import load_flow_dir
from dialer.ivr.prompts import PromptError, SoundPlaces, flow_sounds, render_text
from dialer.ivr.session import AgiSession, IvrCall, RecordSink, SurveyWriter
from dialer.ivr.settings import OnMachine

log = structlog.get_logger("dialer.ivr")

ROUTE = "ivr"
DEFAULT_VOICE = "en"


class IvrSetupError(Exception):
    """Flows or prompts are not usable; the daemon does not start."""


class CallOwner(Protocol):
    """A campaign runner, as far as the IVR needs one."""

    campaign: Campaign
    campaign_id: int
    attempts: Mapping[str, Any]  # attempt id -> Attempt (with .phone)


def sound_places(config: DialerConfig) -> SoundPlaces:
    ivr = config.ivr
    return SoundPlaces(ivr.sounds_dir, ivr.asterisk_sounds_dir or str(ivr.sounds_dir))


@dataclass
class IvrService:
    config: DialerConfig
    flows: dict[str, Flow]
    sounds: dict[str, dict[str, str]]
    """Flow name -> prompt name -> what Asterisk plays."""
    messages: dict[str, str]
    """Text -> what Asterisk plays (abandon and machine messages)."""
    _server: asyncio.Server | None = field(default=None, init=False)
    _sessions: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    @classmethod
    async def prepare(cls, config: DialerConfig, campaigns: Iterable[Campaign]) -> IvrService:
        campaigns = [c for c in campaigns if c.enabled]
        wanted = {c.ivr for c in campaigns if c.ivr}
        flows: dict[str, Flow] = {}
        if wanted:
            found, issues = load_flow_dir(config.ivr.flow_dir)
            missing = sorted(wanted - set(found))
            if missing:
                detail = "\n".join(str(i) for i in issues)
                raise IvrSetupError(
                    f"IVR flow(s) {', '.join(missing)} not found or invalid in {config.ivr.flow_dir}"
                    + (f":\n{detail}" if detail else "")
                )
            flows = {name: found[name] for name in wanted}
        texts = {c.abandon_text for c in campaigns if c.abandon_text}
        texts |= {c.amd.message for c in campaigns if c.amd.enabled and c.amd.message}
        places = sound_places(config)
        # Flows' text prompts are played from there too, named in AGI command lines.
        if texts or any(isinstance(p, TextPrompt) for f in flows.values() for p in f.prompts.values()):
            try:
                # The rendered messages reach Playback() through Originate variables.
                check_sound(places.asterisk_directory.rstrip("/") or "/")
            except ValueError as exc:
                raise IvrSetupError(
                    f"ivr: the sounds directory as Asterisk names it, {places.asterisk_directory!r}, {exc}; "
                    "set ivr.asterisk_sounds_dir"
                ) from None
        try:
            sounds, messages = await asyncio.to_thread(_render_all, flows, texts, places)
        except (PromptError, OSError) as exc:
            raise IvrSetupError(f"cannot render prompts into {places.directory}: {exc}") from exc
        return cls(config, flows, sounds, messages)

    @property
    def needed(self) -> bool:
        return bool(self.flows)

    @property
    def port(self) -> int | None:
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    def variables(self, campaign: Campaign) -> dict[str, str]:
        """Channel variables for the Originate of a call of `campaign`."""
        abandon = None
        if campaign.abandon_text:
            # A text added by a reload after start is not rendered yet: keep the sound name.
            abandon = self.messages.get(campaign.abandon_text)
            if abandon is None:
                log.warning("ivr.message_not_rendered", campaign=campaign.name, what="abandon_text")
        amd = campaign.amd
        machine = None
        if amd.on_machine is OnMachine.leave_message and amd.message in self.messages:
            machine = self.messages[amd.message]
        return media_variables(
            abandon_message=abandon,
            ivr_flow=campaign.ivr,
            amd_parameters=amd.parameters.argument() if amd.enabled else None,
            on_machine=amd.on_machine.value,
            machine_message=machine,
        )

    async def start(
        self,
        owners: Callable[[], Iterable[CallOwner]],
        store: SurveyWriter,
        notify: RecordSink,
        clock: Callable[[], float] = time.time,
        extra_routes: Mapping[str, Callable[[Any], Awaitable[None]]] | None = None,
    ) -> None:
        """Listen for FastAGI; `owners` gives the campaign runners, to find a call's campaign.

        `extra_routes` (route name -> handler) share the server: the inbound routes
        (`dialer.inbound.service`).
        """
        # panoramisk's own handler spins for ever on a peer that closes mid-environment.
        app = GuardedApplication()

        async def route(request: fast_agi.Request) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._sessions.add(task)
            try:
                call = self._call_for(request.headers, owners())
                if call is None:
                    log.warning("ivr.unknown_call", headers={k: v for k, v in request.headers.items() if "arg" in k})
                    await request.send_command("HANGUP")
                    return
                await AgiSession(request, call, store, notify, clock).run()
            finally:
                if task is not None:
                    self._sessions.discard(task)

        app.add_route(ROUTE, route)
        for name, handler in (extra_routes or {}).items():
            app.add_route(name, self._tracked(handler))
        agi = self.config.agi
        try:
            self._server = await asyncio.start_server(app.handler, agi.host, agi.port)
        except OSError as exc:
            raise IvrSetupError(f"FastAGI cannot listen on {agi.host}:{agi.port}: {exc}") from exc
        log.info("ivr.listening", host=agi.host, port=self.port, flows=sorted(self.flows))

    def _tracked(self, handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        async def run(request: Any) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._sessions.add(task)
            try:
                await handler(request)
            except Exception:
                log.exception("agi.route_failed")
            finally:
                if task is not None:
                    self._sessions.discard(task)

        return run

    def _call_for(self, headers: Mapping[str, str], owners: Iterable[CallOwner]) -> IvrCall | None:
        attempt_id = headers.get("agi_arg_1") or headers.get("agi_uniqueid") or ""
        for owner in owners:
            attempt = owner.attempts.get(attempt_id)
            flow = self.flows.get(owner.campaign.ivr or "")
            if attempt is not None and flow is not None:
                return IvrCall(
                    attempt_id=attempt_id,
                    campaign_id=owner.campaign_id,
                    campaign=owner.campaign.name,
                    phone=attempt.phone,
                    flow=flow,
                    sounds=self.sounds[flow.name],
                )
        return None

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._sessions:
            # Sessions end by themselves once Asterisk hangs up; past the grace, cut them.
            _, pending = await asyncio.wait(set(self._sessions), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("ivr.sessions_cancelled", count=len(pending))


def _render_all(
    flows: Mapping[str, Flow], texts: Iterable[str], places: SoundPlaces
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    sounds = {name: flow_sounds(flow, places) for name, flow in flows.items()}
    messages = {text: places.asterisk_name(render_text(text, DEFAULT_VOICE, places.directory)) for text in texts}
    return sounds, messages


