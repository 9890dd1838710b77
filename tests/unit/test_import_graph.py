"""The shape of the package, read from the source with `ast` (nothing is imported or run).

- No import cycle between the packages and top-level modules of `dialer/`, nor between two
  of its files (an import made only for type checking counts: it is a dependency all the same).
- `dialer/core` imports nothing from `dialer` outside itself.
- The decisions live in the core: pacing, routing, a lead's transitions, what a disposition
  does, the Originate's variables, the outcome sets, the dialing modes, the abandon ceiling and
  rate. The shell may call them; it may not define or re-decide them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dialer"


@dataclass(frozen=True)
class Source:
    module: str
    path: Path
    tree: ast.Module

    @property
    def rel(self) -> str:
        return self.path.relative_to(PACKAGE.parent).as_posix()

    @property
    def in_core(self) -> bool:
        return self.module == "dialer.core" or self.module.startswith("dialer.core.")


@cache
def sources() -> tuple[Source, ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(Source(".".join(parts), path, ast.parse(path.read_text(), str(path))))
    return tuple(found)


def source(module: str) -> Source:
    found = [s for s in sources() if s.module == module]
    assert found, f"{module} does not exist"
    return found[0]


def imports(src: Source) -> Iterator[tuple[str, int]]:
    """Every `dialer...` module `src` imports, with the line (relative imports resolved)."""
    package = src.module.split(".") if src.path.name == "__init__.py" else src.module.split(".")[:-1]
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # `from dialer.x import y` may name a module y: count the deeper one when it exists.
            names = [module]
            names += [f"{module}.{alias.name}" for alias in node.names if _is_module(f"{module}.{alias.name}")]
        else:
            continue
        for name in names:
            if name == "dialer" or name.startswith("dialer."):
                yield name, node.lineno


def _is_module(name: str) -> bool:
    return any(s.module == name for s in sources())


def unit(module: str) -> str:
    """The package or top-level module of `dialer/` a module belongs to."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, dict[str, list[str]]] = {}
    for src in sources():
        for name, line in imports(src):
            a, b = unit(src.module), unit(name)
            if a != b and b != "dialer":
                edges.setdefault(a, {}).setdefault(b, []).append(f"{src.rel}:{line} imports {name}")
    cycles = [c for c in strongly_connected(edges) if len(c) > 1]
    report = []
    for cycle in cycles:
        report.append("cycle: " + " <-> ".join(sorted(cycle)))
        for a in sorted(cycle):
            for b in sorted(edges.get(a, {})):
                if b in cycle:
                    report.extend(f"    {why}" for why in edges[a][b])
    assert not cycles, "\n".join(report)


def module_edges() -> dict[str, dict[str, list[str]]]:
    """Module -> the `dialer` modules it imports, with where. A module's import of a package
    that holds it is left out: Python loads a package before its modules anyway, so a package
    re-exporting its own modules is no circle."""
    edges: dict[str, dict[str, list[str]]] = {}
    for src in sources():
        for name, line in imports(src):
            if name != src.module and _is_module(name) and not src.module.startswith(name + "."):
                edges.setdefault(src.module, {}).setdefault(name, []).append(f"{src.rel}:{line} imports {name}")
    return edges


def test_no_import_cycle_between_modules() -> None:
    """Within a package too: no file imports, even only for type checking, a file that imports it
    back. A module that needs another's object takes a Protocol of what it uses (dialer.control)."""
    edges = module_edges()
    cycles = [c for c in strongly_connected(edges) if len(c) > 1]
    report = []
    for cycle in cycles:
        report.append("cycle: " + " <-> ".join(sorted(cycle)))
        for a in sorted(cycle):
            for b in sorted(edges.get(a, {})):
                if b in cycle:
                    report.extend(f"    {why}" for why in edges[a][b])
    assert not cycles, "\n".join(report)


def test_the_desk_knows_the_daemon_only_by_its_protocol() -> None:
    desk = {name for name, _ in imports(source("dialer.daemon.desk"))}
    assert "dialer.control.desk_host" in desk
    assert "dialer.daemon.server" not in desk
    host = {name for name, _ in imports(source("dialer.control.desk_host"))}
    assert not [name for name in host if unit(name) == "dialer.daemon"], host


def strongly_connected(edges: dict[str, dict[str, list[str]]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    nodes = sorted(set(edges) | {b for targets in edges.values() for b in targets})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
    return found


def test_the_core_imports_nothing_from_the_shell() -> None:
    outside = [
        f"{src.rel}:{line} imports {name}"
        for src in sources()
        if src.in_core
        for name, line in imports(src)
        if not (name == "dialer.core" or name.startswith("dialer.core."))
    ]
    assert not outside, "\n".join(outside)


# -- the decisions live in the core ------------------------------------------------------------

DECISIONS = {
    "calls_to_place": "dialer.core.pacing",  # pacing: how many calls to place
    "route": "dialer.core.routing",  # routing: queue, priority and fallback of a call
    "transition": "dialer.core.lead_lifecycle",  # a lead's life cycle
    "originate_variables": "dialer.core.originate",  # the dialplan contract
    "abandon_rate": "dialer.core.outcomes",  # the one abandon-rate computation
}
"""Each decision's function and the core module that is its one home."""

ONE_HOME_CLASSES = {
    "Outcome": "dialer.core.outcomes",
    "DialingMode": "dialer.core.outcomes",
    "DispositionAction": "dialer.core.dispositions",
    "LeadState": "dialer.core.lead_lifecycle",
}
"""Enums of the vocabulary: defined once, imported everywhere else."""


def module_level_functions(src: Source) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in src.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_each_decision_is_a_function_of_its_core_module_and_of_no_other() -> None:
    problems = []
    for name, home in DECISIONS.items():
        if name not in {f.name for f in module_level_functions(source(home))}:
            problems.append(f"{home} does not define {name}()")
        for src in sources():
            if src.module == home:
                continue
            for function in module_level_functions(src):
                if function.name == name:
                    problems.append(f"{src.rel}:{function.lineno}: a second {name}() besides {home}'s")
    assert not problems, "\n".join(problems)


def _is_enum(node: ast.ClassDef) -> bool:
    return any(isinstance(b, ast.Name | ast.Attribute) and "Enum" in ast.unparse(b) for b in node.bases)


def test_the_vocabulary_enums_are_defined_once() -> None:
    problems = []
    for name, home in ONE_HOME_CLASSES.items():
        homes = [
            (src, node)
            for src in sources()
            for node in ast.walk(src.tree)
            if isinstance(node, ast.ClassDef) and node.name == name and _is_enum(node)
        ]
        where = [f"{src.rel}:{node.lineno}" for src, node in homes]
        if [src.module for src, _ in homes] != [home]:
            problems.append(f"enum {name} should be defined in {home} alone; defined at: {where or 'nowhere'}")
    assert not problems, "\n".join(problems)


def _outcome_values() -> set[str]:
    [outcome] = [n for n in source("dialer.core.outcomes").tree.body if isinstance(n, ast.ClassDef) and n.name == "Outcome"]
    return {
        node.value.value
        for node in outcome.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def _names_an_outcome(element: ast.expr, values: set[str]) -> bool:
    if isinstance(element, ast.Constant):
        return element.value in values
    return isinstance(element, ast.Attribute) and ast.unparse(element.value).endswith("Outcome")


def _collection(node: ast.expr) -> list[ast.expr] | None:
    if isinstance(node, ast.Set | ast.Tuple | ast.List):
        return list(node.elts)
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("frozenset", "set", "tuple") and node.args:
        return _collection(node.args[0])
    return None


def test_no_outcome_set_is_defined_outside_the_outcomes_module() -> None:
    values = _outcome_values()
    problems = []
    for src in sources():
        if src.module == "dialer.core.outcomes":
            continue
        for node in ast.walk(src.tree):
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not any(isinstance(t, ast.Name) and t.id.isupper() for t in targets):
                continue  # a named constant is a definition; a local collection is a use
            elements = _collection(node.value)
            if elements and len(elements) >= 2 and all(_names_an_outcome(e, values) for e in elements):
                problems.append(f"{src.rel}:{node.lineno}: {ast.unparse(targets[0])} is a set of outcomes")
    assert not problems, "\n".join(problems)


def test_one_abandon_ceiling() -> None:
    found = [
        f"{src.rel}:{node.lineno}"
        for src in sources()
        for node in ast.walk(src.tree)
        if isinstance(node, ast.Constant) and type(node.value) is float and node.value == 0.03
    ]
    assert found == ["dialer/core/outcomes.py:" + str(_ceiling_line())], found


def _ceiling_line() -> int:
    for node in source("dialer.core.outcomes").tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ABANDON_CEILING" for t in node.targets):
            return node.lineno
    raise AssertionError("dialer/core/outcomes.py has no ABANDON_CEILING")


# -- a lead's state is written by one store function ---------------------------------------------

LEAD_STATE_WRITERS = {"dialer.store.lead_transitions"}
"""The one store module that applies the core's lead transitions."""

_SQL_LEAD_STATE = re.compile(r"\bupdate\s+leads\b[^;]*\bset\b[^;]*\bstate\b", re.IGNORECASE | re.DOTALL)


def _updates_leads(call: ast.expr) -> bool:
    """Whether a chain like `update(leads).where(...)` starts with an update of the leads table."""
    node = call
    while True:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name | ast.Attribute) and ast.unparse(func).split(".")[-1] == "update":
                if node.args and ast.unparse(node.args[0]).split(".")[-1] == "leads":
                    return True
            node = func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return False


def _sets_state(call: ast.Call) -> bool:
    if any(k.arg == "state" for k in call.keywords):
        return True
    for arg in call.args:
        if isinstance(arg, ast.Dict):
            for key in arg.keys:
                if key is not None and (
                    (isinstance(key, ast.Constant) and key.value == "state")
                    or ast.unparse(key).endswith("leads.c.state")
                ):
                    return True
    return False


def test_only_the_lead_transition_store_function_writes_a_lead_state() -> None:
    problems = []
    for src in sources():
        if src.in_core or src.module in LEAD_STATE_WRITERS:
            continue
        for node in ast.walk(src.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "values"
                and _sets_state(node)
                and _updates_leads(node.func.value)
            ):
                problems.append(f"{src.rel}:{node.lineno}: updates leads.state")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_LEAD_STATE.search(node.value):
                problems.append(f"{src.rel}:{node.lineno}: SQL that updates leads.state")
    assert not problems, "\n".join(problems)


# -- the Originate's variables come from one pure function -------------------------------------

ORIGINATE_HOME = "dialer.core.originate"
AMI_VALUE_CHECKS = "dialer.ami.values"
INBOUND_CONTRACT = {"dialer.inbound.service"}
"""FastAGI answers for a customer calling in ([dialer-inbound]): variables set on the caller's
own channel, no Originate; several share a name with the Originate's (DIALER_QUEUE ...)."""
DIALPLAN_SIDE = {"dialer.pbx.simulated"}
"""The simulated Asterisk plays `[dialer-outbound]`, which itself moves a call's variables to
their fallback values on a queue timeout: the other side of the contract, not a second author."""
_VARIABLE = re.compile(r"^DIALER_[A-Z0-9_]+$")


def _originate_variables() -> set[str]:
    return {
        node.value
        for node in ast.walk(source(ORIGINATE_HOME).tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _VARIABLE.match(node.value)
    }


def _written_names(node: ast.AST) -> Iterator[tuple[str, int]]:
    """Channel-variable names `node` writes: dict keys, `x["NAME"] = ...`, `NAME=...` keywords."""
    if isinstance(node, ast.Dict):
        for key in node.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value, key.lineno
    elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            yield node.slice.value, node.lineno
    elif isinstance(node, ast.Call):
        for keyword in node.keywords:
            if keyword.arg is not None:
                yield keyword.arg, keyword.value.lineno


def test_no_module_but_the_originate_function_sets_an_originate_variable() -> None:
    names = _originate_variables()
    assert {"DIALER_ATTEMPT", "DIALER_CAMPAIGN", "DIALER_QUEUE"} <= names  # the check reads the real list
    problems = [
        f"{src.rel}:{line}: sets {name}"
        for src in sources()
        if src.module not in {ORIGINATE_HOME, AMI_VALUE_CHECKS} | INBOUND_CONTRACT | DIALPLAN_SIDE
        for node in ast.walk(src.tree)
        for name, line in _written_names(node)
        if name in names
    ]
    assert not problems, "\n".join(problems)
