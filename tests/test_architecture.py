"""House rules the linters do not check: states are compared as enums, never as raw strings (a
typo in a state machine would compare false and no tool would notice); files and the order
path's functions stay short. The import rules are import-linter's (`make lint`)."""

from __future__ import annotations

import ast
import re
from enum import StrEnum
from pathlib import Path

from execution_service import enums
from execution_service.exchanges.capabilities import Stream
from execution_service.market_data.sources import SourceKind

SRC = Path(__file__).resolve().parents[1] / "src" / "execution_service"

# Every closed vocabulary of the domain: a bare string equal to one of these values, compared
# with `==`, `!=`, `in` or `not in`, is a state compared as text.
VOCABULARIES: list[type[StrEnum]] = [
    *(
        value
        for value in vars(enums).values()
        if isinstance(value, type) and issubclass(value, StrEnum) and value is not StrEnum
    ),
    Stream,
    SourceKind,
]
STATE_WORDS = {member.value for vocabulary in VOCABULARIES for member in vocabulary}

# Comparisons of strings that belong to another vocabulary than ours, which happens to share a
# word: a venue's or a gateway's own field values, SQL dialect names.
ALLOWED = {
    "exchanges/ccxt",  # ccxt's unified vocabulary ("open", "closed", "canceled") is mapped there
    "exchanges/mtapi",  # the gateway's ticket types
}

# The order path: no function here is longer than this many lines.
ORDER_PATH = ("orders", "positions", "signals", "workers/monitor.py")
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400


def _strings(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for element in node.elts for s in _strings(element)]
    return []


def _sources() -> list[tuple[str, ast.Module, str]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        out.append((path.relative_to(SRC).as_posix(), ast.parse(text), text))
    return out


def raw_state_comparisons() -> list[str]:
    found = []
    for name, tree, _ in _sources():
        if any(name.startswith(prefix) for prefix in ALLOWED):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            words = [w for operand in operands for w in _strings(operand) if w in STATE_WORDS]
            if words:
                found.append(f"{name}:{node.lineno} compares {words[0]!r} as a string")
    return found


def test_states_are_compared_as_enums() -> None:
    assert raw_state_comparisons() == []


def test_the_check_finds_a_raw_state() -> None:
    tree = ast.parse('if entry.status == "filled": pass')
    compare = next(n for n in ast.walk(tree) if isinstance(n, ast.Compare))
    assert _strings(compare.comparators[0]) == ["filled"] and "filled" in STATE_WORDS


def test_files_and_order_path_functions_stay_short() -> None:
    long = []
    for name, tree, text in _sources():
        if text.count("\n") > MAX_FILE_LINES:
            long.append(f"{name}: {text.count(chr(10))} lines")
        if not name.startswith(ORDER_PATH):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert long == []


def test_venue_clients_are_built_only_by_the_registry_under_the_outbound_policy() -> None:
    """An adapter built anywhere else would skip the outbound policy (issue #15): the registry
    is the one place the service builds them, and it passes the settings' policy every time."""
    # A construction, not a class statement (`class CcxtAdapter(CcxtCalls):`).
    builders = re.compile(r"(?<!class )\b(CcxtAdapter|MtapiAdapter|Gateway)\(")
    places = {
        str(path.relative_to(SRC)): len(builders.findall(path.read_text()))
        for path in SRC.rglob("*.py")
        if builders.search(path.read_text())
    }
    assert places == {"exchanges/registry.py": 4, "exchanges/mtapi/adapter.py": 1}
    registry = (SRC / "exchanges" / "registry.py").read_text()
    assert registry.count("outbound=self._settings.outbound") == 4
