"""The Asterisk sandbox: real Asterisk 22 in a chroot, SIPp as carrier and agents."""

from dialer.sandbox.customers import CustomerBehaviour, CustomerKind, customer_number, parse_customer_number
from dialer.sandbox.errors import SandboxError, SandboxStartError, SandboxUnavailable
from dialer.sandbox.events import AgentEvent, CarrierEvent, read_agent_events, read_carrier_events
from dialer.sandbox.ports import SandboxPorts
from dialer.sandbox.sandbox import Sandbox
from dialer.sandbox.state import AgentPhone, AmiAccess, SandboxState

__all__ = [
    "AgentEvent",
    "AgentPhone",
    "AmiAccess",
    "CarrierEvent",
    "CustomerBehaviour",
    "CustomerKind",
    "Sandbox",
    "SandboxError",
    "SandboxPorts",
    "SandboxStartError",
    "SandboxState",
    "SandboxUnavailable",
    "customer_number",
    "parse_customer_number",
    "read_agent_events",
    "read_carrier_events",
]
