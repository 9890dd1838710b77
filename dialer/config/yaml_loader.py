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
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class YamlProblem:
    line: int | None
    """1-based; None when the problem is the file as a whole (e.g. it cannot be read)."""
    message: str


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


class LineLoader(yaml.SafeLoader):
    """A SafeLoader that builds plain containers itself so it can note every line.

    Only the standard map and seq nodes are walked here; scalars and the rarer
    collection tags (`!!set`, `!!omap`) are left to SafeLoader's own constructors.
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

    def build_document(self) -> Any:
        """The single document of the stream (None if it has none), or raise YamlError."""
        node = self.get_single_node()
        if node is None:
            return None
        data = self._build(node, ())
        if self.problems:
            raise YamlError(self.file, sorted(self.problems, key=lambda p: p.line or 0))
        return data

    def _build(self, node: Node, path: KeyPath) -> Any:
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
        return self.construct_object(node, deep=True)

    def _build_mapping(self, node: MappingNode, path: KeyPath) -> dict[Any, Any]:
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._report_duplicates(node)
        self.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
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
            key = self.construct_object(key_node, deep=True)
            line = _line(key_node)
            if key in first_seen:
                self.problems.append(
                    YamlProblem(
                        line, f"duplicate key {key!r}: already given on line {first_seen[key]}"
                    )
                )
            else:
                first_seen[key] = line


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def parse_yaml_mapping(text: str, file: str | Path) -> YamlDocument:
    """Parse `text` (the contents of `file`) whose top level must be a mapping."""
    file = Path(file)
    text = text.removeprefix("\ufeff")
    try:
        # The reader checks every character as soon as the loader is made.
        loader = LineLoader(text, file)
    except yaml.reader.ReaderError as exc:
        raise YamlError(file, [_describe_unreadable(text, exc)]) from exc
    try:
        data = loader.build_document()
    except yaml.MarkedYAMLError as exc:
        raise YamlError(file, [_describe_marked(exc)]) from exc
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


def load_yaml_mapping(path: str | Path) -> YamlDocument:
    """Read and parse a UTF-8 YAML file whose top level must be a mapping."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlError(path, [YamlProblem(None, f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlError(path, [YamlProblem(line, "not valid UTF-8 text; save the file as UTF-8")]) from exc
    return parse_yaml_mapping(text, path)


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
