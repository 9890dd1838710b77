"""Whether a flow's nodes fit together: the checks pydantic cannot make field by field.

Pure. Each problem names the path of the setting at fault (`nodes.rating.when.7`) so the
loader can point at its line:
- a prompt or node that is referred to but not defined;
- a node that cannot be reached from `start`;
- a loop without exit: nodes from which no end (hangup or transfer) can be reached;
- a `when` branch for a value the question cannot give, an opt-out key that is also an answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dialer.ivr.flow import Flow, HangupNode, MessageNode, QuestionNode, TransferNode

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class FlowProblem:
    path: Path
    message: str


def successors(node: object) -> list[tuple[Path, str]]:
    """(path of the reference, target node) for every way out of `node`."""
    match node:
        case QuestionNode():
            out: list[tuple[Path, str]] = [(("when", value), target) for value, target in node.when.items()]
            if node.next is not None:
                out.append((("next",), node.next))
            if node.no_answer is not None:
                out.append((("no_answer",), node.no_answer))
            return out
        case MessageNode():
            return [(("next",), node.next)]
    return []


def _prompt_refs(flow: Flow) -> Iterator[tuple[Path, str]]:
    for key in ("invalid", "no_input"):
        if (name := getattr(flow, key)) is not None:
            yield (key,), name
    if flow.opt_out is not None and flow.opt_out.say is not None:
        yield ("opt_out", "say"), flow.opt_out.say
    for node_id, node in flow.nodes.items():
        if node.say is not None:
            yield ("nodes", node_id, "say"), node.say


def check_flow(flow: Flow) -> list[FlowProblem]:
    problems: list[FlowProblem] = []
    for path, name in _prompt_refs(flow):
        if name not in flow.prompts:
            problems.append(FlowProblem(path, f"unknown prompt {name!r}; define it under prompts"))

    if flow.start not in flow.nodes:
        problems.append(FlowProblem(("start",), f"unknown node {flow.start!r}"))
    for node_id, node in flow.nodes.items():
        for path, target in successors(node):
            if target not in flow.nodes:
                problems.append(FlowProblem(("nodes", node_id, *path), f"unknown node {target!r}"))
        if isinstance(node, QuestionNode):
            problems.extend(_check_question(flow, node_id, node))

    reachable = _reachable(flow, flow.start)
    for node_id in flow.nodes:
        if node_id not in reachable:
            problems.append(FlowProblem(("nodes", node_id), f"node {node_id!r} cannot be reached from start"))

    exits = _can_end(flow)
    for node_id in flow.nodes:
        if node_id in reachable and node_id not in exits:
            problems.append(
                FlowProblem(("nodes", node_id), f"loop without exit: no hangup or transfer can be reached from {node_id!r}")
            )
    return problems


def _check_question(flow: Flow, node_id: str, node: QuestionNode) -> Iterator[FlowProblem]:
    values = node.answer.values()
    if values:
        for value in node.when:
            if value not in values:
                yield FlowProblem(
                    ("nodes", node_id, "when", value),
                    f"{value!r} is not an answer to this question (answers: {', '.join(values)})",
                )
    if node.next is None and (not values or set(values) - set(node.when)):
        yield FlowProblem(("nodes", node_id), "give `next`: some answers have no branch in `when`")
    if node.no_answer is None and node.next is None:
        yield FlowProblem(("nodes", node_id), "give `no_answer` or `next`: where to go when nothing valid is pressed")
    key = flow.opt_out.key if flow.opt_out else None
    # The whole input equal to the key is an opt-out, so it must not also be an answer.
    if key is not None and node.answer.accepts(key) is not None:
        yield FlowProblem(("opt_out", "key"), f"opt-out key {key!r} is also an answer to question {node_id!r}")


def _reachable(flow: Flow, start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in flow.nodes:
            continue
        seen.add(node_id)
        todo.extend(target for _, target in successors(flow.nodes[node_id]))
    return seen


def _can_end(flow: Flow) -> set[str]:
    """Nodes from which some path leads to an end node (a fixed point, walked backwards)."""
    ends = {node_id for node_id, node in flow.nodes.items() if isinstance(node, (HangupNode, TransferNode))}
    changed = True
    while changed:
        changed = False
        for node_id, node in flow.nodes.items():
            if node_id not in ends and any(target in ends for _, target in successors(node)):
                ends.add(node_id)
                changed = True
    return ends
