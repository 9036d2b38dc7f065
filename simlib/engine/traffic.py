"""DRAM traffic of a cascade, unfused or fused.

Unfused: every Einsum is its own kernel; it reads each operand tensor once from DRAM and writes its output once
(views and constant initialisations are folded into their consumers). A workload's ``kernels`` groups Einsums
that one framework kernel runs over a row held in cache (:func:`kernel_groups`, :func:`unfused_traffic`). This
is the compulsory traffic of each kernel, a roofline lower bound that ignores re-reads caused by tiling. A view
moves the elements of its source that it reaches (:func:`read_bytes`: a broadcast ``X[m,p] = A[m]`` reads A, not
M x P elements), and storage read directly and through a view in one kernel is read once.

Fused: one kernel streams the cascade's stream rank (M for attention) for a chunk of rows at a time. Row ranks are
the batch ranks and every rank that each computing Einsum iterates (P for attention). On chip, per chunk of c rows,
the holding level (the largest scratchpad: GPU shared memory over all SMs, a spatial array's global buffer; on a
CPU, with none, the largest cache) keeps: the row-indexed inputs that do not vary along the stream rank (a Q row),
one slice along the stream rank of every intermediate consumed in the pass that makes it, and — unless they spill —
the whole of every intermediate read in a later pass (FuseMax §III: each extra pass costs an O(M) buffer per row or
spill traffic). An input without some row rank (K, V) is re-read once per chunk of rows (FuseMax §V: K/V re-streamed
P/(rows per chunk) times). The engine takes the largest c that fits, with cross-pass intermediates buffered or
spilled (written once, read back once per consuming Einsum), whichever moves fewer DRAM bytes. Streamed slices are
consumed where they are made (registers, PE register files) and count against the holding level's capacity but not
its traffic; the holding level's traffic is the cross-pass buffers, written once and read once per consuming Einsum.
The consumers of an intermediate are the Einsums that read it directly or through views of it.

Reductions over a row rank (:func:`row_phases`): when an Einsum reduces a row rank (``R[m] = sum_p T[m,p]``
with M streamed and P a row rank, as when a cascade reduces both M and P), its result is complete only after the
last chunk of rows, so every Einsum that reads it, directly or through others, runs in a later sweep over all
chunks. An intermediate made before such a barrier and read after it must outlive every chunk: it is held whole
(all its rows, not a chunk's) or spilled, and charged like any cross-pass intermediate; so is the reduction's
own result (its partial sums persist across chunks). An input read on both sides of a barrier is read in each
sweep. Recomputing such an intermediate instead of spilling it is not modelled.

Bound by the unfused sequence: a fused kernel can always run as the unfused kernels would, one phase per
Einsum separated by grid-wide barriers, every intermediate written to DRAM and read back (a cascade of one
Einsum is the same kernel either way). So the fused kernel moves at most the unfused traffic, and where the
streaming plan above would move more (an input without some row rank is re-read once per chunk of rows, while
the unfused count reads each operand once), the fused traffic is the unfused traffic, its intermediates'
round trips counted as spill and nothing held on chip. Under this module's convention the unfused count is
each kernel's compulsory traffic, so the bound also keeps the two conventions consistent: ``Y[m,p] = X[m] *
Z[p]`` alone is one kernel, and its fused and unfused bytes are the same. Run that way, its phases follow one
another, so :func:`simlib.engine.roofline.predict_cascade` sums their times as it does for unfused kernels
(``Traffic.sequential``) instead of overlapping the whole cascade's work.

Stream rank (chosen by :func:`simlib.engine.roofline.predict_cascade`): the workload's ``stream_rank``, else its
largest reduced rank, else (a cascade of maps with nothing to reduce, where every Einsum runs in one pass
whichever rank is streamed, but the re-reads of broadcast inputs depend on it) the iterated rank whose plan
moves the fewest DRAM bytes; with no rank at all (``analysis`` None) the kernel is one pass over the batch:
inputs read once, outputs written once, intermediates kept on chip. Reads and writes are kept apart, at DRAM
and at the holding level, so that energy can price each action at its own cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simlib.hardware.schema import HardwareSpec, MemoryLevel
from simlib.workload.cascade import PassAnalysis, rank_of
from simlib.workload.workload import BoundWorkload


@dataclass
class Traffic:
    read_bytes: dict[int, float]       # Einsum index -> DRAM bytes read
    write_bytes: dict[int, float]
    on_chip_read_bytes: float          # intermediates kept in the holding level: read once per consuming Einsum
    on_chip_write_bytes: float         # ... and written once
    spill_bytes: float                 # DRAM bytes caused by intermediates that did not fit
    holding_level: MemoryLevel | None
    sequential: bool = False           # the Einsums run one after another (unfused, or fused run as that sequence)
    kernels: list[list[int]] | None = None     # unfused: the Einsums each kernel runs, in order (None: one each)

    @property
    def on_chip_bytes(self) -> float:
        return self.on_chip_read_bytes + self.on_chip_write_bytes

    @property
    def dram_bytes(self) -> float:
        return sum(self.read_bytes.values()) + sum(self.write_bytes.values())


def holding_level(hw: HardwareSpec) -> MemoryLevel | None:
    """The largest scratchpad; on a part with none (a CPU) the largest cache, which fused kernels tile for."""
    for kind in ("scratchpad", "cache"):
        levels = [lvl for lvl in hw.memory[1:] if lvl.kind == kind and hw.level_capacity_bytes(lvl)]
        if levels:
            return max(levels, key=hw.level_capacity_bytes)
    return None


def _computing(bound: BoundWorkload) -> list[int]:
    return [i for i in bound.cascade.order if bound.cascade.einsums[i].kind not in ("view", "init")]


def read_bytes(bound: BoundWorkload, name: str) -> float:
    """Bytes a kernel reading ``name`` moves: the tensor's bytes, or, for a view, the bytes of its source that the
    view reaches. A view moves nothing of its own; each of its elements is an element of the source, so it reaches
    at most the source's elements, at most one per view element, and at most one per point of the variables its
    source index uses: ``X[m,p] = A[m]`` reaches the M elements of A (not M x P), the diagonal ``D[m] = T[m,m]`` M
    of T's M x M, and ``TB[m1,m0] = T[m1*M0+m0]`` all of T. Exact for indices that are single variables, splits
    or constants; an upper bound otherwise."""
    cascade = bound.cascade
    tensors = bound.tensors
    writer = cascade.computing_writer(name)
    if writer is None or cascade.einsums[writer].kind != "view":
        return tensors[name].bytes
    ref = cascade.einsums[writer].reads[0]
    source = tensors[cascade.view_source(name)]
    per_element = source.bytes / source.elements
    points = bound.batch_factor * math.prod(bound.rank_sizes[rank_of(v)] for v in ref.variables)
    return min(read_bytes(bound, ref.name), points * per_element, tensors[name].elements * per_element)


def _operand_bytes(bound: BoundWorkload, index: int) -> dict[str, float]:
    """Storage an Einsum reads, by the tensor that owns it (a view's source): a tensor read directly and through
    a view, or through two views, is read once, as the larger of the parts read."""
    cascade = bound.cascade
    found: dict[str, float] = {}
    for ref in cascade.einsums[index].reads:
        source = cascade.view_source(ref.name)
        found[source] = max(found.get(source, 0.0), read_bytes(bound, ref.name))
    return found


def unfused_traffic(bound: BoundWorkload, kernels: list[list[int]] | None = None) -> Traffic:
    """Each kernel's compulsory DRAM traffic; ``kernels`` (from :func:`kernel_groups`) lists the Einsums each
    kernel runs, one per kernel by default. A kernel of several Einsums works a row at a time with the row in
    cache: it reads each storage from outside the kernel once (charged to its first reader, the largest part any
    member reads), reads nothing its own Einsums made, and writes only the tensors read after it or output by the
    cascade."""
    reads, writes, _ = _unfused_counts(bound, kernels)
    return Traffic(reads, writes, 0.0, 0.0, 0.0, None, sequential=True,
                   kernels=kernels or [[i] for i in _computing(bound)])


def _unfused_counts(bound: BoundWorkload,
                    kernels: list[list[int]] | None) -> tuple[dict[int, float], dict[int, float], float]:
    """DRAM bytes read and written per Einsum (see :func:`unfused_traffic`), and the bytes of intermediates among
    them (written by one kernel and read back by later ones): what a fused kernel run as this sequence spills."""
    cascade = bound.cascade
    tensors = bound.tensors
    reads, writes = {}, {}
    round_trips = 0.0
    for members in kernels or [[i] for i in _computing(bound)]:
        made = {cascade.einsums[i].output.name for i in members}
        kept = set(_kept_in_kernel(bound, members)) if len(members) > 1 else set()
        first: dict[str, tuple[int, float]] = {}
        for i in members:
            reads[i] = 0.0
            output = cascade.einsums[i].output.name
            writes[i] = 0.0 if output in kept else tensors[output].bytes
            if output not in kept and output not in cascade.outputs:
                round_trips += writes[i]
            for source, moved in _operand_bytes(bound, i).items():
                if source in made and len(members) > 1:
                    continue
                reader, most = first.get(source, (i, 0.0))
                first[source] = (reader, max(most, moved))
        for source, (reader, moved) in first.items():
            reads[reader] += moved
            if source not in cascade.inputs:
                round_trips += moved
    return reads, writes, round_trips


def _kept_in_kernel(bound: BoundWorkload, members: list[int]) -> list[str]:
    """Tensors a kernel makes and only its own Einsums read (not outputs of the cascade): they never reach DRAM."""
    cascade = bound.cascade
    inside = set(members)
    kept = []
    for i in members:
        name = cascade.einsums[i].output.name
        readers = {r for r in cascade.readers(name) if cascade.einsums[r].kind not in ("view", "init")}
        if name not in cascade.outputs and readers <= inside:
            kept.append(name)
    return kept


def _row_ranks_of_kernel(bound: BoundWorkload, members: list[int]) -> set[str]:
    """The ranks a kernel of several Einsums loops over row by row: those every member's output has."""
    cascade = bound.cascade
    return set.intersection(*({rank_of(v) for v in cascade.einsums[i].output.variables} for i in members))


def _held_row_bytes(bound: BoundWorkload, members: list[int]) -> float:
    """Bytes of one row a kernel keeps in cache between its loops: every storage two or more of its Einsums read
    (an input row read by the max and the exp of a softmax) and every tensor one of them makes and a later one
    reads. A tensor's row is its bytes over the batch entries and the sizes of the kernel's row ranks it has (a
    tensor without the row rank is held whole)."""
    cascade = bound.cascade
    made = {cascade.einsums[i].output.name for i in members}
    readers: dict[str, int] = {}
    for i in members:
        for source in _operand_bytes(bound, i):
            readers[source] = readers.get(source, 0) + 1
    held = {name for name, count in readers.items() if count > 1 or name in made}
    rows = _row_ranks_of_kernel(bound, members)
    total = 0.0
    for name in held:
        along = rows & _tensor_ranks(bound, name)
        total += bound.tensors[name].bytes / (bound.batch_factor * math.prod(bound.rank_sizes[r] for r in along))
    return total


def kernel_groups(bound: BoundWorkload, hw: HardwareSpec) -> list[list[int]]:
    """The unfused kernels in order: the workload's ``kernels`` groups, every other Einsum alone.

    A group runs its Einsums as loops over one row (a point of the ranks every member's output has, per batch
    entry) and keeps that row of what its loops share in cache (:func:`_held_row_bytes`). A row per processor
    must fit the holding level (the largest scratchpad, else the largest cache); where it does not, the group
    runs as its Einsums' separate kernels, each going through DRAM. A row softmax over 16K fp32 keys holds its
    input and exponent rows, 128 KiB."""
    cascade = bound.cascade
    order = _computing(bound)
    grouped: dict[int, list[int]] = {}
    level = holding_level(hw)
    capacity = hw.level_capacity_bytes(level) if level else 0.0
    in_flight = hw.processors.count if hw.processors else 1
    for names in bound.workload.spec.kernels:
        members = sorted((cascade.computing_writer(name) for name in names), key=order.index)
        if _held_row_bytes(bound, members) * in_flight <= capacity:
            grouped.update({i: members for i in members})
    kernels: list[list[int]] = []
    for i in order:
        if i not in grouped:
            kernels.append([i])
        elif grouped[i][0] == i:
            kernels.append(grouped[i])
    return kernels


def _streamed_slice_bytes(bound: BoundWorkload, tensor: str, family: frozenset[str]) -> float:
    cascade = bound.cascade
    writer = cascade.einsums[cascade.computing_writer(tensor)]
    info = bound.tensors[tensor]
    extents = list(info.shape.values())[len(bound.workload.spec.batch_ranks):]
    along = [ext for ext, index in zip(extents, writer.output.indices)
             if {rank_of(v) for v in index.variables} & family]
    return info.bytes / math.prod(along) if along else info.bytes


def _tensor_ranks(bound: BoundWorkload, tensor: str) -> set[str]:
    cascade = bound.cascade
    ranks = set(bound.workload.spec.batch_ranks)
    for einsum in cascade.einsums:
        for ref in (einsum.output, *einsum.reads):
            if ref.name == tensor:
                ranks |= {cascade.canonical_rank(rank_of(v)) for v in ref.variables}
    return ranks


def row_ranks(bound: BoundWorkload, family: frozenset[str]) -> list[str]:
    cascade = bound.cascade
    shared: set[str] | None = None
    for i in _computing(bound):
        ranks = {cascade.canonical_rank(rank_of(v)) for v in cascade.einsums[i].variables}
        shared = ranks if shared is None else shared & ranks
    rows = [*bound.workload.spec.batch_ranks, *sorted((shared or set()) - family)]
    return [r for r in rows if r not in family]


def row_phases(bound: BoundWorkload, rows_r: list[str]) -> dict[int, int]:
    """Computing Einsum -> how many reductions over a row rank it waits behind (0 for most cascades).

    A fused kernel works through the row ranks a chunk of rows at a time, so a reduction over a row rank
    (``R[m] = sum_p T[m,p]`` where every Einsum iterates P and M is streamed) is complete only after the last
    chunk. An Einsum reading its result (through any chain of Einsums) waits for all chunks: it runs in a later
    sweep over the rows, and every intermediate made before that and read after it must outlive all chunks.
    Views pass their source's phase on; carried reads (a recurrence reading its own earlier values) are left out.
    """
    cascade = bound.cascade
    rows = set(rows_r)
    ready: dict[str, int] = {}            # tensor -> phase in which its values are complete
    phase: dict[int, int] = {}
    for i in cascade.order:
        einsum = cascade.einsums[i]
        if einsum.kind == "init":
            continue
        waits = max((ready.get(ref.name, 0) for ref in einsum.reads
                     if not cascade.graph.edges[("tensor", ref.name), ("einsum", i)]["carried"]), default=0)
        if einsum.kind == "view":
            ready[einsum.output.name] = waits
            continue
        phase[i] = waits
        row_reduction = any(cascade.canonical_rank(rank_of(v)) in rows for v in einsum.reduced)
        ready[einsum.output.name] = waits + (1 if row_reduction else 0)
    return phase


@dataclass
class _Resident:
    name: str
    bytes_per_row: float
    rows_held: int          # rows of this tensor (its row ranks); a chunk holds min(c, rows_held) of them


def _largest_chunk(residents: list[_Resident], capacity: float, rows: int) -> int:
    """Largest chunk of rows c (1..rows) whose footprint fits in ``capacity``; 0 if not even one row."""
    def footprint(c: int) -> float:
        return sum(r.bytes_per_row * min(c, r.rows_held) for r in residents)

    if footprint(1) > capacity:
        return 0
    low, high = 1, rows
    while low < high:
        mid = (low + high + 1) // 2
        if footprint(mid) <= capacity:
            low = mid
        else:
            high = mid - 1
    return low


def fused_traffic(bound: BoundWorkload, hw: HardwareSpec, analysis: PassAnalysis | None) -> Traffic:
    """One fused kernel streaming ``analysis.rank``; ``analysis`` None when the Einsums iterate no rank."""
    cascade = bound.cascade
    tensors = bound.tensors
    order = _computing(bound)
    position = {i: k for k, i in enumerate(order)}
    family = analysis.family if analysis else frozenset()
    einsum_pass = analysis.einsum_pass if analysis else {}
    rows_r = row_ranks(bound, family)
    rows = math.prod(bound.rank_sizes[r] for r in rows_r)

    ranks_of = {name: _tensor_ranks(bound, name) for name in tensors}

    def rows_of(name: str) -> int:
        return math.prod(bound.rank_sizes[r] for r in rows_r if r in ranks_of[name])

    phase = row_phases(bound, rows_r)
    first_reader: dict[tuple[str, int], int] = {}     # (input, phase) -> the first Einsum reading it in that phase
    for i in order:
        for ref in cascade.einsums[i].reads:
            source = cascade.view_source(ref.name)
            if source in cascade.inputs and (source, phase[i]) not in first_reader:
                first_reader[(source, phase[i])] = i
    intermediates = []                      # (name, writer, consuming Einsums) of every consumed intermediate
    for name in cascade.intermediates:
        writer = cascade.computing_writer(name)
        users = [i for i in cascade.readers(name) if i in position and i != writer]
        if writer in position and users:
            intermediates.append((name, writer, users))

    streamed_res, cross_res = [], []
    for name in dict.fromkeys(name for name, _ in first_reader):
        ranks = ranks_of[name]
        if set(rows_r) <= ranks and not ranks & family:
            streamed_res.append(_Resident(name, tensors[name].bytes / rows, rows))
    for name, writer, users in intermediates:
        produced = einsum_pass.get(writer, 0)
        held = rows_of(name)
        if any(phase[u] > phase[writer] for u in users):
            # read after a reduction over a row rank: it must outlive every chunk, so all of it is held or spilled
            cross_res.append(_Resident(name, tensors[name].bytes, 1))
        elif any(einsum_pass.get(u, 0) > produced for u in users):
            cross_res.append(_Resident(name, tensors[name].bytes / held, held))
        else:
            streamed = bool({rank_of(v) for v in cascade.einsums[writer].output.variables} & family)
            size = _streamed_slice_bytes(bound, name, family) if streamed else tensors[name].bytes
            streamed_res.append(_Resident(name, size / held, held))
    crossing = {r.name for r in cross_res}

    level = holding_level(hw)
    capacity = hw.level_capacity_bytes(level) if level else 0.0

    def plan(spilled: set[str], chunk: int | None = None) -> tuple[float, dict, dict, float, float, float] | None:
        if chunk is None:
            keep = [r for r in cross_res if r.name not in spilled]
            chunk = _largest_chunk(streamed_res + keep, capacity, rows)
        if chunk == 0:
            return None
        reads = {i: 0.0 for i in order}
        writes = {i: 0.0 for i in order}
        for (name, _), reader in first_reader.items():
            missing = math.prod(bound.rank_sizes[r] for r in rows_r if r not in ranks_of[name])
            reads[reader] += tensors[name].bytes * max(1, math.ceil(missing / chunk))
        for name in cascade.outputs:
            writes[cascade.computing_writer(name)] += tensors[name].bytes
        spill = on_chip_read = on_chip_write = 0.0
        for name, writer, users in intermediates:
            if name in spilled:
                writes[writer] += tensors[name].bytes
                for user in users:
                    reads[user] += tensors[name].bytes
                spill += tensors[name].bytes * (1 + len(users))
            elif name in crossing:
                on_chip_write += tensors[name].bytes
                on_chip_read += tensors[name].bytes * len(users)
        return sum(reads.values()) + sum(writes.values()), reads, writes, on_chip_read, on_chip_write, spill

    options = [p for p in (plan(set()), plan(crossing)) if p is not None]
    if not options:
        # not even one row's streaming state fits: every intermediate goes through DRAM, inputs read once
        options = [plan({name for name, *_ in intermediates}, chunk=rows)]
    moved, reads, writes, on_chip_read, on_chip_write, spill = min(options, key=lambda p: p[0])
    unfused = unfused_traffic(bound, kernel_groups(bound, hw))
    if unfused.dram_bytes < moved:
        return _as_unfused_sequence(bound, unfused)
    return Traffic(reads, writes, on_chip_read, on_chip_write, spill, level)


def _as_unfused_sequence(bound: BoundWorkload, unfused: Traffic) -> Traffic:
    """The fused kernel run as the unfused sequence (see the module docstring): the unfused DRAM traffic (with the
    workload's kernels of several Einsums), nothing held on chip, and as spill every DRAM byte that is not an
    input read or an output write (each intermediate written once and read back by each later kernel)."""
    _, _, spill = _unfused_counts(bound, unfused.kernels)
    return Traffic(dict(unfused.read_bytes), dict(unfused.write_bytes), 0.0, 0.0, spill, None, sequential=True,
                   kernels=unfused.kernels)
