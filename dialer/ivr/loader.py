"""Read `ivr/*.yaml` flows, with `file:line: field: message` problems like the config's.

A flow with problems is never half-loaded: `load_flow` raises `ConfigError` listing
every problem (YAML, field values, then how the nodes fit together).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dialer.config.yaml_files import (
    ConfigError,
    ConfigIssue,
    ConfigValidationError,
    issue_from_error,
    read_document,
    yaml_files_in,
)
from dialer.config.yaml_loader import YamlDocument
from dialer.ivr.checks import check_flow
from dialer.ivr.flow import Flow


# The tags pydantic puts in an error's location for a tagged union: not keys of the file.
_UNION_TAGS = frozenset({"question", "message", "transfer", "hangup", "rating", "yes_no", "digits", "text", "sound"})


def flow_from_document(document: YamlDocument) -> Flow:
    try:
        flow = Flow.model_validate(document.data)
    except ValidationError as exc:
        errors = [{**e, "loc": _file_path(document, e["loc"])} for e in exc.errors()]
        issues = [issue_from_error(document, e) for e in errors]
        raise ConfigValidationError(sorted(issues, key=lambda issue: issue.line or 0)) from None
    problems = check_flow(flow)
    if problems:
        issues = []
        for p in problems:
            path = _file_path(document, p.path)
            issues.append(ConfigIssue(document.file, document.line_of(path), ".".join(map(str, p.path)), p.message))
        raise ConfigValidationError(sorted(issues, key=lambda issue: issue.line or 0))
    return flow


def _file_path(document: YamlDocument, loc: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    """`loc` as keys of the file: union tags dropped, answer values as YAML typed them (1, no)."""
    path: tuple[Any, ...] = ()
    for part in loc:
        if document.has(path + (part,)):
            path += (part,)
            continue
        if part in _UNION_TAGS:
            continue
        for typed in _yaml_spellings(part):
            if document.has(path + (typed,)):
                path += (typed,)
                break
        else:
            path += (part,)
    return path


def _yaml_spellings(part: Any) -> list[Any]:
    if not isinstance(part, str):
        return []
    spellings: list[Any] = []
    if part.isdigit():
        spellings.append(int(part))
    if part in ("yes", "no"):
        spellings.append(part == "yes")
    return spellings


def load_flow(path: str | Path, *, within: Path | None = None) -> Flow:
    """The flow in `path`; with `within`, a link is followed only inside that directory."""
    return flow_from_document(read_document(Path(path), within=within))


def load_flow_dir(directory: str | Path) -> tuple[dict[str, Flow], list[ConfigIssue]]:
    """Every valid flow in `directory` by name; a broken file is left out and its issues returned."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}, [ConfigIssue(directory, None, "", "not a directory")]
    flows: dict[str, Flow] = {}
    first: dict[str, Path] = {}
    issues: list[ConfigIssue] = []
    for file in yaml_files_in(directory):
        try:
            flow = load_flow(file, within=directory)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        if flow.name in flows:
            issues.append(ConfigIssue(file, None, "name", f"flow {flow.name!r} is also defined in {first[flow.name]}"))
            continue
        flows[flow.name] = flow
        first[flow.name] = file
    return flows, issues
