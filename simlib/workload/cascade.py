"""A cascade of Einsums as a networkx DAG, with structural analyses that need no rank sizes.

Nodes are Einsums (``("einsum", i)``) and tensors (``("tensor", name)``); edges run tensor → Einsum for reads and
Einsum → tensor for writes. A read that only sees values written in an *earlier* iteration of a recurrence
(``RM[m1,p]`` read where ``RM[m1+1,p]`` is written) is loop-carried: it is kept with ``carried=True`` and left out
of :meth:`Cascade.dag`, which must be acyclic.

Pass analysis (FuseMax, Nayak et al. MICRO 2024, §III): a pass over rank R is one traversal of all elements of
R's fibers. An Einsum that iterates R (or any rank R was split into, e.g. M1 and M0 of M = M1×M0) and reads a
value that exists only after a *complete* traversal of R (a full reduction over R, or anything computed from
one) must run in the next pass. Streamed values (still indexed by R) are consumed in the pass that makes them.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from simlib.workload.einsum import Einsum, TensorRef


class CascadeError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def rank_of(variable: str) -> str:
    return variable.upper()


@dataclass(frozen=True)
class PassAnalysis:
    rank: str
    family: frozenset[str]
    passes: int
    einsum_pass: dict[int, int]      # Einsum index -> pass number (0: before any pass / outside the traversal)


class Cascade:
    def __init__(self, einsums: list[Einsum], declared_ranks: dict[str, list[str]]):
        self.einsums = einsums
        self.declared_ranks = declared_ranks
        self._pass_cache: dict[str, PassAnalysis] = {}
        self._check_writers()
        self.graph = self._build_graph()
        if not nx.is_directed_acyclic_graph(self.dag):
            cycle = nx.find_cycle(self.dag)
            names = " -> ".join(str(n[1]) for n, _ in cycle)
            raise CascadeError("einsums", f"the cascade has a dependency cycle ({names}); a recurrence must "
                                          f"read its previous iteration, e.g. X[m1+1] = f(X[m1])")

    # --- structure ----------------------------------------------------------------------------------------
    @cached_property
    def _writers_by_tensor(self) -> dict[str, tuple[int, ...]]:
        """Einsum positions writing each tensor, built once (the cascade's Einsums do not change)."""
        found: dict[str, list[int]] = {}
        for i, e in enumerate(self.einsums):
            found.setdefault(e.output.name, []).append(i)
        return {name: tuple(positions) for name, positions in found.items()}

    def writers(self, tensor: str) -> list[int]:
        return list(self._writers_by_tensor.get(tensor, ()))

    def _check_writers(self) -> None:
        for name in {e.output.name for e in self.einsums}:
            computing = [i for i in self.writers(name) if self.einsums[i].kind != "init"]
            if len(computing) > 1:
                texts = "; ".join(self.einsums[i].text for i in computing)
                raise CascadeError("einsums", f"tensor {name} is computed by more than one Einsum ({texts}); "
                                               f"expected one (plus constant initialisations)")

    def computing_writer(self, tensor: str) -> int | None:
        found = [i for i in self.writers(tensor) if self.einsums[i].kind != "init"]
        return found[0] if found else None

    def _is_carried(self, ref: TensorRef, reader: int) -> bool:
        """True when this read only sees the writer's value from an earlier iteration (distance > 0)."""
        writer = self.computing_writer(ref.name)
        if writer is None:
            return False
        written = self.einsums[writer].output
        reader_vars = set(self.einsums[reader].variables)
        for w_index, r_index in zip(written.indices, ref.indices):
            if w_index.variables and w_index.variables == r_index.variables and set(w_index.variables) <= reader_vars:
                probe = {name: 2 for name in _upper_names(w_index) | _upper_names(r_index)}
                w_const, _ = w_index.offsets(probe)
                r_const, _ = r_index.offsets(probe)
                if w_const > r_const:
                    return True
        return False

    def _build_graph(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        for i, einsum in enumerate(self.einsums):
            graph.add_node(("einsum", i), kind="einsum", text=einsum.text, einsum_kind=einsum.kind)
            graph.add_node(("tensor", einsum.output.name), kind="tensor")
            graph.add_edge(("einsum", i), ("tensor", einsum.output.name), carried=False)
        for i, einsum in enumerate(self.einsums):
            for ref in einsum.reads:
                node = ("tensor", ref.name)
                graph.add_node(node, kind="tensor")
                carried = self._is_carried(ref, i)
                if graph.has_edge(node, ("einsum", i)):
                    carried = carried and graph.edges[node, ("einsum", i)]["carried"]
                graph.add_edge(node, ("einsum", i), carried=carried)
        return graph

    @cached_property
    def dag(self) -> nx.DiGraph:
        keep = [(u, v) for u, v, d in self.graph.edges(data=True) if not d["carried"]]
        return self.graph.edge_subgraph(keep).copy() if keep else nx.DiGraph()

    @cached_property
    def order(self) -> list[int]:
        """Einsum indices in a topological order of the DAG (ties keep the written order)."""
        dag = self.dag.copy()
        dag.add_nodes_from(("einsum", i) for i in range(len(self.einsums)))
        key = {n: (n[1] if n[0] == "einsum" else -1) for n in dag}
        return [n[1] for n in nx.lexicographical_topological_sort(dag, key=lambda n: (key[n], str(n)))
                if n[0] == "einsum"]

    @cached_property
    def inputs(self) -> list[str]:
        written = {e.output.name for e in self.einsums}
        seen: list[str] = []
        for einsum in self.einsums:
            seen.extend(r.name for r in einsum.reads if r.name not in written and r.name not in seen)
        return seen

    @cached_property
    def outputs(self) -> list[str]:
        """Written tensors no other Einsum reads. A recurrence's read of its own earlier values (``S[m,p]`` in
        ``S[m+1,p] = S[m,p] + X[m,p]``) is carried inside the Einsum that writes it and does not consume the
        tensor: a scan read by nothing else is an output."""
        read = {r.name for e in self.einsums for r in e.reads if r.name != e.output.name}
        found: list[str] = []
        for e in self.einsums:
            if e.output.name not in read and e.kind != "init" and e.output.name not in found:
                found.append(e.output.name)
        return found

    @cached_property
    def intermediates(self) -> list[str]:
        names: list[str] = []
        for einsum in self.einsums:
            name = einsum.output.name
            if name not in self.outputs and name not in names:
                names.append(name)
        return names

    @cached_property
    def _view_sources(self) -> dict[str, str]:
        """Every tensor the cascade names, mapped to the storage it aliases (itself unless a view)."""
        names = {r.name for e in self.einsums for r in e.reads} | {e.output.name for e in self.einsums}
        sources = {}
        for tensor in names:
            source, writer = tensor, self.computing_writer(tensor)
            while writer is not None and self.einsums[writer].kind == "view":
                source = self.einsums[writer].reads[0].name
                writer = self.computing_writer(source)
            sources[tensor] = source
        return sources

    def view_source(self, tensor: str) -> str:
        """The tensor whose storage a view aliases (a view of an input is that input)."""
        return self._view_sources.get(tensor, tensor)

    def consumers(self, tensor: str) -> list[int]:
        return sorted({i for i, e in enumerate(self.einsums) for r in e.reads if r.name == tensor})

    def readers(self, tensor: str) -> list[int]:
        """Einsums that read ``tensor``'s storage: directly or through views of it (``U[m,p] = T[m,p]`` then
        ``Y = U - G`` reads T). The views themselves are included; they move nothing of their own."""
        return list(self._readers_by_source.get(tensor, ()))

    @cached_property
    def _readers_by_source(self) -> dict[str, tuple[int, ...]]:
        found: dict[str, set[int]] = {}
        for i, e in enumerate(self.einsums):
            for r in e.reads:
                found.setdefault(self.view_source(r.name), set()).add(i)
        return {name: tuple(sorted(positions)) for name, positions in found.items()}

    # --- ranks --------------------------------------------------------------------------------------------
    @cached_property
    def _rank_relations(self) -> tuple[dict[str, frozenset[str]], list[str]]:
        """Rank families (see :attr:`rank_families`) and the ranks that were split (the whole side of a split
        index, M of ``m1*M0+m0``), in order of first use."""
        parent: dict[str, str] = {}
        split: list[str] = []

        def find(r: str) -> str:
            parent.setdefault(r, r)
            while parent[r] != r:
                r = parent[r]
            return r

        def join(ranks) -> None:
            ranks = list(ranks)
            for rank in ranks[1:]:
                parent[find(rank)] = find(ranks[0])

        for einsum in self.einsums:
            for ref in (einsum.output, *einsum.reads):
                for v in ref.variables:
                    find(rank_of(v))
                declared = self.declared_ranks.get(ref.name)
                if declared:
                    for rank, index in zip(declared, ref.indices):
                        for v in index.variables:
                            parent[find(rank_of(v))] = find(rank)
                    continue
                layout = self._layout(ref.name)
                if layout is None or layout is ref:
                    continue
                for written, used in zip(layout.indices, ref.indices):
                    pair = (written, used)
                    if any(_is_split(i) for i in pair) and all(_is_split(i) or len(i.variables) == 1 for i in pair):
                        join(rank_of(v) for i in pair for v in i.variables)
                        for i in pair:
                            if len(i.variables) == 1 and rank_of(i.variables[0]) not in split:
                                split.append(rank_of(i.variables[0]))
        groups: dict[str, set[str]] = {}
        for rank in list(parent):
            groups.setdefault(find(rank), set()).add(rank)
        return {rank: frozenset(groups[find(rank)]) for rank in parent}, split

    def _layout(self, tensor: str) -> TensorRef | None:
        """The reference that sets the rank order of a tensor no declaration names: its computing writer's output,
        else (a tensor only constants initialise) the first initialisation; None for an input."""
        writer = self.computing_writer(tensor)
        if writer is None:
            writers = self.writers(tensor)
            writer = writers[0] if writers else None
        return self.einsums[writer].output if writer is not None else None

    @property
    def rank_families(self) -> dict[str, frozenset[str]]:
        """Rank → every rank it was split into or derived from. Ranks are related position by position: every
        variable of a reference's index to the rank a tensor declaration puts there; and, for a written tensor no
        declaration names, through a split index (``m1*M0+m0``, see :func:`_is_split`) read or written where its
        writer's output (the tensor's layout) has a single rank variable, so ``TB[m1,m0,p] = T[m1*M0+m0,p]``
        after ``T[m,p] = exp(X[m,p])`` makes M1 and M0 parts of M whether T is declared or not. A single variable
        of another rank at such a position (the Gram matrix ``XN[e,n]`` of an ``XN[e,m]``, the difference
        ``T[n+1]``) is another rank, not a part of this one, and neither is a sum such as ``m+p``."""
        return self._rank_relations[0]

    def canonical_rank(self, rank: str) -> str:
        """The name a rank family goes by: the member named in a tensor declaration (M for M1 and M0), else the
        rank that was split (M of an undeclared ``T[m,p]`` read as ``T[m1*M0+m0,p]``)."""
        family = self.rank_families.get(rank, frozenset({rank}))
        declared = [r for ranks in self.declared_ranks.values() for r in ranks if r in family]
        if declared:
            return declared[0]
        split = [r for r in self._rank_relations[1] if r in family]
        return split[0] if split else rank

    def _canonical_ranks(self, variables_of) -> list[str]:
        ranks: list[str] = []
        for einsum in self.einsums:
            for v in variables_of(einsum):
                canonical = self.canonical_rank(rank_of(v))
                if canonical not in ranks:
                    ranks.append(canonical)
        return ranks

    @cached_property
    def reduced_ranks(self) -> list[str]:
        """Canonical names of the ranks some Einsum reduces over, in order of first reduction."""
        return self._canonical_ranks(lambda einsum: einsum.reduced)

    @cached_property
    def iterated_ranks(self) -> list[str]:
        """Canonical names of the ranks any Einsum iterates, in order of first use."""
        return self._canonical_ranks(lambda einsum: einsum.variables)

    def pass_counts(self) -> dict[str, int]:
        return {rank: self.passes(rank) for rank in self.reduced_ranks}

    # --- passes ---------------------------------------------------------------------------------------------
    def pass_analysis(self, rank: str) -> PassAnalysis:
        if rank not in self._pass_cache:
            self._pass_cache[rank] = self._analyse_passes(rank)
        return self._pass_cache[rank]

    def _analyse_passes(self, rank: str) -> PassAnalysis:
        family = self.rank_families.get(rank, frozenset({rank}))
        traverses = [bool({rank_of(v) for v in e.variables} & family) for e in self.einsums]
        # per tensor: (pass in which it becomes available, streamed along the rank?)
        avail: dict[str, tuple[int, bool]] = {}
        einsum_pass: dict[int, int] = {}
        for i in self.order:
            einsum = self.einsums[i]
            if einsum.kind == "init":
                continue
            need = 1 if traverses[i] else 0
            for ref in einsum.reads:
                edge = self.graph.edges[("tensor", ref.name), ("einsum", i)]
                if edge["carried"] or ref.name not in avail:
                    continue
                produced_in, streamed = avail[ref.name]
                ready = produced_in if streamed or not traverses[i] else produced_in + 1
                need = max(need, ready)
            einsum_pass[i] = need
            out_streamed = traverses[i] and bool({rank_of(v) for v in einsum.output.variables} & family)
            if einsum.kind == "view":
                source_avail = avail.get(einsum.reads[0].name, (0, True))
                avail[einsum.output.name] = source_avail
            else:
                avail[einsum.output.name] = (need, out_streamed)
        passes = max((p for i, p in einsum_pass.items() if traverses[i]), default=0)
        return PassAnalysis(rank=rank, family=family, passes=passes, einsum_pass=einsum_pass)

    def passes(self, rank: str) -> int:
        """Number of passes the cascade must make over ``rank`` (and the ranks it was split into)."""
        return self.pass_analysis(rank).passes


def _upper_names(index) -> set[str]:
    return {n.id for n in ast.walk(index.node) if isinstance(n, ast.Name) and n.id.isupper()}


def _is_split(index) -> bool:
    """Whether an index is a mixed-radix combination of rank variables, ``m1*M0 + m0`` or ``m2*M1*M0 + m1*M0 +
    m0``: a sum of at least two terms, each one variable times upper-case rank sizes, where, ordered by their
    number of sizes, each term is scaled by the sizes of the term before it and that term's own rank. Such an
    index takes every value of the split rank exactly once; ``m+p`` or ``2*m+p`` does not."""
    terms: list[ast.AST] = []

    def flatten(node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            flatten(node.left)
            flatten(node.right)
        else:
            terms.append(node)

    def factors(node: ast.AST) -> list[ast.AST]:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return factors(node.left) + factors(node.right)
        return [node]

    flatten(index.node)
    parsed: list[tuple[str, frozenset[str]]] = []
    for term in terms:
        names = factors(term)
        if not all(isinstance(n, ast.Name) for n in names):
            return False
        variables = [n.id for n in names if not n.id.isupper()]
        sizes = [n.id for n in names if n.id.isupper()]
        if len(variables) != 1 or len(set(sizes)) != len(sizes):
            return False
        parsed.append((variables[0], frozenset(sizes)))
    if len(parsed) < 2 or len({v for v, _ in parsed}) != len(parsed):
        return False
    parsed.sort(key=lambda term: len(term[1]))
    expected: frozenset[str] = frozenset()
    for variable, sizes in parsed:
        if sizes != expected:
            return False
        expected = sizes | {rank_of(variable)}
    return True
