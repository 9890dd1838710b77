"""YAML settings files read with `file:line: field: message` problems: the config's, the campaigns' and
the IVR flows' common ground (`dialer.config.loader` and `dialer.ivr.loader` both build on it).

Errors:

    ConfigError                  issues: list[ConfigIssue]; str() is one issue per line
    ├── ConfigFileError          unreadable, not YAML, duplicate key, not a mapping
    ├── ConfigValidationError    the values do not fit the models
    └── DuplicateCampaignError   two files define the same campaign name
"""

from __future__ import annotations

import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialer.config.yaml_loader import YamlDocument, YamlError, load_yaml_mapping, looks_like_key, shorten

YAML_SUFFIXES = (".yaml", ".yml")

# Pydantic's wording for these names Python classes, which mean nothing to an operator.
_PLAINER_MESSAGES = {
    "model_type": "Input should be a mapping (key: value lines, indented under this key)",
    "model_attributes_type": "Input should be a mapping (key: value lines, indented under this key)",
    "path_type": "Input should be a file or directory path",
}


@dataclass(frozen=True)
class ConfigIssue:
    file: Path
    line: int | None
    """1-based; None when the issue is about the file as a whole."""
    field: str
    """Dotted path of the offending setting; empty when the issue is not about one."""
    message: str

    def __post_init__(self) -> None:
        # Messages and field names may quote the file; keep every line short.
        object.__setattr__(self, "field", shorten(self.field, 120))
        object.__setattr__(self, "message", shorten(self.message))

    def __str__(self) -> str:
        parts = [str(self.file) if self.line is None else f"{self.file}:{self.line}"]
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(Exception):
    """One or more problems in configuration files; see the module docstring for the tree."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class ConfigFileError(ConfigError):
    """The file cannot be read as a YAML mapping."""


class ConfigValidationError(ConfigError):
    """The file is a YAML mapping but its values do not fit the model."""


class DuplicateCampaignError(ConfigError):
    """Two campaign files use the same campaign name."""


def yaml_files_in(directory: Path) -> list[Path]:
    """The `*.yaml` / `*.yml` files of `directory` in name order, without editors' temp files.

    Directories, FIFOs, sockets and devices are left out; symbolic links are listed, for
    the reader to follow only if they stay inside `directory`.
    """
    return sorted(
        entry
        for entry in directory.iterdir()
        if entry.suffix in YAML_SUFFIXES and not _is_editor_temp(entry.name) and _file_or_link(entry)
    )


def _file_or_link(entry: Path) -> bool:
    try:
        mode = entry.lstat().st_mode
    except OSError:
        return False  # gone since it was listed
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def _is_editor_temp(name: str) -> bool:
    # Emacs lock files (.#x.yaml), autosaves (#x.yaml#), backups (x.yaml~), vim swap
    # (.x.yaml.swp): hidden files are never campaigns either.
    return name.startswith((".", "#")) or name.endswith(("~", "#"))


def read_document(path: Path, *, within: Path | None = None) -> YamlDocument:
    try:
        return load_yaml_mapping(path, within=within)
    except YamlError as exc:
        raise ConfigFileError(
            [ConfigIssue(exc.file, p.line, "", p.message) for p in exc.problems]
        ) from exc


def issue_from_error(document: YamlDocument, error: Mapping[str, Any]) -> ConfigIssue:
    loc: Sequence[Any] = error["loc"]
    kind = error["type"]
    message = _PLAINER_MESSAGES.get(kind) or str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads 5551234 as a number and 0123 as octal; a quoted value stays text.
        message += "; put it in quotes"
    elif kind not in ("missing", "extra_forbidden") and _may_echo(loc, value):
        message += f" (got {value!r})"
    line = document.line_of(loc)
    parts = (_loc_part(document, loc, end, kind) for end in range(1, len(loc) + 1))
    shown = ["?" if part is None else str(part) for part in parts]
    if kind == "extra_forbidden" and shown and shown[-1] == "?":
        # Not a name: perhaps a line of some other file. Say where, not what.
        return ConfigIssue(document.file, line, ".".join(shown[:-1]), f"unknown key at line {line}")
    return ConfigIssue(document.file, line, ".".join(shown), message)


def _loc_part(document: YamlDocument, loc: Sequence[Any], end: int, kind: str) -> Any:
    """`loc[end - 1]` if it may be shown, None if it is a key of the file that does not look like one."""
    part = loc[end - 1]
    if isinstance(part, (int, bool)) or looks_like_key(part):
        return part
    from_file = document.has(loc[:end]) or (kind == "extra_forbidden" and end == len(loc))
    return None if from_file else part


def _may_echo(loc: Sequence[Any], value: Any) -> bool:
    # A secret, or a database URL with its password, must not end up in a terminal or a log.
    if any(word in str(part) for part in loc for word in ("secret", "token", "url", "password")):
        return False
    return isinstance(value, (str, int, float)) and len(repr(value)) <= 60
