"""Read a YAML file into plain dicts and lists, remembering the line of every key and item.

Validation errors name a field by its path (`dialing.max_lines`, `ami.0.port`); to tell an
operator *where* that field is, the loader keeps a side table from each path to the
1-based line it was written on. Keys of mappings are recorded with the line of the key
itself; items of sequences with the line where the item starts.

Stricter than `yaml.safe_load` on purpose:
- a key given twice in one mapping is an error naming both lines (PyYAML would keep the
  last one silently, hiding a typo);
- an empty file, or one whose top level is not a mapping, is an error.

Merge keys (`<<: *defaults`) work as in YAML 1.1: explicit keys win over merged ones and
are not duplicates of them; a merged key is recorded with the line of its anchor.

Hostile files (issue 11) end in a `YamlError`, never a crash, a hang or a huge allocation:
- a file larger than `MAX_FILE_BYTES` is not read (its size is checked before reading, and
  the read itself stops one byte past the limit);
- every value built counts against `MAX_VALUES`, an alias each time it is used, so a few
  hundred bytes of nested aliases (a "billion laughs") stop at the budget, which bounds both
  the time and the memory a file can take;
- nesting deeper than `MAX_DEPTH` (written, or made by aliases) is refused before Python's
  recursion limit is near;
- a value its tag cannot read (`2020-02-30`, `!!int x`) is a problem on its line;
- only regular files are opened, without blocking (a FIFO would block a read forever), and
  with `within` a symbolic link that leads out of that directory is not followed.

Messages that quote the file are short: a key is named only when it looks like one.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[Any, ...]
"""Keys and list indexes from the document's root, e.g. `("ami", 0, "port")`."""

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

MAX_FILE_BYTES = 512 * 1024
"""Config, campaign and flow files are a few KiB; one this big is a mistake or an attack."""
MAX_VALUES = 100_000
"""Values built from one file, an alias counted each time it is used (and merged keys too)."""
MAX_DEPTH = 64
"""Levels of nesting; real files use fewer than ten."""
MAX_MESSAGE = 300
"""Characters of one problem message: some quote the file."""

_KEY_LIKE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,39}")


def looks_like_key(value: object) -> bool:
    """Whether `value` may be quoted in a message: a short name, not a line of some other file."""
    return isinstance(value, str) and _KEY_LIKE.fullmatch(value) is not None


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class YamlProblem:
    line: int | None
    """1-based; None when the problem is the file as a whole (e.g. it cannot be read)."""
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", shorten(self.message))


class YamlError(ValueError):
    """A YAML file that cannot be used: unreadable, malformed, duplicate keys, not a mapping.

    `dialer.config.loader` turns it into a `ConfigFileError`; code that reads YAML through
    this module directly sees this type only.
    """

    def __init__(self, file: Path, problems: list[YamlProblem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(self._render(p) for p in problems))

    def _render(self, problem: YamlProblem) -> str:
        where = f"{self.file}:{problem.line}" if problem.line is not None else f"{self.file}"
        return f"{where}: {problem.message}"


@dataclass(frozen=True)
class YamlDocument:
    file: Path
    data: dict[Any, Any]
    key_lines: dict[KeyPath, int] = field(repr=False)
    """Line of each mapping key and each sequence item, by its path."""
    value_lines: dict[KeyPath, int] = field(repr=False)
    """Line where each value starts; `()` is the top-level mapping."""

    def line_of(self, path: Sequence[Any]) -> int:
        """The line of `path`, or of its nearest ancestor that is in the file.

        A missing key therefore points at the mapping that should hold it, and a path
        with trailing parts that are not keys (a validator's tag) at the last real key.
        """
        for end in range(len(path), 0, -1):
            line = self.key_lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return self.value_lines[()]

    def has(self, path: Sequence[Any]) -> bool:
        return tuple(path) in self.key_lines


class _Refused(Exception):
    """A limit or an unreadable value: ends the document with one problem on `line`."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.problem = YamlProblem(line, message)


# What an implicit or explicit scalar tag means, for "cannot be read as ..." messages.
_KINDS = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date or time",
    "tag:yaml.org,2002:bool": "a yes/no value",
    "tag:yaml.org,2002:binary": "base64 binary data",
}


class LineLoader(yaml.SafeLoader):
    """A SafeLoader that builds plain containers itself so it can note every line.

    Only the standard map and seq nodes are walked here; scalars and the rarer
    collection tags (`!!set`, `!!omap`) are left to SafeLoader's own constructors,
    which build each node once (an alias there shares the object, it does not copy it).
    """

    def __init__(self, stream: str, file: Path) -> None:
        super().__init__(stream)
        self.file = file
        self.key_lines: dict[KeyPath, int] = {}
        self.value_lines: dict[KeyPath, int] = {}
        self.problems: list[YamlProblem] = []
        self._building: set[int] = set()
        # An aliased mapping is built once per alias, but checked only the first time:
        # flatten_mapping has by then merged `<<` keys into it, which are no duplicates.
        self._checked: set[int] = set()
        self._composed = 0
        self._spent = 0
        self._depth = 0

    def build_document(self) -> Any:
        """The single document of the stream (None if it has none), or raise YamlError."""
        node = self.get_single_node()
        if node is None:
            return None
        data = self._build(node, ())
        if self.problems:
            raise YamlError(self.file, sorted(self.problems, key=lambda p: p.line or 0))
        return data

    # -- limits ------------------------------------------------------------------------

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # PyYAML composes recursively: refuse deep nesting here, long before Python's
        # recursion limit, and bound the nodes kept in memory while composing.
        self._composed += 1
        if self._composed > MAX_VALUES:
            raise _Refused(self._event_line(), f"more than {MAX_VALUES} values in the file")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(self._event_line(), f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def _event_line(self) -> int | None:
        event = self.peek_event()
        return int(event.start_mark.line) + 1 if event is not None and event.start_mark else None

    def _spend(self, amount: int, node: Node) -> None:
        self._spent += amount
        if self._spent > MAX_VALUES:
            raise _Refused(
                _line(node),
                f"the file expands to more than {MAX_VALUES} values (an alias counts each time "
                "it is used); write the values out or use fewer aliases",
            )

    def flatten_mapping(self, node: MappingNode) -> None:
        # Merging copies the merged pairs into this mapping, and SafeLoader's own
        # constructors flatten too: charge the pairs walked and the pairs added.
        before = len(node.value)
        self._spend(before, node)
        super().flatten_mapping(node)
        self._spend(max(0, len(node.value) - before), node)

    def _construct(self, node: Node) -> Any:
        try:
            return self.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except RecursionError:
            raise _Refused(_line(node), f"nested more than {MAX_DEPTH} levels deep") from None
        except (ValueError, TypeError, ArithmeticError, AttributeError, LookupError):
            # SafeConstructor turns `2020-02-30` or `!!int x` into a bare Python error.
            kind = _KINDS.get(node.tag)
            if kind is None:
                tag = node.tag.rsplit(":", 1)[-1]
                kind = f"!!{tag}" if looks_like_key(tag) else "its tag"
            raise _Refused(_line(node), f"this value cannot be read as {kind}") from None

    # -- building ----------------------------------------------------------------------

    def _build(self, node: Node, path: KeyPath) -> Any:
        self._spend(1, node)
        if len(path) > MAX_DEPTH:
            raise _Refused(_line(node), f"nested more than {MAX_DEPTH} levels deep (aliases included)")
        self.value_lines[path] = _line(node)
        if id(node) in self._building:
            # An alias to one of its own ancestors: plain containers cannot hold that.
            self.problems.append(YamlProblem(_line(node), "an alias refers to its own parent"))
            return None
        if isinstance(node, MappingNode) and node.tag == _MAP_TAG:
            self._building.add(id(node))
            try:
                return self._build_mapping(node, path)
            finally:
                self._building.discard(id(node))
        if isinstance(node, SequenceNode) and node.tag == _SEQ_TAG:
            self._building.add(id(node))
            try:
                items = []
                for index, item in enumerate(node.value):
                    self.key_lines[path + (index,)] = _line(item)
                    items.append(self._build(item, path + (index,)))
                return items
            finally:
                self._building.discard(id(node))
        return self._construct(node)

    def _build_mapping(self, node: MappingNode, path: KeyPath) -> dict[Any, Any]:
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._report_duplicates(node)
        self.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._construct(key_node)
            if not isinstance(key, Hashable):
                self.problems.append(
                    YamlProblem(_line(key_node), "a key must be a plain value, not a list or mapping")
                )
                continue
            self.key_lines[path + (key,)] = _line(key_node)
            result[key] = self._build(value_node, path + (key,))
        return result

    def _report_duplicates(self, node: MappingNode) -> None:
        first_seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self._construct(key_node)
            line = _line(key_node)
            if not isinstance(key, Hashable):
                continue  # reported when the mapping is built
            if key in first_seen:
                named = f"duplicate key {key!r}" if looks_like_key(key) else "duplicate key"
                self.problems.append(YamlProblem(line, f"{named}: already given on line {first_seen[key]}"))
            else:
                first_seen[key] = line


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def parse_yaml_mapping(text: str, file: str | Path) -> YamlDocument:
    """Parse `text` (the contents of `file`) whose top level must be a mapping."""
    file = Path(file)
    text = text.removeprefix("\ufeff")
    if len(text) > MAX_FILE_BYTES:
        raise YamlError(file, [_too_big()])
    try:
        # The reader checks every character as soon as the loader is made.
        loader = LineLoader(text, file)
    except yaml.reader.ReaderError as exc:
        raise YamlError(file, [_describe_unreadable(text, exc)]) from exc
    try:
        data = loader.build_document()
    except _Refused as exc:
        raise YamlError(file, [exc.problem]) from None
    except yaml.MarkedYAMLError as exc:
        raise YamlError(file, [_describe_marked(exc)]) from exc
    except RecursionError:
        # The limits above stop nesting first; this is the last guard, not the plan.
        raise YamlError(file, [YamlProblem(None, f"nested more than {MAX_DEPTH} levels deep")]) from None
    finally:
        loader.dispose()
    if data is None:
        # A top-level `null` (or `~`) is as empty as a file of comments.
        line = loader.value_lines.get((), 1)
        raise YamlError(file, [YamlProblem(line, "the file is empty; expected a mapping of settings (key: value)")])
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single {type(data).__name__} value"
        raise YamlError(
            file, [YamlProblem(loader.value_lines[()], f"the file holds {kind}; expected a mapping of settings (key: value)")]
        )
    return YamlDocument(file, data, loader.key_lines, loader.value_lines)


def load_yaml_mapping(path: str | Path, *, within: Path | None = None) -> YamlDocument:
    """Read and parse a UTF-8 YAML file whose top level must be a mapping.

    With `within` (a directory the file was found in), a symbolic link is followed only
    to a file inside that directory.
    """
    path = Path(path)
    raw = read_config_bytes(path, within=within)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlError(path, [YamlProblem(line, "not valid UTF-8 text; save the file as UTF-8")]) from exc
    return parse_yaml_mapping(text, path)


FileStamp = tuple[int, int, int, int, int]
"""(device, inode, size, mtime, ctime in ns): changes whenever the file read would change.

The ctime too, as a write that keeps the size and has its mtime set back (`cp -p`,
`touch -d`) still moves the ctime, which no one can set.
"""


def file_stamp(path: Path) -> FileStamp | None:
    """The stamp of the file `path` leads to, or None if it cannot be looked at."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_config_bytes(path: Path, *, within: Path | None = None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them, or raise YamlError."""
    try:
        target = path
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        if within is not None:
            target = path.resolve(strict=True)
            if not target.is_relative_to(within.resolve()):
                raise YamlError(path, [YamlProblem(None, "a symbolic link leading out of the directory; not read")])
            # Resolved, so its last part is no link; were it swapped for one, the open fails.
            flags |= os.O_NOFOLLOW
        checked = os.stat(target)
        if not stat.S_ISREG(checked.st_mode):
            raise YamlError(path, [_not_regular()])
        if checked.st_size > limit:
            raise YamlError(path, [_too_big(limit)])
        # Non-blocking: were a FIFO put here after the check, the open would wait for a writer.
        fd = os.open(target, flags)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before Python 3.13
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symbolic link loop"
        raise YamlError(path, [YamlProblem(None, f"cannot read: {reason}")]) from exc
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise YamlError(path, [_not_regular()])
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
            raise YamlError(path, [YamlProblem(None, "replaced while being read; it is read again when it changes")])
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise YamlError(path, [YamlProblem(None, f"cannot read: {exc.strerror or exc}")]) from exc
    finally:
        os.close(fd)
    if size > limit:
        raise YamlError(path, [_too_big(limit)])  # it grew after the size was checked
    return b"".join(chunks)


def _too_big(limit: int = MAX_FILE_BYTES) -> YamlProblem:
    return YamlProblem(None, f"larger than {limit // 1024} KiB, the limit for a config file; not read")


def _not_regular() -> YamlProblem:
    return YamlProblem(None, "not a regular file (a directory, FIFO, socket or device); not read")


def _describe_unreadable(text: str, exc: yaml.reader.ReaderError) -> YamlProblem:
    line = text[: exc.position].count("\n") + 1
    return YamlProblem(line, f"character U+{exc.character:04X} is not allowed in YAML")


def _describe_marked(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    line = int(mark.line) + 1 if mark is not None else None
    problem = exc.problem or exc.context or "invalid YAML"
    if "'\\t'" in problem:
        return YamlProblem(line, "a tab character is used for indentation; YAML allows only spaces")
    if "another document" in problem:
        return YamlProblem(line, "a second YAML document ('---'); put one document in each file")
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.problem:
        context = exc.context
        if exc.context_mark is not None and exc.context_mark.line != (mark.line if mark else None):
            context += f" started on line {exc.context_mark.line + 1}"
        message += f" ({context})"
    return YamlProblem(line, message)
