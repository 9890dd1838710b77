"""Load `config/dialer.yaml` and `campaigns/*.yaml` into the models, with file:line errors.

Every problem is a `ConfigIssue` that renders as `file:line: field: message`, where
`field` is pydantic's `loc` joined with dots (`dialing.max_lines`, `ami.0.port`); the
errors' tree is drawn in `dialer.config.yaml_files`.

Relative paths in the daemon config are relative to the directory of the config file,
not to the working directory, so the daemon behaves the same however it is started:
`campaign_dir`, `ami[].secret_file` and the file of a SQLite `database.url`. Note that
`sqlite+aiosqlite:///var/dialer.db` (three slashes) is such a relative path; an absolute
one takes four: `sqlite+aiosqlite:////var/lib/dialer/dialer.db`.

The environment variable `DIALER_DATABASE_URL`, if set, replaces `database.url`; a
relative SQLite path in it is left to the working directory, as any shell user expects.

Files found in a directory (the campaign directory, or a directory given to `dialer
validate`) are read only if they are regular files there, or symbolic links to files inside
that directory; a file named on the command line is read wherever its link leads. Sizes,
alias expansion and nesting are limited for every file (`dialer.config.yaml_loader`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url

from dialer.config.models import Campaign, DialerConfig
from dialer.config.yaml_files import (  # the errors and file rules, importable from here as before
    YAML_SUFFIXES,
    ConfigError,
    ConfigFileError,
    ConfigIssue,
    ConfigValidationError,
    DuplicateCampaignError,
    issue_from_error,
    read_document,
    yaml_files_in,
)
from dialer.config.yaml_loader import YamlDocument

FlowReader = Callable[[YamlDocument], object]
"""Validates an IVR flow document, raising ConfigError (dialer.ivr.loader.flow_from_document)."""

DATABASE_URL_ENV = "DIALER_DATABASE_URL"

_Model = TypeVar("_Model", bound=BaseModel)

def load_config(path: str | Path) -> DialerConfig:
    """The daemon config at `path`, with its relative paths made absolute (see module doc)."""
    path = Path(path)
    document = read_document(path)
    config = _validate(DialerConfig, document)
    return _resolve_paths(config, path.resolve().parent)


def load_campaign(path: str | Path, *, within: Path | None = None) -> Campaign:
    """The campaign in `path`; with `within`, a link is followed only inside that directory."""
    return _validate(Campaign, read_document(Path(path), within=within))


def load_campaign_dir(directory: str | Path) -> tuple[dict[str, Campaign], list[ConfigIssue]]:
    """Every campaign file in `directory` (not its subdirectories), by campaign name.

    A file with problems is left out and its issues returned, so one broken campaign does
    not stop the others. Of two files with the same name, the first in file-name order is
    kept.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return {}, [ConfigIssue(directory, None, "", "not a directory")]
    campaigns: dict[str, Campaign] = {}
    issues: list[ConfigIssue] = []
    names = _CampaignNames()
    for file in yaml_files_in(directory):
        try:
            document = read_document(file, within=directory)
            campaign = _validate(Campaign, document)
            names.claim(campaign.name, document)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        campaigns[campaign.name] = campaign
    return campaigns, issues


def config_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[ConfigIssue]]:
    """Expand `paths` (files and directories) into the YAML files they name."""
    found, issues = _expand(paths)
    return [file for file, _ in found], issues


def _expand(paths: Iterable[str | Path]) -> tuple[list[tuple[Path, Path | None]], list[ConfigIssue]]:
    """Each YAML file of `paths` with the directory it was found in (None: named itself)."""
    files: list[tuple[Path, Path | None]] = []
    issues: list[ConfigIssue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = yaml_files_in(path)
            if not found:
                issues.append(ConfigIssue(path, None, "", "no *.yaml or *.yml files in this directory"))
            files.extend((file, path) for file in found)
        elif path.exists() or path.is_symlink():
            files.append((path, None))
        else:
            issues.append(ConfigIssue(path, None, "", "no such file or directory"))
    return files, issues


def validate_paths(paths: Iterable[str | Path], *, flows: FlowReader | None = None) -> list[ConfigIssue]:
    """Every problem in the given config and campaign files (directories are expanded).

    A file whose top level has an `ami:` key is taken as the daemon config, one with a
    `nodes:` key as an IVR flow (`ivr/*.yaml`), checked by `flows` when given (the IVR
    package builds on this one, not the other way round), any other as a campaign.
    Campaign names must be unique across all the files given.
    """
    files, issues = _expand(paths)
    names = _CampaignNames()
    first_found: dict[Path, Path | None] = {}
    for file, within in files:
        first_found.setdefault(file, within)
    for file, within in first_found.items():
        try:
            document = read_document(file, within=within)
            if "ami" in document.data:
                _validate(DialerConfig, document)
            elif is_flow_document(document):
                if flows is not None:
                    flows(document)
            else:
                names.claim(_validate(Campaign, document).name, document)
        except ConfigError as exc:
            issues.extend(exc.issues)
    return issues


def is_flow_document(document: YamlDocument) -> bool:
    """A YAML mapping with a top-level `nodes:` is an IVR flow (campaigns and the config have none)."""
    return "nodes" in document.data


class _CampaignNames:
    """Which file (and line) first used each campaign name."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[Path, int]] = {}

    def claim(self, name: str, document: YamlDocument) -> None:
        line = document.line_of(("name",))
        first = self._first.setdefault(name, (document.file, line))
        if first != (document.file, line):
            earlier_file, earlier_line = first
            raise DuplicateCampaignError(
                [ConfigIssue(document.file, line, "name",
                             f"campaign {name!r} is also defined in {earlier_file}:{earlier_line}")]
            )


def _validate(model: type[_Model], document: YamlDocument) -> _Model:
    data = document.data
    if model is DialerConfig and DATABASE_URL_ENV in os.environ:
        database = data.get("database", {})
        if isinstance(database, Mapping):
            data = {**data, "database": {**database, "url": os.environ[DATABASE_URL_ENV]}}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = [issue_from_error(document, error) for error in exc.errors()]
        raise ConfigValidationError(sorted(issues, key=lambda issue: issue.line or 0)) from None


def _resolve_paths(config: DialerConfig, base: Path) -> DialerConfig:
    ami = [
        server.model_copy(update={"secret_file": _under(base, server.secret_file)})
        if server.secret_file is not None
        else server
        for server in config.ami
    ]
    update: dict[str, Any] = {"ami": ami, "campaign_dir": _under(base, config.campaign_dir)}
    update["ivr"] = config.ivr.model_copy(
        update={"flow_dir": _under(base, config.ivr.flow_dir), "sounds_dir": _under(base, config.ivr.sounds_dir)}
    )
    if config.http is not None and config.http.token_file is not None:
        update["http"] = config.http.model_copy(update={"token_file": _under(base, config.http.token_file)})
    if config.http is not None and config.http.desk_users_file is not None:
        http = update.get("http", config.http)
        update["http"] = http.model_copy(update={"desk_users_file": _under(base, http.desk_users_file)})
    if DATABASE_URL_ENV not in os.environ:
        url = _resolve_sqlite_url(config.database.url, base)
        update["database"] = config.database.model_copy(update={"url": url})
    return config.model_copy(update=update)


def _resolve_sqlite_url(url: str, base: Path) -> str:
    parsed = make_url(url)  # DatabaseConfig has checked that it parses
    database = parsed.database
    if not parsed.get_backend_name() == "sqlite" or not database:
        return url
    if database == ":memory:" or database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str(_under(base, Path(database)))).render_as_string(hide_password=False)


def _under(base: Path, path: Path) -> Path:
    # normpath, not resolve(): `..` is folded but symlinks stay as the operator wrote them.
    return Path(os.path.normpath(base / path))
