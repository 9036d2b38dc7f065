"""Parser for Extended Einsums, the cascade notation of TeAAL and FuseMax (Nayak et al., MICRO 2024).

Forms accepted, one statement each:

* products and contractions: ``QK[m,p] = Q[e,p] * K[e,m]`` (ranks on the right that are missing on the left are
  reduced, with ``sum`` unless an operator is named);
* named reductions: ``GM[p] = max_m QK[m,p]``, ``SD[p] = sum_{m1,m0} X[m1,m0,p]`` or ``max over m of QK[m,p]``;
* elementwise maps with + - * /, ``exp``, ``max``, ``min``: ``SN[m,p] = exp(QK[m,p] - GM[p])``;
* affine index expressions: ``BK[e,m1,m0] = K[e, m1*M0+m0]``, ``RM[m1+1,p] = max(RM[m1,p], LM[m1,p])``,
  ``AV[f,p] = RNV[f,M1,p] / RD[M1,p]`` (upper-case names in an index are rank sizes);
* initialisations with constants: ``RM[0,p] = -inf``.

Index variables are the lower-case names of ranks (``m0`` iterates rank ``M0``). A tensor keeps one rank order,
declared once under ``tensors`` (``K: {ranks: [E, M]}``; read as ``K[e,m]``, never ``K[m,e]``) or, for a tensor
no declaration names that an Einsum writes, set by the reference that writes it (``T[m,p] = ...`` is read as
``T[m,p]``, never ``T[p,m]``). Every index stays inside its tensor: from 0, below the declared rank's size, and,
for a written tensor, inside what its writers write (``T[m+1]`` is refused when only ``T[m]`` is written); the
workload loader refuses the rest.

Operation counting follows Timeloop's convention: the expression is evaluated once per point of the Einsum's
iteration space (every index variable of the statement), and a reduction accumulates each point into an
identity-initialised output, one operation per point. A product of two tensors summed over at least one rank is a
contraction, counted as one ``mac`` per point (2 FLOPs), so an M×N×K GEMM is 2·M·N·K FLOPs; a sum over no rank
(``sum_{} A[m]*B[m]``) is the expression itself, one ``mul``. ``max`` and ``min`` of n arguments take n - 1
comparisons (``max(A[m])`` alone is A[m] and costs nothing).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from simlib.expressions import evaluate

REDUCE_OPS = ("sum", "max", "min")
ELEMENTWISE_FUNCS = {"exp": "exp", "max": "max", "min": "max"}
_VAR = re.compile(r"^[a-z][a-z0-9]*$")
_SIZE = re.compile(r"^[A-Z][A-Z0-9]*$")
_TENSOR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REDUCE_SUBSCRIPT = re.compile(r"^\s*(sum|max|min)_(\{[^}]*\}|[a-z][a-z0-9]*)\s+(.+)$", re.S)
_REDUCE_OVER = re.compile(r"^\s*(sum|max|min)\s+over\s+([a-z0-9,\s]+?)\s+of\s+(.+)$", re.S)


class EinsumSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class IndexExpr:
    """One affine index: a rank variable, a sum of scaled variables, or a constant (``0``, ``M1``)."""

    text: str
    node: ast.AST = field(compare=False, repr=False)
    variables: tuple[str, ...]

    def offsets(self, sizes: dict[str, int]) -> tuple[float, dict[str, float]]:
        """The constant term and the coefficient of each variable, given rank sizes (upper-case names)."""
        if isinstance(self.node, ast.Name) and self.variables:        # a bare variable: 0 + 1·v
            return 0, {self.variables[0]: 1}
        zero = {v: 0 for v in self.variables}
        constant = evaluate(self.node, {**sizes, **zero})
        coefficients = {v: evaluate(self.node, {**sizes, **zero, v: 1}) - constant for v in self.variables}
        return constant, coefficients

    def bounds(self, sizes: dict[str, int], var_sizes: dict[str, int]) -> tuple[int, int]:
        """Smallest and largest value over the box 0 <= v < var_sizes[v]: an affine form c0 + sum c_v v is
        separable, so each term is at its extreme at v = 0 or v = size - 1 (which one is the sign of c_v)."""
        constant, coefficients = self.offsets(sizes)
        spans = [c * (var_sizes[v] - 1) for v, c in coefficients.items()]
        return (int(constant + sum(min(0, s) for s in spans)), int(constant + sum(max(0, s) for s in spans)))

    def extreme_point(self, sizes: dict[str, int], var_sizes: dict[str, int], largest: bool) -> dict[str, int]:
        """Variable values at which :meth:`bounds` reaches its largest (or smallest) value."""
        _, coefficients = self.offsets(sizes)
        return {v: var_sizes[v] - 1 if (c > 0) == largest and c != 0 else 0 for v, c in coefficients.items()}

    def max_value(self, sizes: dict[str, int], var_sizes: dict[str, int]) -> int:
        return self.bounds(sizes, var_sizes)[1]


@dataclass(frozen=True)
class TensorRef:
    name: str
    indices: tuple[IndexExpr, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        seen: list[str] = []
        for index in self.indices:
            seen.extend(v for v in index.variables if v not in seen)
        return tuple(seen)

    def __str__(self) -> str:
        return f"{self.name}[{','.join(i.text for i in self.indices)}]"


@dataclass(frozen=True)
class Einsum:
    """One parsed statement. ``kind`` is contraction, reduction, map, view (a re-indexing copy) or init."""

    text: str
    output: TensorRef
    reads: tuple[TensorRef, ...]
    reduce_op: str | None
    reduced: tuple[str, ...]
    variables: tuple[str, ...]
    kind: str
    ops_per_point: dict[str, int]

    @property
    def name(self) -> str:
        return self.output.name


def _index(node: ast.AST) -> IndexExpr:
    text = ast.unparse(node)
    _check_affine(node, text)
    variables: list[str] = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and _VAR.match(n.id) and n.id not in variables:
            variables.append(n.id)
    return IndexExpr(text=text, node=node, variables=tuple(variables))


def _has_var(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and _VAR.match(n.id) for n in ast.walk(node))


def _check_affine(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Name):
        if not (_VAR.match(node.id) or _SIZE.match(node.id)):
            raise EinsumSyntaxError(f"index '{text}': '{node.id}' is neither a rank variable (lower case) "
                                    f"nor a rank size (upper case)")
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        _check_affine(node.left, text)
        _check_affine(node.right, text)
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        if _has_var(node.left) and _has_var(node.right):
            raise EinsumSyntaxError(f"index '{text}' is not affine (product of two rank variables)")
        _check_affine(node.left, text)
        _check_affine(node.right, text)
        return
    raise EinsumSyntaxError(f"index '{text}': expected an affine expression of rank variables")


def _tensor_ref(node: ast.Subscript) -> TensorRef:
    if not isinstance(node.value, ast.Name) or not _TENSOR.match(node.value.id):
        raise EinsumSyntaxError(f"'{ast.unparse(node)}': expected a tensor name before '['")
    parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    return TensorRef(node.value.id, tuple(_index(p) for p in parts))


def _count_ops(node: ast.AST, reads: list[TensorRef], ops: dict[str, int]) -> bool:
    """Walk an expression; returns True when it involves a tensor (so constants cost nothing)."""
    if isinstance(node, ast.Subscript):
        reads.append(_tensor_ref(node))
        return True
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return False
    if isinstance(node, ast.Name):
        if node.id == "inf":
            return False
        raise EinsumSyntaxError(f"'{node.id}' needs an index: write {node.id}[...]")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        tensor = _count_ops(node.operand, reads, ops)
        if tensor and isinstance(node.op, ast.USub):
            ops["mul"] += 1
        return tensor
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        left = _count_ops(node.left, reads, ops)
        right = _count_ops(node.right, reads, ops)
        if left or right:
            kind = {ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "div"}[type(node.op)]
            ops[kind] += 1
        return left or right
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ELEMENTWISE_FUNCS:
        if node.keywords or not node.args or (node.func.id == "exp" and len(node.args) != 1):
            raise EinsumSyntaxError(f"'{ast.unparse(node)}': wrong number of arguments")
        involved = [_count_ops(arg, reads, ops) for arg in node.args]
        if any(involved):       # exp(a) is one exp; max(a, b, c) two comparisons, and max(a) alone is a: none
            ops[ELEMENTWISE_FUNCS[node.func.id]] += 1 if node.func.id == "exp" else len(node.args) - 1
        return any(involved)
    raise EinsumSyntaxError(f"unsupported term '{ast.unparse(node)}' (expected tensors, numbers, + - * /, "
                            f"exp, max, min)")


def _split_reduction(rhs: str) -> tuple[str | None, tuple[str, ...] | None, str]:
    for pattern in (_REDUCE_SUBSCRIPT, _REDUCE_OVER):
        match = pattern.match(rhs)
        if match:
            op, ranks, body = match.groups()
            names = tuple(r.strip() for r in ranks.strip("{}").split(",") if r.strip())
            return op, names, body
    return None, None, rhs


def parse_einsum(text: str) -> Einsum:
    """Parse one statement; raises EinsumSyntaxError with a message naming what was expected."""
    if text.count("=") != 1:
        raise EinsumSyntaxError("expected one '=' between the output tensor and its expression")
    lhs_text, rhs_text = (part.strip() for part in text.split("="))
    try:
        lhs_node = ast.parse(lhs_text, mode="eval").body
    except SyntaxError:
        raise EinsumSyntaxError(f"cannot parse output '{lhs_text}'") from None
    if not isinstance(lhs_node, ast.Subscript):
        raise EinsumSyntaxError(f"output '{lhs_text}': expected NAME[ranks]")
    output = _tensor_ref(lhs_node)
    reduce_op, named, body = _split_reduction(rhs_text)
    try:
        rhs_node = ast.parse(body.strip(), mode="eval").body
    except SyntaxError:
        raise EinsumSyntaxError(f"cannot parse expression '{body.strip()}'") from None
    reads: list[TensorRef] = []
    ops = {k: 0 for k in ("mac", "mul", "add", "max", "exp", "div")}
    _count_ops(rhs_node, reads, ops)

    lhs_vars = output.variables
    variables = list(lhs_vars)
    for ref in reads:
        variables.extend(v for v in ref.variables if v not in variables)
    reduced = tuple(v for v in variables if v not in lhs_vars)
    if named is not None:
        if set(named) != set(reduced):
            raise EinsumSyntaxError(f"reduction names {', '.join(named) or 'nothing'} but the ranks missing "
                                    f"from the output are {', '.join(reduced) or 'none'}")
    elif reduced:
        reduce_op = "sum"
    if not reduced:     # a reduction over no rank (sum_{} A[m]*B[m]) is its expression, evaluated once per point
        reduce_op = None

    if not reads:
        kind = "init"
        if reduced or lhs_vars and any(ops.values()):
            raise EinsumSyntaxError("an initialisation assigns a constant")
    elif (reduce_op == "sum" and reduced and isinstance(rhs_node, ast.BinOp) and isinstance(rhs_node.op, ast.Mult)
          and isinstance(rhs_node.left, ast.Subscript) and isinstance(rhs_node.right, ast.Subscript)):
        kind = "contraction"
        ops["mul"] -= 1
        ops["mac"] += 1
    elif reduce_op is not None:
        kind = "reduction"
        ops["add" if reduce_op == "sum" else "max"] += 1
    elif len(reads) == 1 and isinstance(rhs_node, ast.Subscript):
        kind = "view"
    else:
        kind = "map"
    return Einsum(text=text.strip(), output=output, reads=tuple(reads), reduce_op=reduce_op, reduced=reduced,
                  variables=tuple(variables), kind=kind, ops_per_point=ops)
