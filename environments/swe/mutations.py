"""Bug injection by AST mutation, in the spirit of SWE-smith.

Each operator finds the places in a module where it applies and rewrites one of them in the
source text (only that expression or statement changes, so the gold patch is one small
hunk). Operators: flip a comparison, off-by-one on an integer, drop a statement, swap a
call's first two arguments, a wrong constant, and a swapped arithmetic operator.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_FLIPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
          ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In}
_ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult}
OPERATORS = ("flip_comparison", "off_by_one", "drop_statement", "swap_arguments",
             "wrong_constant", "swap_arithmetic")


@dataclass(frozen=True)
class Mutation:
    """One rewrite: which operator, where (1-based lines), and the new source of the module."""

    operator: str
    line: int
    end_line: int
    source: str

    @property
    def name(self) -> str:
        """``operator@line`` (stable for a given module)."""
        return f"{self.operator}@{self.line}"


def mutations(source: str) -> Iterator[Mutation]:
    """Every single-site mutation of ``source`` that still parses, in source order."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    for node in ast.walk(tree):
        for operator, replacement in _rewrites(node):
            if replacement is None:
                text = _drop(lines, node)
            else:
                text = _splice(lines, node, ast.unparse(replacement))
            if text is not None and text != source and _parses(text):
                line = getattr(node, "lineno", 0)  # every rewritten node is an expr or stmt
                yield Mutation(operator, line, getattr(node, "end_lineno", None) or line, text)


def _rewrites(node: ast.AST) -> Iterator[tuple[str, ast.AST | None]]:
    if isinstance(node, ast.Compare) and type(node.ops[0]) in _FLIPS:
        flipped = copy.deepcopy(node)
        flipped.ops[0] = _FLIPS[type(node.ops[0])]()
        yield "flip_comparison", flipped
    if isinstance(node, ast.Constant) and type(node.value) is int:
        yield "off_by_one", ast.Constant(node.value + 1)
    if isinstance(node, ast.Constant) and type(node.value) is bool:
        yield "wrong_constant", ast.Constant(not node.value)
    if isinstance(node, ast.Constant) and type(node.value) is float:
        yield "wrong_constant", ast.Constant(node.value * 2 or 1.0)
    if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
            isinstance(a, ast.Starred) for a in node.args[:2]):
        swapped = copy.deepcopy(node)
        swapped.args[0], swapped.args[1] = swapped.args[1], swapped.args[0]
        yield "swap_arguments", swapped
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        changed = copy.deepcopy(node)
        changed.op = _ARITH[type(node.op)]()
        yield "swap_arithmetic", changed
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr)) and not _is_docstring(node):
        yield "drop_statement", None


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
        node.value.value, str)


def _splice(lines: list[str], node: Any, text: str) -> str | None:
    """Replace ``node``'s source span with ``text`` (single-line spans only)."""
    if node.lineno != node.end_lineno or "\n" in text:
        return None
    index = node.lineno - 1
    line = lines[index].encode()  # AST offsets count UTF-8 bytes
    new = line[:node.col_offset] + text.encode() + line[node.end_col_offset:]
    return "".join(lines[:index] + [new.decode()] + lines[index + 1:])


def _drop(lines: list[str], node: Any) -> str | None:
    """Remove a simple statement that has whole lines to itself, keeping the block valid."""
    start, end = node.lineno - 1, (node.end_lineno or node.lineno)
    first = lines[start]
    if first[:node.col_offset].strip() or lines[end - 1][node.end_col_offset:].strip():
        return None  # shares a line with other code
    indent = first[:node.col_offset]
    return "".join(lines[:start] + [f"{indent}pass\n"] + lines[end:])


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True
