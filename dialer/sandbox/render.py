"""Turning the ops-facing files in `asterisk-conf/` into one sandbox's config.

The files carry `@@NAME@@` placeholders (listed in asterisk-conf/README.md);
an ops team fills them by hand, the sandbox with `render`. Pure: texts in,
texts out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from dialer.sandbox.ports import SandboxPorts

PLACEHOLDER = re.compile(r"@@([A-Z][A-Z0-9_]*)@@")

# The ops-facing files, from asterisk-conf/, and the sandbox-only ones, from
# asterisk-conf/sandbox/. Together they are the whole of the sandbox's etc/.
OPS_FILES = ("amd.conf", "extensions.conf", "manager.conf", "modules.conf", "pjsip.conf", "queues.conf", "rtp.conf")
SANDBOX_FILES = ("asterisk.conf", "cdr.conf", "logger.conf")
AGENTS_FILE = "pjsip_agents.conf"
# Taken as Debian ships them (from the root's /etc/asterisk) when present:
# core settings the dialer does not care about, but Asterisk logs an error
# for each one missing.
DEBIAN_DEFAULT_FILES = ("acl.conf", "ccss.conf", "cel.conf", "features.conf", "indications.conf",
                        "pjproject.conf", "stasis.conf", "udptl.conf")
AMI_USERNAME = "dialer"


class RenderError(ValueError):
    pass


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(text: str, values: Mapping[str, str], source: str = "<text>") -> str:
    """Replace every @@NAME@@; a name without a value is an error, not an empty string."""
    missing = sorted(placeholders(text) - set(values))
    if missing:
        raise RenderError(f"{source}: no value for {', '.join('@@' + m + '@@' for m in missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def agent_ids(count: int) -> list[str]:
    return [f"agent{k}" for k in range(1, count + 1)]


def agents_pjsip(agents: Sequence[str], host: str, port: int) -> str:
    """PJSIP endpoints for SIPp agent phones: static contacts, no registration."""
    sections = ["; Written by dialer.sandbox: the SIPp agent phones (one SIPp plays them all).\n"]
    for agent in agents:
        sections.append(
            f"\n[{agent}](agent-phone)\naors = {agent}\n"
            f"\n[{agent}](agent-aor)\ncontact = sip:{agent}@{host}:{port}\n"
            # SIPp would take Asterisk's OPTIONS for a new call.
            "qualify_frequency = 0\n"
        )
    return "".join(sections)


def sandbox_values(
    ports: SandboxPorts, secret: str, instance_dir: str, modules_dir: str, system_name: str
) -> dict[str, str]:
    """Values for every placeholder, for a sandbox on 127.0.0.1."""
    return {
        "SIP_BIND": f"127.0.0.1:{ports.sip}",
        "AMI_BIND": "127.0.0.1",
        "AMI_PORT": str(ports.ami),
        "AMI_SECRET": secret,
        "RTP_START": str(ports.rtp_start),
        "RTP_END": str(ports.rtp_end),
        "CARRIER_ADDRESS": f"127.0.0.1:{ports.carrier}",
        "CARRIER_MATCH": "127.0.0.1",
        "AGI_PORT": str(ports.agi),
        "INSTANCE_DIR": instance_dir,
        "MODULES_DIR": modules_dir,
        "SYSTEM_NAME": system_name,
    }


def render_sandbox_config(
    ops_templates: Mapping[str, str],
    sandbox_templates: Mapping[str, str],
    values: Mapping[str, str],
    agents: Sequence[str],
    agents_port: int,
) -> dict[str, str]:
    """File name -> content for the sandbox's etc/ directory."""
    files = {name: render(text, values, name) for name, text in ops_templates.items()}
    files.update({name: render(text, values, f"sandbox/{name}") for name, text in sandbox_templates.items()})
    files[AGENTS_FILE] = agents_pjsip(agents, "127.0.0.1", agents_port)
    return files
