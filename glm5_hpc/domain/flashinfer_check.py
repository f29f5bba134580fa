"""What GLM-5 needs from the installed flashinfer, decided by what its MLA shape check does. Pure, stdlib only.

GLM-5 has qk_nope_head_dim 192; flashinfer's trtllm-gen MLA path checked for 128 until 0.6.4. The
check lives in `flashinfer/mla.py` up to 0.6.7 and in the `flashinfer/mla/` package from 0.6.8; its
form changed (0.6.5 accepts 192, 0.6.6 dropped it). So the decision does not match one upstream
text: every `if` whose condition reads `qk_nope_head_dim` and whose body raises is evaluated for
192 (on its syntax tree, never executed):

- none rejects 192 -> *not needed* (upstream accepts it, or has no such check) or *already applied*
  (the recipe's edit is in place);
- one rejects 192 and is the recipe's known line -> *needed*: the recipe's edit applies;
- anything else that rejects 192, or a condition that cannot be evaluated -> *drift*: a person must look.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from glm5_hpc.domain.recipe_patches import FLASHINFER_MLA_CHECK

GLM5_QK_NOPE_HEAD_DIM = 192
VARIABLE = "qk_nope_head_dim"


class FlashinferState(StrEnum):
    NEEDED = "needed"
    APPLIED = "already applied"
    NOT_NEEDED = "not needed"
    DRIFT = "drift"


@dataclass(frozen=True)
class Check:
    file: str  # relative to the flashinfer package directory
    line: int
    source: str  # the condition as written
    rejects: bool | None  # would it raise for 192? None: cannot tell


@dataclass(frozen=True)
class Assessment:
    state: FlashinferState
    file: str  # the file holding the deciding check ("" when there is none)
    detail: str
    checks: tuple[Check, ...] = ()


class _UnknownError(Exception):
    pass


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip


def _value(node: ast.expr, dim: int) -> Any:
    """Evaluate a condition built from qk_nope_head_dim, constants, tuples, not/and/or and comparisons."""
    if isinstance(node, ast.Name) and node.id == VARIABLE:
        return dim
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return tuple(_value(e, dim) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _value(node.operand, dim)
    if isinstance(node, ast.BoolOp):
        values = (_value(v, dim) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _value(node.left, dim)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _value(right_node, dim)
            compare = _COMPARE.get(type(op))
            if compare is None:
                raise _UnknownError(ast.dump(op))
            if not compare(left, right):
                return False
            left = right
        return True
    raise _UnknownError(ast.dump(node))


def _raises(body: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Raise) for stmt in body for n in ast.walk(stmt))


def checks_in(file: str, text: str) -> list[Check]:
    """Every `if` reading qk_nope_head_dim whose body raises, and whether it rejects 192."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return [Check(file, 0, "(the file does not parse)", None)]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.If) or not _raises(node.body):
            continue
        if not any(isinstance(n, ast.Name) and n.id == VARIABLE for n in ast.walk(node.test)):
            continue
        try:
            rejects: bool | None = bool(_value(node.test, GLM5_QK_NOPE_HEAD_DIM))
        except _UnknownError:
            rejects = None
        found.append(Check(file, node.lineno, ast.unparse(node.test), rejects))
    return found


def assess(sources: dict[str, str]) -> Assessment:
    """Decide from the package's sources ({path relative to the package: text}) that mention qk_nope_head_dim."""
    checks = tuple(c for file, text in sorted(sources.items()) for c in checks_in(file, text))
    blocking = [c for c in checks if c.rejects is not False]
    known_old = FLASHINFER_MLA_CHECK.old
    if not blocking:
        applied = next((f for f, t in sorted(sources.items()) if FLASHINFER_MLA_CHECK.new in t), "")
        if applied:
            return Assessment(FlashinferState.APPLIED, applied, "the recipe's edit is in place", checks)
        if checks:
            first = checks[0]
            return Assessment(FlashinferState.NOT_NEEDED, first.file,
                              f"fixed upstream: `if {first.source}` accepts {GLM5_QK_NOPE_HEAD_DIM}", checks)  # fmt: skip
        return Assessment(FlashinferState.NOT_NEEDED, "", f"no check of {VARIABLE} in flashinfer", checks)
    if len(blocking) == 1 and blocking[0].rejects and sources[blocking[0].file].count(known_old) == 1:
        c = blocking[0]
        return Assessment(
            FlashinferState.NEEDED, c.file, f"`if {c.source}` (line {c.line}) rejects {GLM5_QK_NOPE_HEAD_DIM}", checks
        )
    described = "; ".join(
        f"{c.file}:{c.line} `if {c.source}` " + ("rejects 192" if c.rejects else "cannot be evaluated") for c in blocking
    )
    return Assessment(
        FlashinferState.DRIFT, blocking[0].file,
        f"a check that rejects qk_nope_head_dim {GLM5_QK_NOPE_HEAD_DIM} in a form the recipe's edit does not know: {described}; "
        "check it by hand (GLM-5 needs 192 accepted)", checks,
    )  # fmt: skip
