"""HTML reports: every image the page shows exists and is non-empty, the plots label their axes with units,
the tables list the best configuration per hardware; bad input exits 2. (Rendering: open index.html in any
browser, e.g. `chromium --headless --screenshot index.html`; no server is needed.)"""
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

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
