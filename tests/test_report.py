"""HTML reports: every image the page shows exists and is non-empty, the plots label their axes with units,
the tables list the best configuration per hardware; bad input exits 2. (Rendering: open index.html in any
browser, e.g. `chromium --headless --screenshot index.html`; no server is needed.)"""
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from simlib import plot
from simlib.hardware import load_hardware

SPEC = """workload: attention
hardware: [a100, h100]
axes:
  seq: [1024, 4096]
  block_q: [64, 128]
fixed: {heads: 16, head_dim: 128, batch: 2, dtype: bf16, kernel: flash2, block_kv: 64, causal: false}
"""


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "table":
            self.tables += 1


def run(*args):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True)


def test_report_from_a_spec(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = run("report", str(spec), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    page = _Images()
    page.feed((tmp_path / "report" / "index.html").read_text())
    assert {"roofline_a100.png", "roofline_h100.png", "sensitivity_seq.png", "sensitivity_block_q.png"} <= \
        set(page.images)
    for image in page.images:
        assert (tmp_path / "report" / image).stat().st_size > 5_000
    assert page.tables == 1 and "a100" in (tmp_path / "report" / "index.html").read_text()


def test_plots_label_axes_with_units():
    frame = pd.DataFrame({"flops": [1e12, 2e12], "bytes_dram": [1e9, 1e8], "time_s": [0.01, 0.005]})
    ax = plot.roofline(load_hardware("h100"), frame).axes[0]
    assert "FLOP/byte" in ax.get_xlabel() and "TFLOP/s" in ax.get_ylabel()


def test_pareto_front_by_hand():
    frame = pd.DataFrame({"x": [1, 2, 3, 4], "y": [5, 3, 4, 1]})
    assert plot.pareto_front(frame, "x", "y")["x"].tolist() == [1, 2, 4]


def test_report_bad_input(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = run("report", str(spec), "--out", str(tmp_path / "r"), "--metric", "joy")
    assert out.returncode == 2 and "no 'joy' column" in out.stderr
    out = run("report", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "r"))
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_report_refuses_results_it_cannot_draw(tmp_path):
    import subprocess
    import sys

    import pandas as pd
    pd.DataFrame({"seq": [1, 2], "time_s": [1.0, 2.0]}).to_parquet(tmp_path / "nohw.parquet")
    pd.DataFrame({"seq": [1, 2], "time_s": [float("nan")] * 2, "hardware": ["a100"] * 2}).to_parquet(
        tmp_path / "empty.parquet")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    for name, fragment in (("nohw.parquet", "no 'hardware' column"), ("empty.parquet", "has no values"),
                           ("x.csv", "expected a sweep's results"), ("missing.parquet", "no such file")):
        out = subprocess.run([sys.executable, "-m", "simlib.cli.main", "report", str(tmp_path / name), "--out",
                              str(tmp_path / "r")], capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr


FUSEMAX_ROWS = pd.DataFrame({      # FLAT and unfused both ran on flat; times chosen so no two designs agree
    "hardware": ["fusemax", "flat", "flat"] * 2, "design": ["fusemax", "flat", "unfused"] * 2,
    "seq": [1024] * 3 + [4096] * 3, "time_s": [1.0, 6.0, 10.0, 16.0, 96.0, 160.0]})


def test_fusemax_curves_and_best_rows_keep_designs_apart():
    """One curve per design, even where two designs share hardware: the flat curve is FLAT's own times (6, 96),
    not the median of FLAT and unfused (8, 128) that grouping by hardware gives. The best table compares the
    designs per problem instead (a design brings its own hardware)."""
    from simlib.report import best_rows, sensitivity_curves
    curves = sensitivity_curves(FUSEMAX_ROWS, "seq", "time_s")
    assert {k: v.tolist() for k, v in curves.items()} == {
        "fusemax on fusemax": [1.0, 16.0], "flat on flat": [6.0, 96.0], "unfused on flat": [10.0, 160.0]}
    # the design is the choice, per problem (seq): FuseMax wins at both sequence lengths
    assert list(best_rows(FUSEMAX_ROWS, "time_s", ["seq", "design"])[["seq", "design", "time_s"]].itertuples(
        index=False)) == [(1024, "fusemax", 1.0), (4096, "fusemax", 16.0)]
    # along the design axis itself each point is one design (median over the seqs: (1+16)/2, (6+96)/2, ...)
    (curve,) = sensitivity_curves(FUSEMAX_ROWS, "design", "time_s").values()
    assert curve.to_dict() == {"fusemax": 8.5, "flat": 51.0, "unfused": 85.0}


def test_rows_without_a_design_group_by_hardware():
    from simlib.report import sensitivity_curves
    frame = FUSEMAX_ROWS.drop(columns="design")
    curves = sensitivity_curves(frame, "seq", "time_s")
    assert {k: v.tolist() for k, v in curves.items()} == {"fusemax": [1.0, 16.0], "flat": [8.0, 128.0]}


def test_shipped_fusemax_report_picks_the_best_design_per_problem(tmp_path):
    """The report built now from the shipped spec (reports/fusemax_vs_flat/spec.yaml, as `simlib report SPEC
    --out reports/fusemax_vs_flat` regenerates it): one best row per problem (seq x model, 24), the design
    (a choice, on its own hardware) with the lowest time; a row's time is run_design's on that row's point and
    no lower than the other designs' there (direct predictions, the independent values)."""
    from simlib.models.spatial_cli import run_design
    from simlib.report import build_report
    spec = Path(__file__).parent.parent / "reports" / "fusemax_vs_flat" / "spec.yaml"
    page = build_report(spec, tmp_path / "report").read_text()
    table = _Cells()
    table.feed(page)
    header, *rows = table.rows
    best = [dict(zip(header, row)) for row in rows]
    assert len(best) == 6 * 4 and len({(r["seq"], r["model"]) for r in best}) == 24
    assert "Best configuration per seq, model" in page and "the choice (design) with the lowest time_s" in page
    for row in best[::7]:
        seq = int(row["seq"])
        times = {d: run_design(d, {"model": row["model"], "seq_q": seq, "seq_kv": seq, "batch": 64,
                                   "dtype": "fp16"})["time_s"] for d in ("fusemax", "flat", "unfused")}
        assert float(row["time_s"]) == pytest.approx(times[row["design"]], rel=1e-3)     # 4 digits printed
        assert times[row["design"]] == min(times.values())
    for image in ("sensitivity_seq.png", "sensitivity_model.png", "sensitivity_design.png"):
        assert (tmp_path / "report" / image).stat().st_size > 5_000


class _Cells(HTMLParser):
    """The text of each table row's th/td cells."""

    def __init__(self):
        super().__init__()
        self.rows, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell.strip())
            self._cell = None


def test_a_tts_sweep_reports_its_cost_without_naming_the_metric(tmp_path):
    """A test-time-scaling sweep has no time column: the report ranks eflops unless told otherwise. Its axes
    (model, samples) are all the problem, no choice, so there is no best configuration: the page says so rather
    than listing the least cost (the smallest model, which no one chose)."""
    from simlib.report import build_report
    spec = tmp_path / "tts.yaml"
    spec.write_text("workload: tts\nhardware: [b200]\naxes:\n  model: [qwen3-0.6b, qwen3-8b]\n  samples: [1, 4]\n"
                    "fixed: {prompt_len: 1000, gen_len: 4096, attention: dense}\n")
    index = build_report(spec, tmp_path / "out")
    page = index.read_text()
    assert "metric eflops" in page
    assert "The sweep varies only the problem (model, samples), no choice" in page and "<table" not in page
    out = subprocess.run([sys.executable, "-m", "simlib.cli.main", "report", str(spec), "--out", str(tmp_path / "o2"),
                          "--metric", "time_s"], capture_output=True, text=True)
    assert out.returncode == 2 and "no 'time_s' column" in out.stderr


def test_best_configuration_is_per_problem_not_the_smallest_problem():
    """A hand-made table: two sequence lengths (problem) by two tiles (choice) on two GPUs. The old rule (lowest
    time over all rows) picked seq 512 on each GPU whatever the tiles; per problem the best tile is plain: 64 at
    seq 512 and 128 at seq 4096 on a100, 128 at both on h100. Ranked by tflops (higher is better) the same rows
    win, and a sweep of tiles alone (no problem axis) gives one row per GPU."""
    from simlib.report import best_rows
    frame = pd.DataFrame({
        "hardware": ["a100"] * 4 + ["h100"] * 4, "seq": [512, 512, 4096, 4096] * 2, "block_q": [64, 128] * 4,
        "time_s": [1.0, 2.0, 40.0, 30.0, 0.9, 0.5, 20.0, 10.0]})
    frame["tflops"] = frame["seq"] ** 2 / frame["time_s"]
    expected = [("a100", 512, 64), ("a100", 4096, 128), ("h100", 512, 128), ("h100", 4096, 128)]
    for metric in ("time_s", "tflops"):
        best = best_rows(frame, metric, ["seq", "block_q"])
        assert list(best[["hardware", "seq", "block_q"]].itertuples(index=False)) == expected, metric
    assert best_rows(frame, "time_s")[["seq", "block_q"]].values.tolist() == [[512, 64], [4096, 128], [512, 128],
                                                                             [4096, 128]]   # axes inferred
    tiles = frame[frame["seq"] == 4096].drop(columns="seq")
    assert best_rows(tiles, "time_s", ["block_q"])[["hardware", "block_q"]].values.tolist() == [["a100", 128],
                                                                                               ["h100", 128]]


def _first_table_cells(page: str) -> list[list[str]]:
    """Rows of the page's first table, each a list of its header or data cells' text."""
    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.tables, self.cell = [], 0, None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables += 1
            elif tag == "tr" and self.tables == 1:
                self.rows.append([])
            elif tag in ("td", "th") and self.tables == 1:
                self.cell = ""

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append(self.cell.strip())
                self.cell = None

    parser = Cells()
    parser.feed(page)
    return [row for row in parser.rows if row]
