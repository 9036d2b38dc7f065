"""Attention on spatial accelerators (FuseMax, FLAT, an unfused baseline): cycles per PE array, latency,
DRAM traffic, utilization and energy from an Einsum cascade, a PE-array description and a binding.

Compute (Timeloop's convention, one action per PE per cycle): a PE finishes one point of an Einsum per cycle
when it has a functional unit for every operation of the point (its datapath chains them); an operation it
lacks is decomposed with the hardware's ``op_decomposition`` (FuseMax: exp = 6 MACs + 1 add), recursively
until every part is an operation the PE has, and holds the PE for one cycle per part. A PE that does
``ops_per_cycle`` = k actions per cycle finishes k of those cycles' work per cycle. An Einsum's cycles on an
array = its points × cycles per point / (the array's PEs × k). Every action is priced at the array's
``energy_pj_per_op``; an action missing there is an input error, not free.

Schedules (reference/fusemax.md, after the FuseMax paper and its artifact):

* ``pipelined`` (FuseMax): M = M1 × M0 and P in tiles of P0 so one M0 × P0 tile fills the 2D array per epoch.
  Each stage of an epoch takes the longest of its arrays' summed Einsum cycles; Einsums without an M rank (AV)
  run once per query tile, in the last epoch. Time counts ceil(M / M0) × ceil(P / P0) whole epochs (a partial
  tile's idle PEs still take the epoch); energy, MACs and the arrays' busy cycles count only the real points
  (the full tiles, plus the partial tiles at their own sizes), so utilization = real work / (PEs × cycles).
  Traffic: Q read and AV written once; the buffer holds one K and one V tile plus P1 × P0 rows of row state
  (the inputs indexed by P alone, and the tensors the cascade carries along M1: Q, RM, RD, RNV), and K and V
  are streamed once per group of P1 query tiles (``query_tile_groups``: the artifact's largest factor of
  P / P0 that fits, or, where that forces many more streams, groups of a power of two with the last one
  partial). Passes: the cascade must be 1-pass over M (its pass analysis), else the row state would be O(M).
* ``row_fused`` (FLAT): the 2D array (QK, AV) and the 1D array (softmax) run concurrently, so compute is the
  longer of the two. The buffer holds R rows of QK, R the largest power of two with R · M words in the buffer,
  at least P0 and at most P; two M0 × P0 output tiles stay reserved. With QK rows on chip, Q, K and V stream
  through the 2D array once per M0 × P0 output tile; the fraction of each row block that does not fit is
  spilled, and a spilled score costs a DRAM access each time the softmax Einsums read or write an M × P
  tensor, plus QK's write (7 for the 3-pass cascade). The other mapping sends QK and A through DRAM (written,
  read once per row by the softmax, which holds a row on chip, and A read by AV) with K and V streamed once per
  ``row_block`` rows; the mapping with less traffic is taken.
* ``phases`` (unfused): one phase after another, each reading its inputs from DRAM and writing its outputs
  there once; a phase takes max(compute, traffic / bandwidth), the phases add up.

``row_fused`` and ``phases`` run a cascade that blocks M (``block_kv``, the 1-pass cascade) with block_kv =
the design's M0. The 2D array is the bound array whose mesh has two dimensions; the softmax array of
``row_fused`` is, of the others, the one most Einsums are bound to (ties: the first in the hardware file): the
order of arrays in a design YAML changes nothing.

Latency = max(compute, DRAM bytes / bandwidth) (phases: per phase). Energy = actions × energy per action from
the hardware YAML, priced as Accelergy prices an action (a read at a level's read energy, a write or fill at its
write energy), over these action counts:

    E = Σ ops × pJ/op  (per array, an operation it lacks decomposed)
      + DRAM reads × read pJ + DRAM writes × write pJ          (accesses = bytes · 8 / access_bits)
      + buffer fills × write pJ + buffer drains × read pJ      (rows = bytes · 8 / access_bits)
      + MACs × (register reads per MAC × read pJ + register writes per MAC × write pJ)

The buffer is charged for its traffic with DRAM only, each DRAM byte once at the buffer: every byte read from
DRAM fills the buffer (a buffer write) and every byte written to DRAM drains from it (a buffer read). Its
traffic with the PE arrays is not counted: neither the buffer reads that feed operands to the arrays (including
a tile re-read from the buffer for each use) nor the writes of the arrays' results into the buffer (including
the write that precedes each drain). These are fewer actions than the full Accelergy counts that the FuseMax
artifact builds from Timeloop's statistics, which charge every buffer access. Each schedule below knows which
of its DRAM words are reads and which are writes. A level that gives no write energy is charged its read energy
for writes (and one that gives no read energy its write energy for reads), as the cascade engine does; a level
that gives neither is not priced. Static (leakage) power is not modelled.
"""
from __future__ import annotations

import math

from simlib.dtypes import dtype_bytes
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.spatial_design import DesignSpec, RegisterAccesses, check_binding, register_level
from simlib.workload.cascade import rank_of
from simlib.workload.model_spec import ModelSpec
from simlib.workload.workload import Workload

RESERVED_TILES = 2            # row_fused: two M0 × P0 output tiles stay in the buffer
ROW_BLOCK = 1024              # row_fused, QK in DRAM: rows per K/V stream (the FLAT mapping search's choice)
# GEMMs outside attention use one PE dataflow on every design (the paper's end-to-end comparison maps them the
# same way on both): output-stationary, as gemm_on_array times it (each output tile stays in the array while
# the reduction streams through). The operands are forwarded from PE to PE through pipeline latches and the
# partial sum accumulates in the MAC unit, not in the register file, which is charged one read per MAC: the
# most the paper's energy split allows (>= 95 % of FuseMax's energy in the 2D array's MACs, reference/fusemax.md:
# everything else <= 0.05 / 0.95 x 17.16 pJ = 0.90 pJ per MAC, room for one 0.6 pJ register access, not two).
# The same count as FuseMax's attention dataflow (workloads/designs/fusemax.yaml).
GEMM_RF_ACCESSES_PER_MAC = RegisterAccesses(reads=1, writes=0)


def _direct_action(unit_ops, op) -> str | None:
    """The action a PE runs ``op`` as when it has a unit for it: the op itself, or a mul as a MAC with a zero
    addend (the cascade engine's rule, simlib/engine/units.py); None when it has none."""
    if op in unit_ops:
        return op
    return "mac" if op == "mul" and "mac" in unit_ops else None


def actions_of(hw: HardwareSpec, array: str, op: str, _within: tuple[str, ...] = ()) -> dict[str, float]:
    """Actions one ``op`` costs a PE of ``array``: {op: 1} when the PE has it; else its ``op_decomposition``,
    expanded again wherever a part is itself missing (exp -> {mac: 6, div: 1} with div -> {mac: 4} costs 10
    MACs on a PE without a divider), so every action is one the PE has. A decomposition that reaches itself
    (the hardware schema refuses those) or an op with no decomposition is an input error."""
    action = _direct_action(hw.compute[array].operations, op)
    if action is not None:
        return {action: 1.0}
    source = hw.source_file or hw.name
    if op in _within:
        raise SimlibInputError(source, f"op_decomposition.{op}", f"decomposes into itself "
                                                                 f"({' -> '.join([*_within, op])})")
    parts = hw.op_decomposition.get(op)
    if parts is None:
        raise SimlibInputError(source, "op_decomposition", f"{array} has no unit for '{op}' and no decomposition "
                                                           f"of it into operations it has")
    actions: dict[str, float] = {}
    for sub, count in parts.items():
        for action, n in actions_of(hw, array, sub, (*_within, op)).items():
            actions[action] = actions.get(action, 0.0) + count * n
    return actions


def cycles_per_point(hw: HardwareSpec, array: str, ops_per_point: dict) -> float:
    """PE cycles per point at one action per cycle: the operations the PE has chain in one cycle; each missing
    one adds one cycle per action of its (recursive) decomposition."""
    unit_ops = hw.compute[array].operations
    decomposed = sum(count * sum(actions_of(hw, array, op).values())
                     for op, count in ops_per_point.items() if count and _direct_action(unit_ops, op) is None)
    direct = any(count and _direct_action(unit_ops, op) is not None for op, count in ops_per_point.items())
    return max(decomposed, 1 if direct else 0)


def energy_per_point_pj(hw: HardwareSpec, array: str, ops_per_point: dict) -> float:
    """Σ over a point's operations of count × Σ over its actions (``actions_of``) of n × the array's pJ per
    action. An action the array's ``energy_pj_per_op`` does not price is refused, not charged 0."""
    unit = hw.compute[array]
    table = unit.energy_pj_per_op or {}
    total = 0.0
    for op, count in ops_per_point.items():
        if not count:
            continue
        for action, n in actions_of(hw, array, op).items():
            if action not in table:
                raise SimlibInputError(hw.source_file or hw.name, f"compute.{array}.energy_pj_per_op",
                                       f"no energy for '{action}', which {array} executes"
                                       + (f" (for '{op}')" if action != op else "")
                                       + f"; expected its pJ per action there ({action}: <pJ>)")
            total += count * n * table[action]
    return total


def _has_m(cascade, einsum) -> bool:
    return any(cascade.canonical_rank(rank_of(v)) == "M" for v in einsum.variables)


def _einsum_table(workload: Workload, hw: HardwareSpec, placed: dict, sizes: dict) -> list[dict]:
    """Per computing Einsum at the given sizes (batch and heads 1): array, points, cycles, energy."""
    bound = workload.bind(sizes)
    rows = []
    for i, einsum in enumerate(workload.cascade.einsums):
        array = placed.get(einsum.output.name)
        if array is None:
            continue
        points = bound.iteration_points(i)
        cpp = cycles_per_point(hw, array, einsum.ops_per_point)
        unit = hw.compute[array]
        rows.append({"einsum": einsum.output.name, "array": array, "points": points,
                     "macs": points * einsum.ops_per_point.get("mac", 0),
                     "cycles": points * cpp / (unit.pe_count * unit.ops_per_cycle),
                     "energy_pj": points * energy_per_point_pj(hw, array, einsum.ops_per_point),
                     "per_epoch": _has_m(workload.cascade, einsum)})
    return rows


def _memory(hw: HardwareSpec):
    dram = hw.dram
    buffer = hw.first_level("scratchpad")
    if buffer is None or hw.level_capacity_bytes(buffer) is None:
        raise SimlibInputError(hw.source_file or hw.name, "memory", "a spatial design needs a scratchpad buffer "
                                                                    "with a capacity")
    return dram, buffer


def per_access_pj(level) -> tuple[float, float]:
    """(read, write) energy per access of a memory level. A level that gives no write energy is charged its
    read energy for writes, one that gives no read energy its write energy for reads (the cascade engine's
    rule); one that gives neither costs nothing."""
    read, write = level.energy_pj_per_read, level.energy_pj_per_write
    read = read if read is not None else write
    write = write if write is not None else read
    return read or 0.0, write or 0.0


def _traffic_energy_pj(hw: HardwareSpec, read_bytes: float, write_bytes: float) -> float:
    """DRAM reads and writes at their own energies per ``access_bits`` access, and the buffer rows they cross:
    a byte read from DRAM fills the buffer (a write), a byte written to DRAM drains from it (a read)."""
    dram, buffer = _memory(hw)
    dram_read, dram_write = per_access_pj(dram)
    buffer_read, buffer_write = per_access_pj(buffer)
    dram_bits, row_bits = dram.access_bits or 64, buffer.access_bits or 4096
    return (read_bytes * 8 / dram_bits * dram_read + write_bytes * 8 / dram_bits * dram_write
            + read_bytes * 8 / row_bits * buffer_write + write_bytes * 8 / row_bits * buffer_read)


def _register_energy_pj(hw: HardwareSpec, design: DesignSpec, per_einsum: list[dict]) -> float:
    """Register-file reads and writes per MAC (the design's dataflow) × the array's register energies per read
    and per write. A count that does not say which accesses are reads is priced only where reads and writes
    cost the same; otherwise the design must give {reads: R, writes: W}."""
    total = 0.0
    for array, accesses in design.rf_accesses_per_mac.items():
        level = register_level(hw, array)
        if level is None:
            raise SimlibInputError(design.source_file or design.name, f"rf_accesses_per_mac.{array}",
                                   f"{hw.name} has no register file for {array} (a memory level of kind registers "
                                   f"with per: {array}), so its accesses cannot be priced")
        read_pj, write_pj = per_access_pj(level)
        macs = sum(r["macs"] for r in per_einsum if r["array"] == array)
        if isinstance(accesses, RegisterAccesses):
            total += macs * (accesses.reads * read_pj + accesses.writes * write_pj)
        elif read_pj == write_pj:
            total += macs * accesses * read_pj
        else:
            raise SimlibInputError(design.source_file or design.name, f"rf_accesses_per_mac.{array}",
                                   f"{hw.name}'s {level.name} prices a read at {read_pj:g} pJ and a write at "
                                   f"{write_pj:g} pJ, so {accesses:g} accesses per MAC cannot be priced; expected "
                                   f"reads and writes per MAC, e.g. {{reads: {accesses:g}, writes: 0}}")
    return total


def _row_state_words(workload: Workload, sizes: dict) -> int:
    """Words per query row the fused schedule keeps: inputs indexed by P and not M (Q), and the tensors the
    cascade carries along M1 (RM, RD, RNV: one slot of each, the tile binding has M1 + 1 = 2 slots)."""
    cascade = workload.cascade
    tensors = workload.bind(sizes).tensors
    rows, slots = sizes["seq_q"], sizes["seq_kv"] // sizes["block_kv"] + 1
    carried = {u[1] for u, _, data in cascade.graph.edges(data=True) if data["carried"]}
    words = 0
    for name, info in tensors.items():
        declared = workload.spec.tensors.get(name)
        if name in cascade.inputs and declared and "P" in declared.ranks and "M" not in declared.ranks:
            words += info.elements // rows
        elif name in carried:
            words += info.elements // (rows * slots)
    return words


def two_d_array(hw: HardwareSpec, design: DesignSpec) -> str:
    """The design's 2D PE array, by its structure: the one bound array whose mesh has two dimensions (FuseMax's
    and FLAT's 256 × 256 ``pe_2d``), whatever order the design lists its arrays in."""
    arrays = [a for a in hw.compute if a in design.binding and len(hw.compute[a].mesh or ()) == 2]
    if len(arrays) != 1:
        raise SimlibInputError(design.source_file or design.name, "binding",
                               f"expected exactly one bound PE array with a 2-dimensional mesh (the 2D array) in "
                               f"{hw.name}, got {', '.join(arrays) or 'none'}")
    return arrays[0]


def softmax_array(hw: HardwareSpec, design: DesignSpec) -> str:
    """The array that holds a row-fused design's softmax: of the bound arrays other than the 2D array, the one
    the most Einsums are bound to (FLAT: ``pe_1d`` with GM, SN, SD, A); ties go to the first in the hardware
    file, so the design YAML's order of arrays does not matter."""
    main = two_d_array(hw, design)
    others = [a for a in hw.compute if a in design.binding and a != main]
    return max(others, key=lambda a: len(design.binding[a]))        # max keeps the first of equals


def _tile_parts(n: int, tile: int) -> list[tuple[int, int]]:
    """(size, count) of the tiles of ``tile`` that cover ``n`` elements: n // tile full tiles and, when tile does
    not divide n, one partial tile of n mod tile (n = 6, tile 4: [(4, 1), (2, 1)])."""
    return [(size, count) for size, count in ((tile, n // tile), (n % tile, 1)) if size and count]


def query_tile_groups(p_tiles: int, p1_max: int) -> tuple[int, int]:
    """(P1, K/V streams) for ``p_tiles`` query tiles when at most ``p1_max`` ≥ 1 of them fit in the buffer at once.

    The FuseMax artifact (reference/fusemax.md) takes P1 = the largest factor of P / P0 that fits, so K and V
    are streamed p_tiles / P1 times. A tile count with no large factor (a prime) would then stream them once per
    tile; instead P1 may also be the largest power of two that fits, with the last group partial:
    ceil(p_tiles / P1) streams (the artifact's own choice at the tile count rounded up to a power of two). The
    fewer streams wins, the factor on a tie. At a power-of-two tile count every factor is a power of two, so
    both give the artifact's P1 (the published sizes). FuseMax, E = 64 (P1max 251): 256 tiles -> (128, 2);
    257 tiles -> factor 1 (257 streams) or 128 (3 streams) -> (128, 3); 384 tiles -> factor 192 (2 streams) or
    128 (3) -> (192, 2)."""
    limit = min(p1_max, p_tiles)
    factor = next(d for d in range(limit, 0, -1) if p_tiles % d == 0)
    power = 1 << (limit.bit_length() - 1)
    if math.ceil(p_tiles / power) < p_tiles // factor:
        return power, math.ceil(p_tiles / power)
    return factor, p_tiles // factor


def predict_design(design: DesignSpec, workload: Workload, hw: HardwareSpec, *, batch: int, heads: int,
                   seq_q: int, seq_kv: int, head_dim: int, head_dim_v: int | None = None,
                   dtype: str = "fp16") -> dict:
    head_dim_v = head_dim_v or head_dim
    placed = check_binding(design, workload, hw)
    dram, buffer = _memory(hw)
    word = dtype_bytes(dtype)
    buffer_words = hw.level_capacity_bytes(buffer) / word
    clock = hw.clock_hz
    bh = batch * heads
    m0, p0 = design.tile["M0"], design.tile["P0"]
    arrays = [a for a in hw.compute if a in design.binding]
    source = design.source_file or design.name
    per_einsum: list[dict]

    if design.execution == "pipelined":
        if workload.cascade.passes("M") != 1:
            raise SimlibInputError(source, "cascade", f"a pipelined design needs a 1-pass cascade over M; "
                                                      f"{workload.name} takes {workload.cascade.passes('M')}")
        tile = {"batch": 1, "heads": 1, "seq_q": p0, "seq_kv": m0, "block_kv": m0, "head_dim": head_dim,
                "head_dim_v": head_dim_v}
        table = {r["einsum"]: r for r in _einsum_table(workload, hw, placed, tile)}

        def stage_cycles(last: bool) -> float:
            total = 0.0
            for stage in design.stages or [list(table)]:
                busy = {a: sum(table[n]["cycles"] for n in stage if table[n]["array"] == a
                               and (table[n]["per_epoch"] or last)) for a in arrays}
                total += max(busy.values())
            return total

        m1, p_tiles = math.ceil(seq_kv / m0), math.ceil(seq_q / p0)
        epoch, last = stage_cycles(False), stage_cycles(True)
        cycles = bh * p_tiles * ((m1 - 1) * epoch + last)       # whole epochs, partial tiles included
        # real work: each full or partial tile at its own size; an Einsum without M once per query tile
        work = {n: {"einsum": n, "array": r["array"], "cycles": 0.0, "macs": 0, "energy_pj": 0.0}
                for n, r in table.items()}
        m_parts = _tile_parts(seq_kv, m0)
        for pp, p_count in _tile_parts(seq_q, p0):
            for i, (mm, m_count) in enumerate(m_parts):
                for r in _einsum_table(workload, hw, placed, {**tile, "seq_q": pp, "seq_kv": mm, "block_kv": mm}):
                    times = bh * p_count * (m_count if r["per_epoch"] else 1 if i == 0 else 0)
                    for key in ("cycles", "macs", "energy_pj"):
                        work[r["einsum"]][key] += times * r[key]
        busy = {a: sum(w["cycles"] for w in work.values() if w["array"] == a) for a in arrays}
        compute_pj = sum(w["energy_pj"] for w in work.values())
        state = _row_state_words(workload, tile)
        kv_tile = m0 * (head_dim + head_dim_v)
        # P1max: the most query tiles whose row state fits beside one K and one V tile
        p1_max = (math.floor((buffer_words - kv_tile) / (p0 * state)) if state
                  else p_tiles if kv_tile <= buffer_words else 0)
        if p1_max < 1:
            raise SimlibInputError(hw.source_file or hw.name, "memory", f"a {m0}x{p0} tile does not fit: one K and V "
                                                                        f"tile and {p0} rows of state need "
                                                                        f"{(kv_tile + p0 * state) * word:.0f} B, "
                                                                        f"the buffer has {buffer_words * word:.0f} B")
        p1, streams = query_tile_groups(p_tiles, p1_max)
        read_bytes = bh * word * (seq_q * head_dim + streams * seq_kv * (head_dim + head_dim_v))  # Q; K, V
        write_bytes = bh * word * seq_q * head_dim_v                                              # AV
        dram_bytes = read_bytes + write_bytes
        per_einsum = [{k: w[k] for k in ("einsum", "array", "cycles", "macs")} for w in work.values()]
        latency_cycles = max(cycles, dram_bytes / dram.bandwidth_bytes_per_s * clock)
        extra = {"p1": p1, "kv_streams": streams}
    else:
        full = {"batch": 1, "heads": 1, "seq_q": seq_q, "seq_kv": seq_kv, "head_dim": head_dim,
                "head_dim_v": head_dim_v}
        if "block_kv" in workload.parameter_names():         # a blocked cascade (1-pass): M0 blocks M
            if seq_kv % m0:
                raise SimlibInputError(source, "tile.M0", f"cascade {workload.name} blocks M by block_kv, which a "
                                                          f"{design.execution} design takes from its tile's M0 = "
                                                          f"{m0}; expected seq_kv a multiple of it, got {seq_kv}")
            full["block_kv"] = m0
        rows = _einsum_table(workload, hw, placed, full)
        busy = {a: bh * sum(r["cycles"] for r in rows if r["array"] == a) for a in arrays}
        compute_pj = bh * sum(r["energy_pj"] for r in rows)
        per_einsum = [{"einsum": r["einsum"], "array": r["array"], "cycles": bh * r["cycles"], "macs": bh * r["macs"]}
                      for r in rows]
        scores = seq_q * seq_kv
        if design.execution == "row_fused":
            r_rows = min(max(2 ** int(math.log2(max(buffer_words // seq_kv, 1))), p0), seq_q)
            spill = min(1.0, max(0.0, 1 - (buffer_words - RESERVED_TILES * m0 * p0) / (r_rows * seq_kv)))
            spill_reads, spill_writes = _spill_accesses(workload, placed, softmax_array(hw, design))
            # (read words, written words) of each mapping: Q per M0 column block, K and V per P0 row block, the
            # spilled scores; or QK and A through DRAM (each written once and read once), K and V per row block
            on_chip = (math.ceil(seq_kv / m0) * seq_q * head_dim + math.ceil(seq_q / p0) * seq_kv
                       * (head_dim + head_dim_v) + spill * spill_reads * scores,
                       seq_q * head_dim_v + spill * spill_writes * scores)
            through_dram = (2 * scores + seq_q * head_dim + math.ceil(seq_q / ROW_BLOCK) * seq_kv
                            * (head_dim + head_dim_v), 2 * scores + seq_q * head_dim_v)
            qk_in_dram = sum(through_dram) < sum(on_chip)
            read_words, write_words = through_dram if qk_in_dram else on_chip
            read_bytes, write_bytes = bh * word * read_words, bh * word * write_words
            dram_bytes = read_bytes + write_bytes
            cycles = max(busy.values())
            latency_cycles = max(cycles, dram_bytes / dram.bandwidth_bytes_per_s * clock)
            extra = {"rows_on_chip": r_rows, "spilled_fraction": 0.0 if qk_in_dram else spill,
                     "qk_in_dram": qk_in_dram}
        else:
            latency_cycles, read_bytes, write_bytes = 0.0, 0.0, 0.0
            for phase in design.phases or [[r["einsum"] for r in rows]]:
                phase_read, phase_write = _phase_words(workload, phase, full)
                phase_bytes = bh * word * (phase_read + phase_write)
                read_bytes += bh * word * phase_read
                write_bytes += bh * word * phase_write
                phase_cycles = max(bh * sum(r["cycles"] for r in rows if r["einsum"] in phase and r["array"] == a)
                                   for a in arrays)
                latency_cycles += max(phase_cycles, phase_bytes / dram.bandwidth_bytes_per_s * clock)
            dram_bytes = read_bytes + write_bytes
            extra = {}
    energy_pj = (compute_pj + _traffic_energy_pj(hw, read_bytes, write_bytes)
                 + _register_energy_pj(hw, design, per_einsum))
    time_s = latency_cycles / clock
    return {"design": design.name, "hardware": hw.name, "cascade": workload.name, "time_s": time_s,
            "energy_j": energy_pj * 1e-12,
            "bytes": {"dram": dram_bytes, "dram_read": read_bytes, "dram_write": write_bytes},
            "utilization": {a: busy[a] / latency_cycles for a in arrays},
            "compute_s": {a: busy[a] / clock for a in arrays}, "per_einsum": per_einsum, **extra}


def _spill_accesses(workload: Workload, placed: dict, softmax: str) -> tuple[int, int]:
    """(reads, writes) of DRAM a spilled score costs: the reads and the writes of M × P tensors by the Einsums on
    the array that holds the softmax (``softmax_array``), plus the write of the score matrix itself. The 3-pass
    cascade: GM, SN, SD and A read QK or SN (4 reads), SN and A are written, and QK (3 writes)."""
    cascade = workload.cascade
    reads, writes = 0, 1
    for einsum in cascade.einsums:
        if placed.get(einsum.output.name) != softmax:
            continue
        for ref in einsum.reads:
            if {"M", "P"} <= {cascade.canonical_rank(rank_of(v)) for v in ref.variables}:
                reads += 1
        if {"M", "P"} <= {cascade.canonical_rank(rank_of(v)) for v in einsum.output.variables}:
            writes += 1
    return reads, writes


def _phase_words(workload: Workload, phase: list[str], sizes: dict) -> tuple[float, float]:
    """(read, written) words of a phase: every tensor it reads that another phase (or the outside) produced,
    read once, and every tensor it writes that another phase reads or that leaves the cascade, written once."""
    bound = workload.bind(sizes)
    tensors = bound.tensors
    cascade = workload.cascade
    written = {e.output.name for e in cascade.einsums if e.output.name in phase}
    read = {r.name for e in cascade.einsums if e.output.name in phase for r in e.reads}
    outside_reads = {r.name for e in cascade.einsums if e.output.name not in phase for r in e.reads}
    reads = sum(tensors[n].elements for n in read - written)
    writes = sum(tensors[n].elements for n in written if n in outside_reads or n in cascade.outputs)
    return reads, writes


def layer_gemms(model: ModelSpec, tokens: int) -> list[tuple[str, int, int, int]]:
    """(name, rows, columns, reduction) of one transformer layer's GEMMs besides attention, from the model's
    shape (H query heads, Hkv key/value heads of d, hidden D, MLP width I; T = batch · seq tokens):

        q_proj  T × H·d × D          k_proj, v_proj  T × Hkv·d × D         o_proj  T × D × H·d
        ffn_gate (gated MLP only), ffn_up  T × I × D                       ffn_down  T × D × I

    For the FuseMax paper's shapes (multi-head attention, H·d = D, a two-matrix FFN: reference/fusemax.md,
    end-to-end layer) the four projections are T × D × D. Grouped-query models (Qwen3, whose config.json gives
    H, Hkv, d, D and I) have smaller K and V projections, H·d may differ from D (Qwen3-0.6B: 16 · 128 = 2048 vs
    1024), and their gated MLP (SwiGLU, Shazeer 2020, "GLU Variants Improve Transformer":
    down(silu(gate·x) ⊙ up·x)) adds the gate matrix; MACs per GEMM = rows · columns · reduction."""
    h, d, kv, hidden, width = model.heads, model.head_dim, model.key_value_heads, model.hidden, model.intermediate
    gemms = [("q_proj", tokens, h * d, hidden), ("k_proj", tokens, kv * d, hidden),
             ("v_proj", tokens, kv * d, hidden), ("o_proj", tokens, hidden, h * d)]
    if model.gated_mlp:
        gemms.append(("ffn_gate", tokens, width, hidden))
    return gemms + [("ffn_up", tokens, width, hidden), ("ffn_down", tokens, hidden, width)]


def gemm_on_array(hw: HardwareSpec, design: DesignSpec, rows: int, cols: int, reduction: int,
                  dtype: str = "fp16") -> dict:
    """A GEMM on the 2D array (``two_d_array``), output-stationary: each mesh-sized output tile stays in the array
    while the reduction streams through, ``reduction`` / ops_per_cycle cycles per tile, so
    cycles = ceil(rows / mesh[0]) · ceil(cols / mesh[1]) · reduction / ops_per_cycle; the operands are read from
    DRAM and the product written to it once; latency max(compute, traffic / bandwidth); the same PE dataflow on
    every design (GEMM_RF_ACCESSES_PER_MAC, charged where the array has a register file)."""
    array = two_d_array(hw, design)
    unit = hw.compute[array]
    mesh = unit.mesh
    cycles = math.ceil(rows / mesh[0]) * math.ceil(cols / mesh[-1]) * reduction / unit.ops_per_cycle
    word = dtype_bytes(dtype)
    read_bytes, write_bytes = word * (rows * reduction + reduction * cols), word * rows * cols
    dram_bytes = read_bytes + write_bytes
    macs = rows * cols * reduction
    registers = {array: GEMM_RF_ACCESSES_PER_MAC} if register_level(hw, array) else {}
    same_mapping = design.model_copy(update={"rf_accesses_per_mac": registers})
    energy_pj = (macs * energy_per_point_pj(hw, array, {"mac": 1})
                 + _traffic_energy_pj(hw, read_bytes, write_bytes)
                 + _register_energy_pj(hw, same_mapping, [{"array": array, "macs": macs}]))
    time_s = max(cycles / hw.clock_hz, dram_bytes / hw.dram.bandwidth_bytes_per_s)
    return {"time_s": time_s, "energy_j": energy_pj * 1e-12, "bytes": dram_bytes, "macs": macs,
            "shape": [rows, cols, reduction]}


def predict_layer(design: DesignSpec, workload: Workload, hw: HardwareSpec, *, model: ModelSpec, batch: int,
                  seq: int, dtype: str = "fp16") -> dict:
    """One transformer layer: attention (the design) plus the projections and MLP (``layer_gemms``) as GEMMs on
    the 2D array, run one after another (the same mapping for every design, as in the paper's end-to-end
    comparison). Attention runs the model's H query heads of d; the spatial designs process each query head on
    its own, so under grouped-query attention each query head streams its K and V (no sharing of K/V traffic
    across a group). A mixture-of-experts MLP is not modelled (its routed GEMMs are not one dense GEMM)."""
    if model.experts > 1:
        raise SimlibInputError(model.source_file or model.name, model.file_key("experts"),
                               f"a whole layer models a dense MLP; this model routes tokens over {model.experts} "
                               f"experts (predict its attention alone: layer=false)")
    attention = predict_design(design, workload, hw, batch=batch, heads=model.heads, seq_q=seq, seq_kv=seq,
                               head_dim=model.head_dim, dtype=dtype)
    gemms = {name: gemm_on_array(hw, design, r, c, k, dtype) for name, r, c, k in layer_gemms(model, batch * seq)}
    return {"time_s": attention["time_s"] + sum(g["time_s"] for g in gemms.values()),
            "energy_j": attention["energy_j"] + sum(g["energy_j"] for g in gemms.values()),
            "bytes": {"dram": attention["bytes"]["dram"] + sum(g["bytes"] for g in gemms.values())},
            "attention": attention, "gemms": gemms}
