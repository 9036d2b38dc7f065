"""Safe evaluation of small arithmetic expressions (rank sizes such as ``seq_kv / block_kv``).

Python's own ``ast`` parses; only numbers, names from the given environment, + - * / // % **, unary minus,
comparisons (< <= > >= == !=, chained), ``and`` / ``or`` / ``not`` and the functions ceil, floor, min, max are
allowed. Works on numpy arrays as well as scalars (comparisons and logic elementwise).

Magnitudes are capped: a value beyond 2**MAX_BITS (``10**10**10`` would take hours to compute, and ``2**2000``
does not fit a float) is an :class:`ExpressionError`, found before a power is computed, as is a float overflow
(``10.0**400``). No size or constraint a simulator takes comes near the cap.
"""
from __future__ import annotations

import ast
import math
import operator

import numpy as np

MAX_BITS = 1024


class ExpressionError(ValueError):
    pass


def _too_large(value) -> bool:
    """An int past 2**MAX_BITS (floats stop below it; inf is a value of its own, which callers judge)."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > MAX_BITS


def _power(base, exponent):
    """base ** exponent, refused before it is computed when its magnitude would pass 2**MAX_BITS."""
    scalars = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (base, exponent))
    if scalars and abs(base) > 1 and exponent > 0 and exponent * math.log2(abs(base)) > MAX_BITS:
        raise ExpressionError(f"{base!r} ** {exponent!r} is larger than 2**{MAX_BITS}")
    return operator.pow(base, exponent)


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power}
_FUNCS = {"ceil": np.ceil, "floor": np.floor, "min": np.minimum, "max": np.maximum}
_COMPARE = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
            ast.Eq: np.equal, ast.NotEq: np.not_equal}


def parse_expression(text: str) -> ast.AST:
    try:
        return ast.parse(str(text).strip(), mode="eval").body
    except SyntaxError:
        raise ExpressionError(f"cannot parse expression '{text}'") from None


def evaluate(node: ast.AST, env: dict):
    """The value of ``node`` with names from ``env``; ExpressionError for anything unsupported or too large."""
    try:
        value = _evaluate(node, env)
    except OverflowError as exc:
        raise ExpressionError(f"'{ast.unparse(node)}' overflows ({exc})") from None
    if _too_large(value):
        raise ExpressionError(f"'{ast.unparse(node)}' is larger than 2**{MAX_BITS}")
    return value


def _evaluate(node: ast.AST, env: dict):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id == "inf":
            return math.inf
        raise ExpressionError(f"unknown name '{node.id}'")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](evaluate(node.left, env), evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = evaluate(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and node.args:
        args = [evaluate(a, env) for a in node.args]
        if len(args) == 1:
            return _FUNCS[node.func.id](args[0])
        result = args[0]
        for arg in args[1:]:
            result = _FUNCS[node.func.id](result, arg)
        return result
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left, result = evaluate(node.left, env), True
        for op, comparator in zip(node.ops, node.comparators):
            right = evaluate(comparator, env)
            result = np.logical_and(result, _COMPARE[type(op)](left, right))
            left = right
        return result
    if isinstance(node, ast.BoolOp):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        values = [evaluate(v, env) for v in node.values]
        result = values[0]
        for value in values[1:]:
            result = combine(result, value)
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return np.logical_not(evaluate(node.operand, env))
    raise ExpressionError(f"unsupported expression '{ast.unparse(node)}'")


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
