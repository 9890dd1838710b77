"""The chaos run's figures and verdicts as text, for the test's output and the script."""

from __future__ import annotations

from tests.integration.chaos.driver import ChaosResult

MAX_VIOLATIONS_SHOWN = 12


def render(result: ChaosResult, replay: str | None = None) -> str:
    lines = ["chaos run figures:"]
    for name, value in result.figures.items():
        lines.append(f"  {name}: {value}")
    lines.append("faults injected:")
    for fault in result.record.faults:
        lines.append(
            f"  +{fault.started_at - result.record.started_at:6.1f}s {fault.kind:<16} "
            f"{fault.ended_at - fault.started_at:5.1f}s {fault.detail}"
        )
    lines.append("invariants:")
    for verdict in result.verdicts:
        lines.append(f"  [{'PASS' if verdict.ok else 'FAIL'}] {verdict.title}: {verdict.figures}")
        for violation in verdict.violations[:MAX_VIOLATIONS_SHOWN]:
            lines.append(f"      - {violation}")
        if len(verdict.violations) > MAX_VIOLATIONS_SHOWN:
            lines.append(f"      ... and {len(verdict.violations) - MAX_VIOLATIONS_SHOWN} more")
    if not result.ok and replay:
        lines.append(f"replay this run: {replay}")
    return "\n".join(lines)
