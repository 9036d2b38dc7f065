"""The ``simlib`` command."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import List, Optional

import typer

from simlib.api import predict as predict_api
from simlib.cli.render import (hardware_detail, hardware_table, prediction_tables, print_tables, to_json,
                               workload_tables, model_table)
from simlib.cli.values import parse_settings
from simlib.errors import SimlibInputError
from simlib.models.attention_cli import predict_attention
from simlib.models.gna_cli import predict_gna_cli
from simlib.models.kinetics_cli import predict_tts
from simlib.models.spatial_cli import predict_fusemax
from simlib.hardware.catalog import hardware_names, load_hardware
from simlib.workload.workload import load_workload, workload_names

MODELS = {"attention": predict_attention, "gna": predict_gna_cli, "fusemax": predict_fusemax,
          "tts": predict_tts}
OWN_HARDWARE = {"fusemax"}      # models whose designs name their hardware

app = typer.Typer(help="Performance simulator and analytical models for attention.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
hardware_app = typer.Typer(help="Hardware catalog.", no_args_is_help=True)
workload_app = typer.Typer(help="Workload catalog (Einsum cascades).", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")
app.add_typer(workload_app, name="workload")


@contextmanager
def input_errors():
    """One line on stderr and exit status 2 for any bad input; never a traceback."""
    try:
        yield
    except SimlibInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    except OSError as exc:      # a path given on the command line that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(code=2) from None


@hardware_app.command("list")
def hardware_list(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the shipped hardware descriptions."""
    with input_errors():
        specs = [load_hardware(n) for n in hardware_names()]
    if json_out:
        typer.echo(to_json([{"name": h.name, "family": h.family, "description": h.description,
                             "peak_bf16_flops": h.peak_flops("bf16"),
                             "dram_bandwidth_bytes_per_s": h.dram.bandwidth_bytes_per_s} for h in specs]))
    else:
        print_tables([hardware_table(specs)])


@hardware_app.command("show")
def hardware_show(name: str = typer.Argument(..., help="Catalog name or path to a YAML file."),
                  json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")):
    """Show one hardware description."""
    with input_errors():
        hw = load_hardware(name)
    if json_out:
        typer.echo(to_json(hw.model_dump(mode="json")))
    else:
        print_tables(hardware_detail(hw))


@workload_app.command("list")
def workload_list():
    """List the shipped workloads."""
    with input_errors():
        names = workload_names()
        width = max(map(len, names), default=0)
        for name in names:
            typer.echo(f"{name:{width}s} {load_workload(name).spec.description}")


def _reused(wl, name: str) -> str | None:
    decl = wl.spec.tensors.get(name)
    return decl.reuses if decl else None


@workload_app.command("show")
def workload_show(name: str = typer.Argument(..., help="Catalog name or path to a YAML file."),
                  settings: Optional[List[str]] = typer.Option(None, "--set", help="Parameter as name=value."),
                  json_out: bool = typer.Option(False, "--json")):
    """Show a workload's Einsums with operation counts, its tensors with sizes, and its pass counts."""
    with input_errors():
        wl = load_workload(name)
        bound = wl.bind(parse_settings(settings))
        c = wl.cascade
        data = {"name": wl.name, "description": wl.spec.description, "parameters": bound.parameters,
                "rank_sizes": bound.rank_sizes, "passes": c.pass_counts(), "kernels": wl.spec.kernels,
                "tensors": [{"name": t.name, "role": t.role, "dtype": t.dtype, "elements": t.elements,
                             "bytes": t.bytes, "reuses": _reused(wl, t.name)} for t in bound.tensors.values()],
                "einsums": [{"einsum": e.text, "kind": e.kind,
                             "ops": {k: v for k, v in bound.operation_counts(i).items() if v}}
                            for i, e in enumerate(c.einsums)]}
    if json_out:
        typer.echo(to_json(data))
    else:
        print_tables(workload_tables(data))


@app.command()
def predict(workload: str = typer.Argument(..., help="Workload catalog name or path to a YAML file."),
            hardware: Optional[str] = typer.Option(None, "--hardware", "-H",
                                                   help="Hardware catalog name or YAML path (fusemax: the "
                                                        "design's own unless given)."),
            settings: Optional[List[str]] = typer.Option(None, "--set", help="Parameter as name=value."),
            sustained: bool = typer.Option(False, "--sustained", help="Use measured sustained rates where given."),
            json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Predict time, FLOPs, bytes per memory level and the bound of a workload on a device.

    WORKLOAD is a cascade (catalog name or YAML path) or a model: 'attention' (GPU attention kernels), 'gna'
    (generalized neighborhood attention), 'fusemax' (spatial accelerator designs), 'tts' (Kinetics
    test-time-scaling cost).
    """
    with input_errors():
        if hardware is None and workload not in OWN_HARDWARE:
            raise SimlibInputError("--hardware", None, f"predict {workload} needs --hardware (a catalog name "
                                                       f"such as a100, or a YAML path)")
        if sustained and workload in MODELS:    # the models use peak rates: the flag would be silently ignored
            raise SimlibInputError("--sustained", None, f"applies to cascade workloads (a workload catalog name or "
                                                        f"YAML path) only; the {workload} model has no sustained "
                                                        f"mode, expected no --sustained")
        if workload in MODELS:
            data = MODELS[workload](load_hardware(hardware) if hardware else None, parse_settings(settings))
        else:
            result = predict_api(workload, hardware, sustained=sustained, **parse_settings(settings))
    if workload in MODELS:
        typer.echo(to_json(data)) if json_out else print_tables([model_table(workload, data)])
        return
    if json_out:
        typer.echo(to_json(result.to_dict()))
    else:
        print_tables(prediction_tables(result))


@app.command()
def figure(name: str = typer.Argument(..., help="Figure set: 'attention', 'gna', 'fusemax' or 'tts'."),
           hardware: Optional[str] = typer.Option(None, "--hardware", "-H",
                                                  help="attention: a100 unless given; gna: h100; tts: b200; "
                                                       "fusemax: the designs' own."),
           settings: Optional[List[str]] = typer.Option(None, "--set", help="gna only: shape (default 256x256), "
                                                                            "window (default 80x80), stride, "
                                                                            "dilation, causal, q_tile, kv_tile, "
                                                                            "batch, heads, head_dim, dtype."),
           out: str = typer.Option("reports/figures", "--out", help="Folder for the PNG files.")):
    """Draw a figure set into a folder (attention: TFLOP/s vs sequence length, HBM bytes vs block size; gna:
    speedup vs stride, one Q tile's visited KV tiles; fusemax: speedups, energy, utilization, per-Einsum
    cycles and the PE-array Pareto sweep)."""
    from pathlib import Path

    from simlib.plots.attention_figures import bytes_vs_block_size, throughput_vs_sequence
    from simlib.plots.gna_figures import speedup_vs_stride, visited_tiles_2d
    defaults = {"attention": "a100", "gna": "h100", "tts": "b200"}
    with input_errors():
        if name == "fusemax" and hardware is not None:
            raise SimlibInputError(None, "--hardware", "the fusemax figures run each design on its own hardware")
        if settings and name != "gna":
            raise SimlibInputError(None, "--set", f"the {name} figures take no settings (only gna does)")
        hw = load_hardware(hardware or defaults.get(name, "a100"))
        folder = Path(out)
        if name == "attention":
            figures = {f"tflops_vs_seq_{hw.name}": throughput_vs_sequence(hw),
                       f"hbm_bytes_vs_block_{hw.name}": bytes_vs_block_size(hw)[0]}
        elif name == "gna":
            from simlib.models.gna import default_tile_shape
            from simlib.models.gna_cli import figure_parameters
            p = figure_parameters(hw, parse_settings(settings))
            figures = {f"gna_speedup_vs_stride_{hw.name}": speedup_vs_stride(
                hw, p["shape"], p["window"], p["q_tile"], p["kv_tile"], p["heads"], p["head_dim"],
                dilation=p["dilation"], causal=p["causal"], batch=p["batch"], dtype=p["dtype"])[0]}
            if len(p["shape"]) == 2:
                q = p["q_tile"] or default_tile_shape(hw.fmha_tile.q_tokens, 2)
                kv = p["kv_tile"] or default_tile_shape(hw.fmha_tile.kv_tokens, 2)
                figures[f"gna_visited_tiles_{hw.name}"] = visited_tiles_2d(
                    p["shape"], p["window"], p["stride"], q, kv, dilation=p["dilation"], causal=p["causal"])[0]
        elif name == "tts":
            from simlib.models.kinetics_cli import default_intensity
            from simlib.plots.tts_figures import cost_vs_length_figure, sparse_vs_dense_figure
            intensity = default_intensity(hw, "fp8" if hw.peak_flops("fp8") else "bf16")
            figures = {f"tts_cost_vs_length_{hw.name}": cost_vs_length_figure(intensity),
                       f"tts_dense_vs_blocktopk_{hw.name}": sparse_vs_dense_figure(intensity)}
        elif name == "fusemax":
            from simlib.plots.fusemax_figures import fusemax_report
            written = fusemax_report(folder)
            typer.echo("wrote " + ", ".join(str(p) for p in written))
            return
        else:
            raise SimlibInputError(None, "figure", f"unknown figure set {name!r} (expected: attention, gna, "
                                                   f"fusemax, tts)")
        folder.mkdir(parents=True, exist_ok=True)
        for stem, fig in figures.items():
            fig.savefig(folder / f"{stem}.png", dpi=120)
    typer.echo("wrote " + ", ".join(f"{folder}/{stem}.png" for stem in figures))


@app.command()
def frontier(name: str = typer.Argument(..., help="Frontier: 'tts' (cost-accuracy of test-time scaling)."),
             csv_path: str = typer.Option(..., "--csv", help="Accuracy table: model, strategy, samples, gen_len, "
                                                             "accuracy (optional: prompt_len, intensity, attention, "
                                                             "...; one accuracy scale, 0-1 or %)."),
             hardware: str = typer.Option("b200", "--hardware", "-H"),
             dtype: str = typer.Option("fp8", "--dtype", help="Sets the intensity: peak FLOP/s / HBM bandwidth."),
             intensity: Optional[float] = typer.Option(None, "--intensity", help="FLOP per byte, overrides."),
             prompt_len: int = typer.Option(1000, "--prompt-len", help="Where the table gives none."),
             out: Optional[str] = typer.Option(None, "--out", help="Folder for the frontier plot."),
             json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON.")):
    """Price each row of an accuracy table in eFLOPs and mark the cost-accuracy Pareto frontier per model."""
    from simlib.cli.render import frame_table
    from simlib.models.kinetics_cli import default_intensity
    from simlib.plots.tts_figures import frontier_figure, frontier_table
    with input_errors():
        if name != "tts":
            raise SimlibInputError(None, "frontier", f"unknown frontier {name!r} (expected: tts)")
        if intensity is not None and not 0 < intensity < float("inf"):      # NaN and inf refused too
            raise SimlibInputError(None, "--intensity", f"expected a finite FLOP per byte > 0, got {intensity}")
        if prompt_len <= 0:
            raise SimlibInputError(None, "--prompt-len", f"expected a positive token count, got {prompt_len}")
        value = intensity or default_intensity(load_hardware(hardware), dtype)
        table = frontier_table(csv_path, value, prompt_len)
    if out:
        from pathlib import Path
        with input_errors():
            Path(out).mkdir(parents=True, exist_ok=True)
            frontier_figure(table).savefig(Path(out) / "tts_frontier.png", dpi=120)
    if json_out:
        typer.echo(to_json(table.to_dict(orient="records")))
    else:
        print_tables([frame_table(f"tts cost-accuracy (I = {value:.4g} FLOP/B)", table)])


@app.command()
def sweep(spec: str = typer.Argument(..., help="Sweep spec YAML: workload, hardware, axes, fixed, constraints."),
          out: str = typer.Option(..., "--out", help="Parquet file; finished chunks are kept in OUT.parts."),
          processes: int = typer.Option(0, "--processes", help="Local worker processes (0: this process); with "
                                                               "--scheduler local, its worker count (default 2)."),
          scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                  help="A Dask scheduler address, or 'local' for a LocalCluster."),
          quiet: bool = typer.Option(False, "--quiet", help="No progress bar.")):
    """Evaluate every point of a sweep spec into Parquet (resumable: a re-run skips finished chunks)."""
    from simlib.sweeps.run import run_sweep
    with input_errors():
        try:
            result = run_sweep(spec, out=out, processes=processes, scheduler=scheduler, progress=not quiet)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: finished chunks kept in {out}.parts; run again to resume", err=True)
            raise typer.Exit(code=130) from None
    typer.echo(f"wrote {len(result)} rows to {out}")


@app.command()
def report(source: str = typer.Argument(..., help="A sweep's results (.parquet) or a sweep spec (YAML)."),
           out: str = typer.Option(..., "--out", help="Folder for index.html and its PNGs."),
           metric: Optional[str] = typer.Option(None, "--metric", help="The column ranked and plotted "
                                                                      "(default: time_s; eflops for tts sweeps).")):
    """An HTML report of a sweep: rooflines, the best configurations per hardware, sensitivity per axis."""
    from simlib.report import build_report
    with input_errors():
        index = build_report(source, out, metric)
    typer.echo(f"wrote {index}")


@app.command()
def search(name: str = typer.Argument(..., help="Search: 'gna' (strides, dilations and tile shapes)."),
           hardware: str = typer.Option(..., "--hardware", "-H", help="Hardware catalog name or YAML path."),
           settings: Optional[List[str]] = typer.Option(None, "--set", help="Parameter as name=value."),
           top: int = typer.Option(20, "--top", min=1, help="How many configurations to list."),
           block_sparse_only: bool = typer.Option(False, "--block-sparse-only",
                                                  help="Only configurations whose mask is fully block-sparse."),
           json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON.")):
    """List the configurations with the best predicted speedups over dense self attention.

    No configuration meeting --block-sparse-only is a valid answer, not an input error: the table (or JSON
    list) is empty, stderr says why, and the exit status is 0."""
    from simlib.cli.render import frame_table
    from simlib.models.gna_cli import search_gna_cli
    with input_errors():
        if name != "gna":
            raise SimlibInputError(None, "search", f"unknown search {name!r} (expected: gna)")
        table = search_gna_cli(load_hardware(hardware), parse_settings(settings), top, block_sparse_only)
    if table.empty:
        typer.echo("no configuration met --block-sparse-only: no stride, dilation and tile pair searched makes "
                   "this mask fully block-sparse", err=True)
    if json_out:
        typer.echo(to_json(table.to_dict(orient="records")))
    else:
        print_tables([frame_table(f"gna on {hardware}: best configurations", table)])


def _warn_hardware_mismatch(trace, hardware) -> None:
    """--hardware other than the part a trace was measured on is allowed, with a warning on stderr."""
    from simlib.validation.traces import hardware_mismatch
    if mismatch := hardware_mismatch(trace, hardware):
        typer.echo(f"warning: {mismatch}", err=True)


@app.command()
def validate(name: str = typer.Argument(..., help="A trace file (CSV or Parquet), 'all' (every trace under "
                                                  "traces/), or a named set: 'attention' (FlashAttention-2/3 TFLOP/s "
                                                  "on H100), 'gna' (NATTEN kernel times), 'fusemax' (the artifact's "
                                                  "rows)."),
             hardware: Optional[str] = typer.Option(None, "--hardware", "-H",
                                                    help="Hardware for every row (default: the trace's own)."),
             tolerance: float = typer.Option(0.25, "--tolerance", help="Relative error counted as a match."),
             out: Optional[str] = typer.Option(None, "--out", help="Write the per-row errors (.csv or .parquet)."),
             report: str = typer.Option("validation-report", "--report",
                                        help="Folder for the predicted-vs-measured and error-vs-size plots."),
             no_report: bool = typer.Option(False, "--no-report", help="Draw no plots."),
             json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON.")):
    """Set predictions against measurements: a trace, every shipped trace, or a named published set."""
    from pathlib import Path

    import pandas as pd

    from simlib.cli.render import frame_table
    from simlib.validation import attention_throughput, fusemax_rows, gna_runtime
    from simlib.validation.traces import (TRACE_DIR, compute_bound_half, mape_by_group, trace_plots,
                                          validate_trace)
    named = {"attention": attention_throughput, "gna": gna_runtime, "fusemax": fusemax_rows}
    tables = {"attention": attention_throughput.throughput_table, "gna": gna_runtime.gna_runtime_table,
              "fusemax": fusemax_rows.fusemax_table}
    with input_errors():
        if name == "fusemax" and hardware is not None:
            raise SimlibInputError(None, "--hardware", "the fusemax rows run each design on its own hardware, as in "
                                                       "the artifact")
        if name == "all":
            paths = sorted([*TRACE_DIR.rglob("*.csv"), *TRACE_DIR.rglob("*.parquet")])
        elif name in tables:
            paths = []
            _warn_hardware_mismatch(TRACE_DIR / named[name].TRACE, hardware)
            table = tables[name](hardware or "h100")
        elif Path(name).suffix in (".csv", ".parquet") or Path(name).exists():
            paths = [Path(name)]
        else:
            raise SimlibInputError(None, "validate", f"unknown validation set {name!r} (expected a trace file, "
                                                     f"all, {', '.join(tables)})")
        labels = {path: _trace_label(path, paths, TRACE_DIR) for path in paths}
        for path in paths:
            _warn_hardware_mismatch(path, hardware)
        if paths:
            parts = []
            for path in paths:
                part = validate_trace(path, hardware)
                part = part.drop(columns="trace", errors="ignore")     # a trace written by validate --out has one
                part.insert(0, "trace", labels[path])
                parts.append(part)
            table = pd.concat(parts, ignore_index=True)
        # a named set is a shipped trace read through its own table; its errors CSV and plots come from that trace
        rows = table if paths else validate_trace(TRACE_DIR / named[name].TRACE, hardware).assign(trace=name)
        if out is not None:  # fusemax: the printed rows (energy, utilization, traffic too), not the latency trace's
            _write_errors(table if name == "fusemax" else rows, out,
                          paths or [TRACE_DIR / named[name].TRACE])
        drawn = []
        if not no_report:
            drawn = [p for label in rows["trace"].unique()
                     for p in trace_plots(rows[rows["trace"] == label], report, label.replace("/", "_"))]
    if json_out:
        typer.echo(to_json(table.to_dict(orient="records")))
        return
    if paths:
        shown = [c for c in ("trace", "op", "backend", "dtype", "batch", "heads", "seq_q", "seq_kv", "head_dim", "m",
                             "n", "k", "measured_s", "predicted_s", "error") if c in table.columns]
        print_tables([frame_table(f"{name}: predicted vs measured", table[shown])])
        summary = pd.concat([mape_by_group(table[table["trace"] == labels[p]]).assign(trace=labels[p])
                             for p in paths], ignore_index=True)
        print_tables([frame_table("MAPE per op and backend", summary[["trace", *summary.columns[:-1]]])])
        heavy = compute_bound_half(table)
        for trace in table["trace"].unique():
            errors = table["error"].abs()[heavy & (table["trace"] == trace).to_numpy()]
            if len(errors):
                typer.echo(f"{trace}: compute-bound half (GEMM and attention rows of highest arithmetic intensity "
                           f"per op and backend): {int((errors <= 0.3).sum())} of {len(errors)} within 30%, "
                           f"MAPE {errors.mean():.1%}")
    else:
        print_tables([frame_table(f"{name}: predicted vs published", table)])
    # the published attention set is compared in TFLOP/s (its own error column); every other table in time
    metric, what = ("tflops_error", " (TFLOP/s)") if "tflops_error" in table else ("error", "")
    within = int((table[metric].abs() <= tolerance).sum())
    typer.echo(f"{within} of {len(table)} rows within {tolerance:.0%}{what}; "
               f"median |error| {table[metric].abs().median():.1%}")
    if drawn:
        typer.echo(f"plots: {', '.join(str(p) for p in drawn)}")


def _write_errors(frame, out: str, read) -> None:
    """``validate --out``: CSV or Parquet by its suffix, its folder created, and never one of the traces read."""
    from pathlib import Path

    from simlib.measure.runner import check_writable
    path = Path(out)
    if not out.strip():
        raise SimlibInputError(None, "--out", "empty; expected a .csv or .parquet file")
    check_writable(path, "--out", (".csv", ".parquet"), "errors")
    if any(path.resolve() == Path(p).resolve() for p in read):
        raise SimlibInputError(str(path), "--out", "is a trace being validated; expected another file for the errors")
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _trace_label(path, paths, trace_dir) -> str:
    """A trace's name in tables and plot files: its stem, or its path under ``traces/`` (without the suffix)
    when two of the traces validated together share a stem."""
    from pathlib import Path
    path = Path(path)
    if sum(Path(p).stem == path.stem for p in paths) == 1:
        return path.stem
    try:
        return str(path.resolve().relative_to(Path(trace_dir).resolve()).with_suffix(""))
    except ValueError:
        return str(path.with_suffix(""))


@app.command()
def measure(grid: Optional[str] = typer.Argument(None, help="Grid YAML: attention, unfused, gemm, decode sections."),
            out: str = typer.Option(..., "--out", help="Trace to write, .csv or .parquet (rewritten after every "
                                                       "case)."),
            settings: Optional[List[str]] = typer.Option(
                None, "--set", help="A grid field as section.field=v1,v2 (attention.seq=256,512, gemm.size=512, "
                                    "repeats=3); with GRID, overrides its field; without, the whole grid."),
            hardware: Optional[str] = typer.Option(None, "--hardware", "-H",
                                                   help="The hardware YAML this machine is described by (recorded "
                                                        "in the trace for validate); or give --calibrate."),
            profile: bool = typer.Option(False, "--profile", help="Also a torch.profiler Chrome trace."),
            calibrate_out: Optional[str] = typer.Option(
                None, "--calibrate", help="Also run simlib calibrate's probes in every round and write this "
                                          "hardware YAML from them; the trace then names it.")):
    """Time attention and GEMMs with torch on this machine (needs torch 2.13.0, simlib's torch extra)."""
    from simlib.measure.grid import load_grid
    from simlib.measure.runner import measure as run_measure
    with input_errors():
        if (hardware is None) == (calibrate_out is None):
            raise SimlibInputError(None, "--hardware", "name the hardware YAML of this machine, or give --calibrate "
                                                       "to write one in the same run (not both)")
        if grid is None and not settings:
            raise SimlibInputError(None, "GRID", "give a grid YAML, or the grid as --set section.field=values")
        try:
            rows = run_measure(load_grid(grid, parse_settings(settings)), out, hardware, profile=profile,
                               echo=_progress_echo, calibrate_out=calibrate_out)
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None
    _progress_echo(f"wrote {rows} rows to {out}")


def _progress_echo(message: str) -> None:
    """A progress line on stdout; when the reader has gone (``| head``), the measurement goes on without them."""
    import os
    import sys
    try:
        typer.echo(message)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@app.command()
def calibrate(out: str = typer.Option(..., "--out", help="Hardware YAML to write."),
              name: Optional[str] = typer.Option(None, "--name", help="Name in the YAML (default: from the device)."),
              quick: bool = typer.Option(False, "--quick", help="Small sizes: seconds, noisier.")):
    """Measure this machine's sustained GEMM, memory, elementwise and exp rates into a hardware YAML."""
    from simlib.measure.calibrate import calibrate as run_calibrate
    with input_errors():
        result = run_calibrate(out, name=name, quick=quick, echo=typer.echo)
    typer.echo(f"wrote {result['path']} (name {result['name']})")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
