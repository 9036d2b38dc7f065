"""The ``simlib`` command: the issue's exact predict line, the catalog verbs, and one clear line + exit 2 for
each kind of bad input (run as a real subprocess, so a traceback would show)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent.parent / "data"


def run(*args):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True)


def test_predict_gemm_exact_form_prints_json():
    out = run("predict", "gemm", "--hardware", "a100", "--set", "M=8192", "--set", "N=8192", "--set", "K=8192",
              "--set", "dtype=bf16", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["time_s"] == pytest.approx(2 * 8192 ** 3 / 312e12, rel=1e-9)   # compute-bound roofline
    assert data["flops"] == 2 * 8192 ** 3
    assert data["bytes"]["dram"] == 3 * 8192 ** 2 * 2
    assert data["bound"] == "tensor_core"
    assert data["breakdown"][0]["einsum"] == "Z[m,n] = A[k,m] * B[k,n]"


def test_predict_attention_reports_speedup_against_its_baseline():
    out = run("predict", "attention-1pass", "--hardware", "h100", "--set", "seq_q=2048", "--set", "seq_kv=2048",
              "--json")
    data = json.loads(out.stdout)
    base = json.loads(run("predict", "attention-3pass", "--hardware", "h100", "--set", "seq_q=2048",
                          "--set", "seq_kv=2048", "--json").stdout)
    assert data["speedup"] == pytest.approx(base["time_s"] / data["time_s"], rel=1e-9)
    assert data["passes"] == {"E": 1, "M": 1}


def test_default_output_is_a_table():
    out = run("predict", "gemm", "--hardware", str(DATA / "tiny_gpu.yaml"), "--set", "M=64")
    assert out.returncode == 0
    assert "Z[m,n] = A[k,m] * B[k,n]" in out.stdout and "bound" in out.stdout


def test_hardware_list_and_show():
    listing = json.loads(run("hardware", "list", "--json").stdout)
    assert {h["name"] for h in listing} >= {"a100", "h100", "h200", "b200", "fusemax", "flat"}
    shown = json.loads(run("hardware", "show", "h100", "--json").stdout)
    assert shown["processors"]["count"] == 132
    assert "tensor_core" in run("hardware", "show", "a100").stdout


def test_workload_show_reports_passes_sizes_and_counts():
    data = json.loads(run("workload", "show", "attention-3pass", "--set", "seq_q=8", "--set", "seq_kv=16",
                          "--set", "heads=2", "--json").stdout)
    assert data["passes"] == {"E": 1, "M": 3}
    tensors = {t["name"]: t for t in data["tensors"]}
    assert tensors["QK"]["role"] == "intermediate" and tensors["QK"]["bytes"] == 2 * 16 * 8 * 2
    assert tensors["Q"]["role"] == "input" and tensors["AV"]["role"] == "output"
    # QK: heads x M x P x E MACs = 2 x 16 x 8 x 64
    assert data["einsums"][0]["ops"] == {"mac": 2 * 16 * 8 * 64}
    assert "SN[m,p] = exp(QK[m,p] - GM[p])" in run("workload", "show", "attention-3pass").stdout
    assert data["kernels"] == [] and all(t["reuses"] is None for t in data["tensors"])
    # workloads/attention-torch-math.yaml: PyTorch's row softmax is one kernel, its guard writes over A in place
    math_sdpa = json.loads(run("workload", "show", "attention-torch-math", "--json").stdout)
    assert math_sdpa["kernels"] == [["GM", "SN", "SD", "A"]]
    assert {t["name"]: t["reuses"] for t in math_sdpa["tensors"]}["AS"] == "A"


@pytest.mark.parametrize("args, fragments", [
    (["predict", str(DATA / "bad" / "malformed.yaml"), "--hardware", "a100"], ["malformed.yaml", "malformed YAML"]),
    (["predict", str(DATA / "bad" / "misspelled_field.yaml"), "--hardware", "a100"],
     ["misspelled_field.yaml", "rank", "unknown field", "did you mean 'ranks'"]),
    (["predict", str(DATA / "bad" / "unbound_rank.yaml"), "--hardware", "a100"],
     ["unbound_rank.yaml", "Z[m,n] = A[k,m] * B[k,n]", "no rank K is bound"]),
    (["predict", str(DATA / "bad" / "rank_twice.yaml"), "--hardware", "a100"],
     ["rank_twice.yaml", "M", "given twice (lines 4 and 7)"]),
    (["predict", str(DATA / "bad" / "negative_size.yaml"), "--hardware", "a100"],
     ["negative_size.yaml", "ranks.M", "expected a positive size"]),
    (["predict", "gemm", "--hardware", "a100", "--set", "M=0"], ["gemm.yaml", "ranks.M", "positive size"]),
    (["predict", "gemm", "--hardware", "a100", "--set", "M=-3"], ["ranks.M", "positive size"]),
    (["predict", "gemm", "--hardware", "a100", "--set", "dtype=fp8"], ["a100.yaml", "dtype", "fp8"]),
    (["predict", "gemm", "--hardware", "a100", "--set", "dtype=fp7"], ["parameters.dtype", "unknown dtype"]),
    (["predict", "gemm", "--hardware", "a100", "--set", "Q=4"], ["parameters.Q", "no parameter 'Q'"]),
    (["predict", "gemm", "--hardware", "a100", "--set", "M"], ["--set", "expected name=value"]),
    (["predict", "gemm", "--hardware", "a100", "--set", "M=abc"], ["parameters.M", "expected a number"]),
    (["predict", "gemm", "--hardware", "a1000"], ["unknown hardware 'a1000'", "did you mean"]),
    (["predict", "gemm", "--hardware", str(DATA / "bad" / "hardware_unknown_field.yaml")],
     ["hardware_unknown_field.yaml", "compute.tc.peak_tflop", "unknown field"]),
    (["hardware", "show", str(DATA / "bad" / "hardware_negative.yaml")],
     ["hardware_negative.yaml", "memory.0.bandwidth_bytes_per_s", "greater than 0"]),
    (["predict", "no/such/file.yaml", "--hardware", "a100"], ["no/such/file.yaml", "not found"]),
    (["predict", str(DATA / "bad" / "permuted_ranks.yaml"), "--hardware", "a100"],
     ["permuted_ranks.yaml", "einsums[0] 'QK[m,p] = Q[e,p] * K[m,e]'", "tensors.K.ranks declares rank E",
      "expected K[e,m]"]),
    (["predict", str(DATA / "bad" / "index_out_of_range.yaml"), "--hardware", "a100"],
     ["index_out_of_range.yaml", "einsums[0] 'Y[m] = A[m+1] * 2'", "reaches 64 at m = 63", "past rank M"]),
])
def test_bad_input_gives_one_clear_line_and_exit_2(args, fragments):
    out = run(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


def test_workload_list_aligns_descriptions_past_the_longest_name():
    lines = run("workload", "list").stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert "attention-torch-unfused" in names
    width = max(map(len, names)) + 1
    assert all(line[width - 1] == " " and line[width] != " " for line in lines)
