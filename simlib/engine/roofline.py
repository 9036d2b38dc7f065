"""Multi-unit roofline for an Einsum cascade on any hardware description.

Each Einsum's operations go to units (see :mod:`simlib.engine.units`); a group of Einsums takes
max over units u of (ops on u / rate of u) and over memory levels l of (bytes at l / bandwidth of l) — the
roofline of Williams et al. (CACM 2009) with one roof per unit and per level. Unfused execution makes every
Einsum its own group and sums them; fused execution is one group (see :mod:`simlib.engine.traffic`). An unfused
kernel that runs several Einsums (the workload's ``kernels``) runs them as loops one after another over a row:
its time is max(sum over its Einsums of their slowest unit, its DRAM bytes / bandwidth). An unfused kernel
writes its output into a new buffer: where the DRAM level gives a fresh-write bandwidth (pages zeroed on first
touch, measured on CPUs), an output from the allocator threshold on that is not written in place adds the page
zeroing, bytes x (1/fresh - 1/bandwidth), to the kernel's time (:func:`_page_fault_s_per_byte`).

Energy (Accelergy, Wu et al. ICCAD 2019): action counts x energy per action. The actions are each unit's
operations and, at DRAM and at the fused kernel's holding level, reads and writes of ``access_bits`` each:
E = sum over (unit, op) of count x energy_pj_per_op + sum over levels of (read bytes x 8 / access_bits) x
energy_pj_per_read + (write bytes x 8 / access_bits) x energy_pj_per_write (a level that gives no write energy
is charged its read energy for writes).
"""
from __future__ import annotations

from collections import defaultdict

from simlib.engine.prediction import EinsumCost, Prediction
from simlib.engine.traffic import Traffic, fused_traffic, kernel_groups, unfused_traffic
from simlib.engine.units import assign
from simlib.hardware.schema import HardwareSpec, MemoryLevel
from simlib.workload.cascade import PassAnalysis
from simlib.workload.workload import OPERATION_KINDS, BoundWorkload

FLOPS_PER_OP = {"mac": 2, "mul": 1, "add": 1, "max": 1, "exp": 1, "div": 1}


def _stream_candidates(bound: BoundWorkload) -> list[str]:
    """Ranks a fused kernel may stream, best guess first: the workload's ``stream_rank``; else its largest
    reduced rank (a reduction fixes which rank needs the passes); else, for a cascade of maps, every rank its
    Einsums iterate, largest first (canonical names, e.g. M for M1 and M0); empty when no Einsum iterates a rank."""
    spec_rank = bound.workload.spec.stream_rank
    if spec_rank:
        return [spec_rank]
    cascade = bound.cascade
    if cascade.reduced_ranks:
        return [max(cascade.reduced_ranks, key=lambda r: bound.rank_sizes[r])]
    return sorted(cascade.iterated_ranks, key=lambda r: -bound.rank_sizes[r])


def _stream_rank(bound: BoundWorkload) -> str | None:
    """The rank whose passes number the Einsums of an unfused prediction: the first of
    :func:`_stream_candidates` (an unfused kernel sequence moves the same bytes whichever it is)."""
    candidates = _stream_candidates(bound)
    return candidates[0] if candidates else None


def _fused_plan(bound: BoundWorkload, hw: HardwareSpec) -> tuple[PassAnalysis | None, Traffic]:
    """The stream rank's pass analysis and the fused kernel's traffic.

    A cascade of maps has no reduction to say which rank to stream: every Einsum runs in one pass whichever it is,
    but the DRAM traffic is not the same. Streaming rank R re-reads each input that lacks some row rank (a rank
    other than R that every Einsum iterates) once per chunk of rows (``Y[m,p] = X[m] * Z[p]`` streaming M re-reads X
    ceil(P / c) times and reads Z once; streaming P re-reads Z ceil(M / c) times). So every candidate is planned and
    the one moving the fewest DRAM bytes is kept (ties: the larger rank, then the order of first use). With a
    ``stream_rank`` or a reduced rank there is one candidate."""
    cascade = bound.cascade
    plans = []
    for rank in _stream_candidates(bound):
        analysis = cascade.pass_analysis(rank)
        plans.append((analysis, fused_traffic(bound, hw, analysis)))
    if not plans:
        return None, fused_traffic(bound, hw, None)
    return min(plans, key=lambda plan: plan[1].dram_bytes)


def _energy_j(hw: HardwareSpec, unit_ops: dict[tuple[str, str], float],
              level_traffic: list[tuple[MemoryLevel | None, float, float]]) -> float | None:
    """Action counts x energy per action (Accelergy style), when the hardware gives every energy needed.

    ``level_traffic`` lists (level, bytes read, bytes written); each is priced per access of ``access_bits``.
    """
    total_pj = 0.0
    for (unit, op), count in unit_ops.items():
        table = hw.compute[unit].energy_pj_per_op
        if count and (table is None or op not in table):
            return None
        total_pj += count * (table or {}).get(op, 0.0)
    for lvl, read_bytes, write_bytes in level_traffic:
        if lvl is None or not (read_bytes or write_bytes):
            continue
        if lvl.energy_pj_per_read is None or lvl.access_bits is None:
            return None
        per_write = lvl.energy_pj_per_write if lvl.energy_pj_per_write is not None else lvl.energy_pj_per_read
        total_pj += (read_bytes * lvl.energy_pj_per_read + write_bytes * per_write) * 8 / lvl.access_bits
    return total_pj * 1e-12


def _page_fault_s_per_byte(hw: HardwareSpec, dram_bw: float | None) -> float:
    """Seconds per byte written into newly mapped memory beyond a normal write: 1/fresh - 1/DRAM bandwidth, where
    the DRAM level gives a fresh-write bandwidth below its bandwidth (``simlib calibrate`` measures it as a pass
    into a new tensor, reading at the copy rate and writing the rest). The OS zeroes each new page on the core
    that first touches it, so this time adds to the kernel's rather than overlapping its arithmetic: a 32 MiB
    fp32 GEMM output costs its multiply plus the whole page zeroing on a CPU (measured: 24.6 ms fresh against
    9.6 ms into an existing tensor, 1024x64 by 64x1024 per head, 8 heads, on the 2-core host of traces/cpu)."""
    fresh = hw.dram.fresh_write_bandwidth_bytes_per_s
    if not fresh or not dram_bw or fresh >= dram_bw:
        return 0.0
    return 1 / fresh - 1 / dram_bw


def _fresh_output(bound: BoundWorkload, hw: HardwareSpec, index: int, write_bytes: float) -> bool:
    """Whether an unfused kernel's output lands in newly mapped memory: it is written to DRAM, reaches the
    allocator threshold (``fresh_write_min_bytes``; none: every output), and is not written in place into
    storage it reuses (its declaration's ``reuses``, checked by :meth:`Workload.bind` to be large enough)."""
    if not write_bytes or write_bytes < (hw.dram.fresh_write_min_bytes or 0):
        return False
    decl = bound.workload.spec.tensors.get(bound.cascade.einsums[index].output.name)
    return decl is None or decl.reuses is None


def predict_cascade(bound: BoundWorkload, hw: HardwareSpec, sustained: bool = False) -> Prediction:
    cascade = bound.cascade
    dtype = bound.compute_dtype
    fused = bound.execution == "fused"
    if fused:
        analysis, traffic = _fused_plan(bound, hw)
    else:
        stream = _stream_rank(bound)
        analysis = cascade.pass_analysis(stream) if stream else None
        traffic = unfused_traffic(bound, kernel_groups(bound, hw))
    dram_bw = hw.level_bandwidth(hw.dram, sustained)
    hold_bw = hw.level_bandwidth(traffic.holding_level, sustained) if traffic.holding_level else None

    costs: list[EinsumCost] = []
    unit_ops: dict[tuple[str, str], float] = defaultdict(float)
    total_ops = {k: 0 for k in OPERATION_KINDS}
    unit_times: dict[int, dict[str, float]] = {}
    units_of: dict[int, dict[str, str]] = {}
    for i in cascade.order:
        if cascade.einsums[i].kind in ("view", "init"):
            continue
        unit_time: dict[str, float] = defaultdict(float)
        units: dict[str, str] = {}
        for op, count in bound.operation_counts(i).items():
            if not count:
                continue
            total_ops[op] += count
            parts = assign(hw, op, dtype, cascade.einsums[i].kind == "contraction", sustained)
            units[op] = "+".join(sorted({u for u, *_ in parts}))
            for unit, sub_op, factor, rate in parts:
                unit_time[unit] += count * factor / rate
                unit_ops[(unit, sub_op)] += count * factor
        unit_times[i], units_of[i] = dict(unit_time), units
    fault_s_per_byte = 0.0 if fused else _page_fault_s_per_byte(hw, dram_bw)
    for members in traffic.kernels or [[i] for i in unit_times]:
        read = {i: traffic.read_bytes.get(i, 0.0) for i in members}
        write = {i: traffic.write_bytes.get(i, 0.0) for i in members}
        compute = {i: max(unit_times[i].values(), default=0.0) for i in members}
        moving = {i: (read[i] + write[i]) / dram_bw if dram_bw else 0.0 for i in members}
        fault = {i: write[i] * fault_s_per_byte if _fresh_output(bound, hw, i, write[i]) else 0.0 for i in members}
        # a kernel's loops run one after another; its memory traffic overlaps them; page faults are the cores' work
        overlapped = max(sum(compute.values()), sum(moving.values()))
        weight = {i: max(compute[i], moving[i]) for i in members}
        total_weight = sum(weight.values())
        for i in members:
            einsum = cascade.einsums[i]
            ops = bound.operation_counts(i)
            roofs = {**unit_times[i], hw.dram.name: moving[i]}     # page zeroing is added work, not a roof
            costs.append(EinsumCost(
                index=i, einsum=einsum.text, kind=einsum.kind,
                pass_number=analysis.einsum_pass.get(i, 0) if analysis else 1,
                ops=ops, flops=float(sum(FLOPS_PER_OP[k] * v for k, v in ops.items())), units=units_of[i],
                unit_time_s=unit_times[i], dram_read_bytes=read[i], dram_write_bytes=write[i],
                time_s=(overlapped * weight[i] / total_weight if total_weight else 0.0) + fault[i],
                bound=max(roofs, key=roofs.get)))
    costs.sort(key=lambda c: cascade.order.index(c.index))

    dram_bytes = sum(c.dram_read_bytes + c.dram_write_bytes for c in costs)
    unit_total: dict[str, float] = defaultdict(float)
    for cost in costs:
        for unit, t in cost.unit_time_s.items():
            unit_total[unit] += t
    level_time = {hw.dram.name: dram_bytes / dram_bw if dram_bw else 0.0}
    bytes_by_level = {"dram": dram_bytes}
    if traffic.holding_level is not None:
        bytes_by_level[traffic.holding_level.name] = traffic.on_chip_bytes
        if hold_bw:
            level_time[traffic.holding_level.name] = traffic.on_chip_bytes / hold_bw

    if not traffic.sequential:
        resources = {**unit_total, **level_time}
        bound_name = max(resources, key=resources.get)
        time_s = resources[bound_name]
    else:
        time_s = sum(c.time_s for c in costs)
        share: dict[str, float] = defaultdict(float)
        for cost in costs:
            share[cost.bound] += cost.time_s
        bound_name = max(share, key=share.get)
    flops_by_kind = {k: float(FLOPS_PER_OP[k] * v) for k, v in total_ops.items()}
    flops = sum(flops_by_kind.values())
    peak = hw.peak_flops(dtype)
    busy = {**unit_total, **level_time}
    return Prediction(
        workload=bound.workload.name, hardware=hw.name, execution=bound.execution,
        parameters=dict(bound.parameters), rank_sizes=dict(bound.rank_sizes), time_s=time_s, bound=bound_name,
        flops=flops, flops_by_kind=flops_by_kind, ops=total_ops, bytes=bytes_by_level,
        spill_bytes=traffic.spill_bytes,
        arithmetic_intensity=flops / dram_bytes if dram_bytes else float("inf"),
        fraction_of_peak=(flops_by_kind["mac"] / time_s) / peak if peak and time_s else None,
        unit_time_s=dict(unit_total), level_time_s=level_time,
        utilization={k: v / time_s if time_s else 0.0 for k, v in busy.items()},
        passes=cascade.pass_counts(),
        energy_j=_energy_j(hw, unit_ops, [
            (hw.dram, sum(c.dram_read_bytes for c in costs), sum(c.dram_write_bytes for c in costs)),
            (traffic.holding_level, traffic.on_chip_read_bytes, traffic.on_chip_write_bytes)]),
        breakdown=costs)
