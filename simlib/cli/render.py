"""Rich tables and JSON for the CLI."""
from __future__ import annotations

import json
import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simlib.engine.prediction import Prediction
from simlib.hardware.schema import HardwareSpec


def si(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value == 0:
        return f"0 {unit}".strip()
    exponent = min(max(int(math.floor(math.log10(abs(value)) / 3)), -4), 5)
    prefix = {-4: "p", -3: "n", -2: "µ", -1: "m", 0: "", 1: "k", 2: "M", 3: "G", 4: "T", 5: "P"}[exponent]
    return f"{value / 10 ** (3 * exponent):.4g} {prefix}{unit}".strip()


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_json(data) -> str:
    return json.dumps(_clean(data), indent=2)


def hardware_table(specs: list[HardwareSpec]) -> Table:
    table = Table(title="Hardware catalog")
    for column in ("name", "family", "description", "peak bf16", "DRAM bandwidth", "units"):
        table.add_column(column)
    for hw in specs:
        table.add_row(hw.name, hw.family, hw.description, si(hw.peak_flops("bf16"), "FLOP/s"),
                      si(hw.dram.bandwidth_bytes_per_s, "B/s"), ", ".join(hw.compute))
    return table


def hardware_detail(hw: HardwareSpec) -> list[Table]:
    units = Table(title=f"{hw.name}: {hw.description} — clock {hw.clock_ghz} GHz"
                        + (f", {hw.processors.count} {hw.processors.kind}s" if hw.processors else ""))
    for column in ("unit", "kind", "operations", "rate per dtype (MAC = 2 FLOP)"):
        units.add_column(column)
    for name, unit in hw.compute.items():
        dtypes = hw.unit_dtypes(unit) or ["any"]
        per_slot = 2 if "mac" in unit.operations else 1        # a MAC slot is 2 FLOPs; an exp slot one op
        rates = ", ".join(f"{d}: {si(per_slot * (hw.issue_rate(name, d if d != 'any' else 'fp32') or 0), 'op/s')}"
                          for d in dtypes)
        units.add_row(name, unit.kind, ", ".join(unit.operations), rates)
    memory = Table(title="memory levels (outside in)")
    for column in ("level", "kind", "capacity (total)", "bandwidth", "instances"):
        memory.add_column(column)
    for level in hw.memory:
        memory.add_row(level.name, level.kind, si(hw.level_capacity_bytes(level), "B"),
                       si(level.bandwidth_bytes_per_s, "B/s"), str(hw.level_instances(level)))
    return [units, memory]


def prediction_tables(p: Prediction) -> list[Table]:
    summary = Table(title=f"{p.workload} on {p.hardware} ({p.execution})", show_header=False)
    summary.add_column("quantity")
    summary.add_column("value")
    rows = [("time", si(p.time_s, "s")), ("bound", p.bound), ("FLOPs", si(p.flops, "FLOP")),
            ("achieved", si(p.flops / p.time_s if p.time_s else 0, "FLOP/s")),
            ("fraction of peak", f"{p.fraction_of_peak:.3f}" if p.fraction_of_peak is not None else "-"),
            ("arithmetic intensity", f"{p.arithmetic_intensity:.4g} FLOP/B")]
    rows += [(f"bytes {k}", si(v, "B")) for k, v in p.bytes.items()]
    rows += [("spilled bytes", si(p.spill_bytes, "B")),
             ("passes", ", ".join(f"{k}: {v}" for k, v in p.passes.items()))]
    if p.energy_j is not None:
        rows.append(("energy", si(p.energy_j, "J")))
    if p.speedup is not None:
        rows.append((f"speedup vs {p.baseline['workload']} ({p.baseline['execution']})", f"{p.speedup:.3g}x"))
    for row in rows:
        summary.add_row(*row)
    breakdown = Table(title="per-Einsum breakdown")
    for column in ("einsum", "kind", "pass", "FLOPs", "units", "DRAM bytes", "time", "bound"):
        breakdown.add_column(column)
    for c in p.breakdown:
        breakdown.add_row(escape(c.einsum), c.kind, str(c.pass_number), si(c.flops), ", ".join(sorted(set(c.units.values()))),
                          si(c.dram_read_bytes + c.dram_write_bytes, "B"), si(c.time_s, "s"), c.bound)
    return [summary, breakdown]


def workload_tables(data: dict) -> list[Table]:
    head = Table(title=f"{data['name']}: {data['description']}", show_header=False)
    head.add_column("quantity")
    head.add_column("value")
    head.add_row("rank sizes", ", ".join(f"{k}={v}" for k, v in data["rank_sizes"].items()))
    head.add_row("passes", ", ".join(f"{k}: {v}" for k, v in data["passes"].items()))
    if data["kernels"]:
        head.add_row("unfused kernels of several Einsums", "; ".join(" + ".join(g) for g in data["kernels"]))
    tensors = Table(title="tensors")
    for column in ("tensor", "role", "dtype", "elements", "bytes"):
        tensors.add_column(column)
    for t in data["tensors"]:
        role = f"{t['role']} (in place of {t['reuses']})" if t["reuses"] else t["role"]
        tensors.add_row(t["name"], role, t["dtype"], str(t["elements"]), si(t["bytes"], "B"))
    einsums = Table(title="einsums")
    for column in ("einsum", "kind", "operations"):
        einsums.add_column(column)
    for e in data["einsums"]:
        einsums.add_row(escape(e["einsum"]), e["kind"], ", ".join(f"{k}: {v}" for k, v in e["ops"].items()))
    return [head, tensors, einsums]


def summary_table(title: str, data: dict) -> Table:
    """Name / value rows of a flat result; times, FLOPs and bytes in SI units."""
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value")
    for key, value in data.items():
        if key.endswith("_s") and isinstance(value, float):
            text = si(value, "s")
        elif key.endswith("_flops") and isinstance(value, float):
            text = si(value, "FLOP")
        elif isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, list):
            text = "x".join(str(v) for v in value)
        else:
            text = str(value)
        table.add_row(key, text)
    return table


def model_table(model: str, data: dict | list[dict]) -> Table:
    if model == "gna":
        return summary_table(f"gna on {data['hardware']}", data)
    if model == "tts":
        flat = {k: v for k, v in data.items() if k not in ("prefill", "per_gen_len", "parameters")}
        flat.update({f"prefill_{k}": v for k, v in data["prefill"].items()})
        return summary_table(f"tts: {data['model']} on {data['hardware']}", flat)
    if model == "fusemax":
        flat = {k: v for k, v in data.items() if k not in ("per_einsum", "parameters", "bytes", "utilization",
                                                             "compute_s", "gemms")}
        flat.update({"bytes_dram": float(data["bytes"]["dram"]),
                     **{f"utilization_{a}": u for a, u in data["utilization"].items()},
                     **{f"{name}_time_s": g["time_s"] for name, g in data.get("gemms", {}).items()}})
        return summary_table(f"{data['design']} on {data['hardware']}", flat)
    rows = data if isinstance(data, list) else [data]
    table = Table(title=f"{model} on {rows[0]['hardware']}")
    columns = ["kernel", "time", "TFLOP/s", "matmul FLOPs", "exp ops", "other ops", "HBM bytes", "block_q",
               "block_kv", "SRAM/block", "blocks", "waves", "bound"]
    if "speedup" in rows[0]:
        columns.append(f"speedup vs {rows[0]['kernel']}")
    for column in columns:
        table.add_column(column)
    for r in rows:
        sram = (r.get("smem_bytes_per_block") or 0) + (r.get("register_bytes_per_block") or 0)
        cells = [r["kernel"], si(r["time_s"], "s"), f"{r['tflops']:.1f}", f"{r['flops']:.3g}",
                 f"{r.get('exp_ops', 0):.3g}", f"{r.get('other_ops', 0):.3g}", si(r["bytes"]["dram"], "B"),
                 str(r["block_q"] or "-"), str(r["block_kv"] or "-"), si(sram, "B") if sram else "-",
                 f"{r['thread_blocks']:.0f}" if r.get("thread_blocks") else "-", str(r["waves"] or "-"), r["bound"]]
        if "speedup" in r:
            cells.append(f"{r['speedup']:.2f}x")
        table.add_row(*cells)
    return table


def frame_table(title: str, frame) -> Table:
    """A pandas DataFrame as a rich table: floats to 3 significant digits, columns named 'error' (or ending in
    '_error') in percent."""
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            if column == "error" or column.endswith("_error"):
                cells.append(f"{value:+.1%}")
            elif isinstance(value, float):
                cells.append(f"{value:.3g}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    return table


def print_tables(tables: list[Table]) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    for table in tables:
        console.print(table)
