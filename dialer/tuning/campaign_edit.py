"""Write `dialing` fields into a campaign file in place (`dialer tune --apply`).

Only the value of each field changes: comments, key order, quoting and layout
stay as the author left them, so the drop-directory watcher sees a small edit
and applies it live. A field the file does not set is added beside its
siblings under `dialing:` (or a `dialing:` block is added at the end). The new
text must load as a valid campaign with the new values before it replaces the
file, atomically (a temporary file in the same directory, then a rename).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from dialer.config.models import Campaign
from dialer.config.yaml_loader import YamlError, parse_yaml_mapping


class CampaignFileError(ValueError):
    """The campaign file cannot be edited; the message says why and where."""


def _scalar(value: object) -> str:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a pacing value: {value!r}")
    if isinstance(value, float):
        return repr(round(value, 6))
    text = str(value)
    if not text.replace("_", "").isalnum():
        raise TypeError(f"not a pacing value: {value!r}")
    return text


def edited_text(text: str, path: Path, changes: Mapping[str, object]) -> str:
    """`text` with `dialing.<field>` set to each value of `changes`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise CampaignFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise CampaignFileError(f"{path}: the top level is not a mapping")
    dialing = next((v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "dialing"), None)
    values = {field: _scalar(value) for field, value in changes.items()}
    if dialing is None:
        block = "dialing:\n" + "".join(f"  {field}: {value}\n" for field, value in values.items())
        return text + ("" if text.endswith("\n") or not text else "\n") + block
    if not isinstance(dialing, yaml.MappingNode):
        raise CampaignFileError(f"{path}:{dialing.start_mark.line + 1}: dialing: not a mapping; edit it by hand")
    # Edits from the end of the file backwards keep the earlier offsets valid.
    edits: list[tuple[int, int, str]] = []
    missing = []
    for field, value in values.items():
        pair = next(((k, v) for k, v in dialing.value if isinstance(k, yaml.ScalarNode) and k.value == field), None)
        if pair is None:
            missing.append((field, value))
            continue
        key, node = pair
        # The value must be written right after its key: an alias (`*x`) points
        # elsewhere in the file, an anchor or a tag would be lost with the value.
        between = text[key.end_mark.index:node.start_mark.index]
        written = text[node.start_mark.index:node.end_mark.index]
        if (
            not isinstance(node, yaml.ScalarNode)
            or between.strip() != ":"
            or node.style not in (None, "", "'", '"')
            or written[:1] in ("&", "!", "*")
            or "\n" in written
        ):
            raise CampaignFileError(
                f"{path}:{node.start_mark.line + 1}: dialing.{field}: not a plain value; edit it by hand"
            )
        edits.append((node.start_mark.index, node.end_mark.index, value))
    if missing:
        if dialing.flow_style:
            close = dialing.end_mark.index - 1
            if text[close] != "}":
                raise CampaignFileError(f"{path}:{dialing.start_mark.line + 1}: dialing: cannot add to it; edit by hand")
            sep = ", " if dialing.value else ""
            edits.append((close, close, sep + ", ".join(f"{f}: {v}" for f, v in missing)))
        elif not dialing.value:
            raise CampaignFileError(f"{path}:{dialing.start_mark.line + 1}: dialing: empty; edit it by hand")
        else:
            indent = dialing.value[0][0].start_mark.column
            last = dialing.value[-1][1].end_mark
            # After the line the mapping's last value ends on.
            at = text.find("\n", last.index if last.column else last.index - 1)
            at = len(text) if at < 0 else at + 1
            insert = "".join(f"{' ' * indent}{f}: {v}\n" for f, v in missing)
            if at == len(text) and text and not text.endswith("\n"):
                insert = "\n" + insert
            edits.append((at, at, insert))
    for start, end, value in sorted(edits, reverse=True):
        text = text[:start] + value + text[end:]
    return text


def apply_changes(path: Path, changes: Mapping[str, object]) -> str:
    """Edit the campaign file at `path`; returns the new text. Raises CampaignFileError."""
    if path.is_symlink():
        raise CampaignFileError(f"{path}: a symbolic link; edit the file it leads to")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignFileError(f"{path}: cannot read: {exc}") from None
    new = edited_text(text, path, changes)
    try:
        document = parse_yaml_mapping(new, path)
        campaign = Campaign.model_validate(document.data)
    except (YamlError, ValueError) as exc:
        raise CampaignFileError(f"{path}: the edited file would not be a valid campaign: {exc}") from None
    for field, value in changes.items():
        got = getattr(campaign.dialing, field)
        if (got.value if hasattr(got, "value") else got) != value:
            raise CampaignFileError(f"{path}: dialing.{field} would read {got!r}, not {value!r}; edit it by hand")
    if raw.startswith(b"\xef\xbb\xbf"):
        new = "\ufeff" + new
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise CampaignFileError(f"{path}: not writable by this user; run as the campaign files' owner")
    mode = path.stat().st_mode & 0o7777
    # A dot-name: the watcher reads *.yaml only, never a half-written file.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tune", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(new)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise CampaignFileError(f"{path}: cannot write: {exc}") from None
    return new
