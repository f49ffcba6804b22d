"""The layers, as STYLE.md draws them: services and the core speak of fields, and only the
command line knows its options' names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "itemctl"
OPTION = re.compile(r"(?<![\w-])--[a-z]")


def strings_naming_options(package: Path) -> list[str]:
    """Every string literal (docstrings aside) under ``package`` that names an option."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if OPTION.search(node.value):
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {node.value[:70]!r}")
    return found


def test_no_service_model_or_core_string_names_a_command_line_option():
    found = [line for package in ("services", "store", "models", "core") for line in strings_naming_options(ROOT / package)]
    assert found == [], "\n".join(found)


MUTABLE = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
CONSTANT = re.compile(r"^(_?[A-Z][A-Z0-9_]*|__all__)$")
MUTABLE_CALLS = {"list", "dict", "set", "defaultdict", "Counter", "deque", "OrderedDict"}


def module_state(path: Path) -> list[str]:
    """Module-level names bound to a mutable container, and ``global`` statements: what an
    invocation would leave behind for the next one in the same process."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = [f"{path.name}:{node.lineno}: global {', '.join(node.names)}" for node in ast.walk(tree) if isinstance(node, ast.Global)]
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names = [target.id for target in targets if isinstance(target, ast.Name)]
        if all(CONSTANT.match(name) for name in names):  # a table read, never written
            continue
        called = value.func.id if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) else None
        if isinstance(value, MUTABLE) or called in MUTABLE_CALLS:
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:70]}")
    return found


def test_no_module_level_mutable_state():
    """What lasts as long as a command lives on its Invocation (core/invocation.py); a
    module holds constants, and caches of pure functions."""
    found = [line for path in sorted(ROOT.rglob("*.py")) for line in module_state(path)]
    assert found == [], "\n".join(found)
