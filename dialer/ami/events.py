"""Pure mapping from raw AMI events (header dicts) to the core's plain records."""

from __future__ import annotations

from collections.abc import Mapping

from dialer.core import records as r

# Events the dialer reads, as Asterisk spells them. The gateway asks Asterisk for
# these alone at every login (`dialer.ami.gateway.subscribe`; asterisk-conf/manager.conf
# lists them too, for an AMI user without the `system` right the Filter action needs):
# a call brings ~16 events, RTCP reports, dialplan steps, bridges..., most unread.
SUBSCRIBED = (
    "OriginateResponse",
    "Newchannel",
    "Newstate",
    "Hangup",
    "QueueCallerJoin",
    "AgentCalled",
    "AgentConnect",
    "AgentComplete",
    "AgentRingNoAnswer",
    "UserEvent",
    "QueueMemberStatus",
    "QueueMemberAdded",
    "QueueMemberRemoved",
    "QueueMemberPause",
    "Shutdown",
    "SoftHangupRequest",
)

# Everything else is dropped at the door; `queuemember` is an entry of a QueueStatus
# list (an action's reply, which no filter holds back).
WANTED = frozenset({name.lower() for name in SUBSCRIBED} | {"queuemember"})


# Asterisk's AST_SOFTHANGUP_SHUTDOWN: the reason a SoftHangupRequest gives when the PBX stops.
SOFTHANGUP_SHUTDOWN = 4


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def _flag(value: object) -> bool:
    return str(value).strip().lower() in {"1", "yes", "true"}


def _get(event: Mapping[str, str], key: str) -> str | None:
    # panoramisk messages are case-insensitive already; plain dicts from
    # fixtures may not be.
    if key in event:
        return event[key]
    lowered = key.lower()
    for k, v in event.items():
        if k.lower() == lowered:
            return v
    return None


def _member_interface(event: Mapping[str, str]) -> str:
    return _get(event, "Interface") or _get(event, "Location") or _get(event, "StateInterface") or ""


def to_record(
    event: Mapping[str, str], at: float
) -> r.CallRecord | r.AgentRecord | r.DispositionRequested | r.PbxShutdown | None:
    """Turn one AMI event into a record, or None if the dialer does not care."""
    name = (_get(event, "Event") or "").lower()
    if name not in WANTED:
        return None
    uniqueid = _get(event, "Uniqueid") or ""
    match name:
        case "originateresponse":
            attempt_id = _get(event, "ActionID") or uniqueid
            return r.OriginateResult(
                attempt_id=attempt_id,
                at=at,
                success=(_get(event, "Response") or "").lower() == "success",
                reason=_int(_get(event, "Reason")),
            )
        case "softhanguprequest":
            # Only a shutdown's matters: any other is followed by a Hangup with its cause.
            if _int(_get(event, "Cause")) != SOFTHANGUP_SHUTDOWN:
                return None
            # The agent's leg carries the attempt id as its Linkedid.
            return r.ShutdownHangup(uniqueid=_get(event, "Linkedid") or uniqueid, at=at)
        case "shutdown":
            return r.PbxShutdown(at=at, restart=_flag(_get(event, "Restart")))
        case "newchannel":
            return r.ChannelCreated(uniqueid=uniqueid, at=at, channel=_get(event, "Channel") or "")
        case "newstate":
            state = _int(_get(event, "ChannelState"))
            return None if state is None else r.ChannelState(uniqueid=uniqueid, at=at, state=state)
        case "hangup":
            return r.ChannelHangup(
                uniqueid=uniqueid,
                at=at,
                cause=_int(_get(event, "Cause")),
                cause_text=_get(event, "Cause-txt"),
            )
        case "queuecallerjoin":
            return r.QueueJoined(uniqueid=uniqueid, at=at, queue=_get(event, "Queue") or "")
        case "agentcalled":
            return r.AgentRinging(
                uniqueid=uniqueid, at=at, queue=_get(event, "Queue") or "", interface=_member_interface(event)
            )
        case "agentconnect":
            return r.AgentConnected(
                uniqueid=uniqueid, at=at, queue=_get(event, "Queue") or "", interface=_member_interface(event)
            )
        case "agentcomplete" | "agentringnoanswer":
            return r.AgentCompleted(
                uniqueid=uniqueid,
                at=at,
                queue=_get(event, "Queue") or "",
                interface=_member_interface(event),
                talk_time=_float(_get(event, "TalkTime")),
            )
        case "userevent":
            kind = (_get(event, "UserEvent") or "").lower()
            attempt = _get(event, "Attempt") or uniqueid
            if kind == "dialerabandoned":
                return r.DialerAbandoned(uniqueid=attempt, at=at)
            if kind == "dialeragentconnect":
                # A direct callback's agent answered (asterisk-conf: [dialer-agent-answered]).
                return r.AgentConnected(uniqueid=attempt, at=at, queue="", interface=_get(event, "Interface") or "")
            if kind == "dialerdisposition":
                return r.DispositionRequested(
                    attempt_id=attempt,
                    at=at,
                    code=(_get(event, "Code") or "").strip().lower(),
                    callback_at=(_get(event, "CallbackAt") or "").strip() or None,
                    agent=(_get(event, "Agent") or "").strip() or None,
                    notes=(_get(event, "Notes") or "").strip() or None,
                )
            if kind == "dialeramd":
                status = (_get(event, "Status") or "").strip().upper() or "NOTSURE"
                return r.AmdVerdict(uniqueid=attempt, at=at, status=status, cause=_get(event, "Cause") or None)
            if kind == "dialermachine":
                left = (_get(event, "Action") or "").strip().lower() == "leave_message"
                return r.MachineDetected(uniqueid=attempt, at=at, left_message=left)
            return None
        case "queuememberremoved":
            return r.MemberRemoved(at=at, queue=_get(event, "Queue") or "", interface=_member_interface(event))
        case "queuememberstatus" | "queuememberadded" | "queuememberpause" | "queuemember":
            return r.MemberStatus(
                at=at,
                queue=_get(event, "Queue") or "",
                interface=_member_interface(event),
                status=_int(_get(event, "Status")) or 0,
                paused=_flag(_get(event, "Paused")),
                in_call=_flag(_get(event, "InCall")),
            )
    return None
