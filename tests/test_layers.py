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
