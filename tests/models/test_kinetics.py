"""Kinetics test-time-scaling cost: the reference's worked example, every formula's parts by hand, properties,
the attention-share crossover, model files, the CLI and bad input."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import simlib
from simlib.hardware import load_hardware
from simlib.models import kinetics
from simlib.models.kinetics import decode_seconds, prefill_cost, tts_cost, window_own_reads, window_reads
from simlib.models.kinetics_cli import default_intensity, model_shape
from simlib.workload.model_spec import load_model

DATA = Path(__file__).parent.parent / "data" / "tts"
QWEN3_4B = dict(parameters=4.02e9, heads=32, kv_heads=8, head_dim=128, layers=36)


def test_worked_example_to_six_significant_digits():
    # reference/kinetics.md: Qwen3-4B, c = 1000, g = 16384, n = 4, I = 562.5
    r = tts_cost(**QWEN3_4B, prompt_len=1000, gen_len=16384, samples=4, intensity=562.5)
    assert float(r["compute_flops"]) == pytest.approx(8.822235e14, rel=5e-7)
    assert float(r["memory_bytes"]) == pytest.approx(8.158076e13, rel=5e-7)
    assert float(r["eflops"]) == pytest.approx(4.677140e16, rel=5e-7)
    assert load_model("qwen3-4b").parameter_count == 4.02e9 and model_shape(load_model("qwen3-4b"))["layers"] == 36


SMALL = dict(parameters=10.0, heads=2, kv_heads=1, head_dim=3, layers=2)      # H = 2, Hkv = 1, dL = 6


def test_dense_parts_by_hand():
    # c = 5, g = 4, n = 3: params 3*2*10*4 = 240; attention 3*2*(10+4)*4*2*6 = 4032; memory 2*(10+12)*4*1*6 = 1056
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=3, intensity=2.0)
    assert r["parameter_eflops"] == 240 and r["compute_flops"] == 240 + 4032 and r["memory_bytes"] == 1056
    assert r["eflops"] == 240 + 4032 + 2 * 1056
    assert r["attention_share"] == pytest.approx((4032 + 2112) / (240 + 4032 + 2112))


def test_topk_parts_by_hand_including_the_budget_above_the_prompt():
    # B = 3 <= c = 5: S = 3*4 = 12; compute 2*(2*10*4 + 4*12*2*6) = 2*(80 + 576); memory 2*4*12*1*6 = 576
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=2, intensity=1.0, attention="topk", budget=3)
    assert r["compute_flops"] == 2 * (80 + 576) and r["memory_bytes"] == 576
    # c < B = 8 < c + g = 9: S = 8*4 + 0.5*(8-5)^2 = 36.5 (the max(0, B - c) corner, the + sign as the reference
    # gives it)
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=1, intensity=1.0, attention="topk", budget=8)
    assert r["memory_bytes"] == 4 * 36.5 * 6


def test_blocktopk_parts_by_hand():
    # local 2 + block 2 x 3 blocks: B = 8 > c = 5: S = 8*4 - 0.5*9 = 27.5;
    # search compute floor((10+4)/2)*4*2*6 = 336 per sample; search memory floor((10+2*4)/2)*4*1*6 = 216
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=2, intensity=1.0, attention="blocktopk", block_size=2,
                 block_topk=3, local=2)
    assert r["compute_flops"] == 2 * (80 + 4 * 27.5 * 2 * 6 + 336)
    assert r["memory_bytes"] == 2 * 4 * 27.5 * 6 + 216


def test_window_reads_by_hand():
    # the continuum of the reference's dense formula: c = 3, w = 5, g = 6: t* = 2, S = 3*2 + 2^2/2 + 4*5 = 28, the
    # sum over the steps at their midpoints t + 1/2: min(3.5, 5) + min(4.5, 5) + 4*5 = 28
    assert window_reads(3, 6, 5) == sum(min(3 + t + 0.5, 5) for t in range(6)) == 28
    assert window_reads(10, 6, 5) == 30 and window_reads(0, 3, 100) == 0.5 + 1.5 + 2.5
    # a sample's own keys: G = m^2/2 + (g - m) w, m = min(w, g): w = 2, g = 6: 2 + 4*2 = 10 (0.5 + 1.5 + 2*4)
    assert window_own_reads(6, 2) == 10 and window_own_reads(3, 100) == 4.5


def test_duo_mixes_dense_and_window_heads():
    full = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=1, intensity=1.0)
    win = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=1, intensity=1.0, attention="window", window=2)
    duo = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=1, intensity=1.0, attention="duo", window=2,
                   full_fraction=0.25)
    attention = lambda r: r["eflops"] - r["parameter_eflops"]
    assert attention(duo) == pytest.approx(0.25 * attention(full) + 0.75 * attention(win))


@settings(max_examples=200, deadline=None)
@given(c=st.integers(1, 50000), g=st.integers(1, 50000), n=st.integers(1, 16), frac=st.floats(0.0, 1.0),
       b=st.integers(2, 64))
def test_sparse_never_costs_more_than_dense_below_the_dense_context(c, g, n, frac, b):
    """Whenever the n samples' budgets together stay below the prompt the dense model reads (n*B <= c), top-k
    costs no more than dense attention; block top-k (blocks of 2 or more) also pays to score every block, which
    its savings cover once n*B <= c/2 (4B + (2c+g)/b <= 2(2c+g) per sample, and likewise for the bytes)."""
    assume(c >= n)
    budget = max(1, int(frac * c / n))
    dense = tts_cost(**QWEN3_4B, prompt_len=c, gen_len=g, samples=n, intensity=562.5)["eflops"]
    topk = tts_cost(**QWEN3_4B, prompt_len=c, gen_len=g, samples=n, intensity=562.5, attention="topk",
                    budget=budget)["eflops"]
    half = max(1, budget // 2)
    assume(n * half <= c / 2)
    block = tts_cost(**QWEN3_4B, prompt_len=c, gen_len=g, samples=n, intensity=562.5, attention="blocktopk",
                     block_size=b, block_topk=half // b, local=half % b)["eflops"]
    assert topk <= dense and block <= dense * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(c=st.integers(0, 20000), g=st.integers(1, 20000), n=st.integers(1, 32), attention=st.sampled_from(
    ["dense", "topk", "blocktopk", "window"]))
def test_eflops_monotone_in_samples_and_length(c, g, n, attention):
    sparse = {"topk": {"budget": 1024}, "blocktopk": {"block_size": 16, "block_topk": 32, "local": 128},
              "window": {"window": 512}, "dense": {}}[attention]
    # the top-k formulas are a continuum over the generated tokens, valid once g >= B - c (kinetics.py)
    assume(attention not in ("topk", "blocktopk") or g >= 1024 - c)
    cost = lambda **kw: float(tts_cost(**QWEN3_4B, intensity=562.5, attention=attention, **sparse, **kw)["eflops"])
    base = cost(prompt_len=c, gen_len=g, samples=n)
    assert cost(prompt_len=c, gen_len=g, samples=n + 1) > base
    assert cost(prompt_len=c, gen_len=g + 1, samples=n) > base


def test_attention_share_crossover_is_far_shorter_for_the_small_model():
    """Dense, one sample, c = 100: attention's share of eFLOPs is one half when 2(2c + g)·g·dL·(H + I·Hkv) = 2Pg,
    i.e. g* = P / (dL·(H + I·Hkv)) - 2c: Qwen3-0.6B 0.752e9 / (128*28*(16 + 562.5*8)) - 200 < 0 (attention
    dominates from the first token); Qwen3-32B 32.76e9 / (128*64*(64 + 4500)) - 200 = 676.2 tokens."""
    def crossover(name):
        m = model_shape(load_model(name))
        return m["parameters"] / (m["head_dim"] * m["layers"] * (m["heads"] + 562.5 * m["kv_heads"])) - 200
    small, large = crossover("qwen3-0.6b"), crossover("qwen3-32b")
    assert small == pytest.approx(0.752e9 / (128 * 28 * (16 + 562.5 * 8)) - 200) and small < 0
    assert large == pytest.approx(676.2, abs=0.1)
    shape = model_shape(load_model("qwen3-32b"))
    share = lambda g: float(tts_cost(**shape, prompt_len=100, gen_len=g, samples=1, intensity=562.5)["attention_share"])
    assert share(math.floor(large)) < 0.5 < share(math.ceil(large))
    assert float(tts_cost(**model_shape(load_model("qwen3-0.6b")), prompt_len=100, gen_len=1, samples=1,
                          intensity=562.5)["attention_share"]) > 0.5


def test_intensity_defaults_to_peak_over_bandwidth():
    assert default_intensity(load_hardware("b200"), "fp8") == pytest.approx(562.5)      # 4.5e15 / 8e12


def test_decode_time_roofline_by_hand():
    # 2 steps, dense, P = 100 (200 B of parameters), H = Hkv = 1, dL = 1, c = 3, n = 2, one request:
    # step t: flops 2*(2*100 + 4*(3+t)); bytes 200 + (3 + 2*t) * 4; peak 1000 FLOP/s, 100 B/s -> memory bound
    seconds, compute_bound = decode_seconds(peak_flops=1000.0, bandwidth=100.0, parameter_bytes=200.0,
                                            active_parameters=100.0, heads=1, kv_heads=1, head_dim=1, layers=1,
                                            prompt_len=3, gen_len=2, samples=2)
    assert seconds == pytest.approx((200 + 12) / 100 + (200 + 20) / 100) and compute_bound == 0.0


def test_prefill_by_hand():
    r = prefill_cost(**SMALL, prompt_len=5, intensity=2.0)
    assert r["compute_flops"] == 2 * 10 * 5 + 2 * 25 * 2 * 6 and r["memory_bytes"] == 4 * 5 * 1 * 6


def test_hugging_face_config_loader():
    m = load_model(str(DATA / "qwen3-0.6b-config.json"))
    assert (m.layers, m.hidden, m.heads, m.key_value_heads, m.head_dim, m.intermediate) == (28, 1024, 16, 8, 128, 3072)
    # embeddings counted for input and output: 2*151936*1024 + 28*(1024*2048*2 + 2*1024*1024 + 3*1024*3072
    # + 2*1024 + 2*128) + 1024, the Kinetics table's 0.752e9 to 0.1 %
    assert m.parameter_count == pytest.approx(0.752e9, rel=1e-3)
    moe = load_model(str(DATA / "moe-config.json"))
    assert moe.experts == 128 and moe.active_parameter_count < moe.parameter_count / 5


def run(*args):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True)


def test_cli_exact_form():
    out = run("predict", "tts", "--hardware", "b200", "--set", "model=qwen3-8b", "--set", "prompt_len=155", "--set",
              "gen_len=8253,12777", "--set", "samples=8", "--set", "attention=dense", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("compute_flops", "memory_bytes", "eflops", "time_s", "attention_share"):
        assert key in data
    both = [tts_cost(**model_shape(load_model("qwen3-8b")), prompt_len=155, gen_len=g, samples=8,
                     intensity=562.5)["eflops"] for g in (8253, 12777)]
    assert data["eflops"] == pytest.approx(float(np.mean(both)))          # the mean over the given lengths
    # by hand (reference/kinetics.md, dense): Qwen3-8B P = 8.19e9, H = 32, Hkv = 8, dL = 128*36 = 4608; c = 155,
    # n = 8, I = 562.5 (B200 fp8). compute = n[2Pg + 2(2c + g)g·H·dL], memory = 2(2c + n·g)g·Hkv·dL:
    #   g = 8253:  compute 1.248205604050944e15, memory 4.0362725523456e13, eFLOPs 2.3952238710994944e16
    #   g = 12777: compute 2.068802095970304e15, memory 9.6581814829056e13, eFLOPs 5.63960729373143e16
    # the means: compute 1.658503850010624e15, memory 6.8472270176256e13, eFLOPs 4.017415582415462e16
    assert data["compute_flops"] == pytest.approx(1.658503850010624e15, rel=1e-12)
    assert data["memory_bytes"] == pytest.approx(6.8472270176256e13, rel=1e-12)
    assert data["eflops"] == pytest.approx(4.017415582415462e16, rel=1e-12)
    assert [r["eflops"] for r in data["per_gen_len"]] == pytest.approx([2.3952238710994944e16, 5.63960729373143e16],
                                                                       rel=1e-12)


@pytest.mark.parametrize("settings, fragment", [
    (["model=qwen9-1b"], "unknown model 'qwen9-1b'"),
    ([f"model={DATA / 'missing-fields-config.json'}"], "intermediate_size"),
    (["model=qwen3-8b", "attention=topk", "budget=0"], "budget: expected a positive integer"),
    (["model=qwen3-8b", "samples=0"], "samples: expected a positive integer"),
    (["model=qwen3-8b", "attention=topk"], "attention=topk needs budget"),
    # every value's type and range, whichever the variant (reviewer's repros)
    (["model=qwen3-8b", "attention=duo", "window=64", "full_fraction=abc"],
     "full_fraction: expected a fraction of heads, a number in [0, 1], got 'abc'"),
    (["model=qwen3-8b", "dtype=fp8,bf16"], "dtype: expected one dtype, one of: fp64"),
    (["model=qwen3-8b", "dtype=fp7"], "dtype: expected one dtype"),
    (["model=qwen3-8b", "attention=1"], "attention: unknown attention 1"),
    (["model=7"], "model: expected a model name"),
    (["model=qwen3-8b", "gen_len=1e12"], "gen_len: expected at most 67108864 generated tokens per sample"),
    (["model=qwen3-8b", "gen_len=1000,67108865"], "gen_len: expected at most 67108864"),
    # prompt_len, samples and serving_batch had no cap (prompt_len=1e20 was accepted): MAX_SEQ / MAX_COUNT
    (["model=qwen3-8b", "prompt_len=1e20"], "prompt_len: expected at most 67108864 prompt tokens"),
    (["model=qwen3-8b", "prompt_len=67108865"], "prompt_len: expected at most 67108864"),
    (["model=qwen3-8b", "samples=1e20"], "samples: expected at most 2147483647"),
    (["model=qwen3-8b", "serving_batch=2147483648"], "serving_batch: expected at most 2147483647"),
    (["model=qwen3-8b", "intensity=nan"], "intensity: expected a finite FLOP per byte > 0, got nan"),
    (["model=qwen3-8b", "intensity=inf"], "intensity: expected a finite FLOP per byte > 0, got inf"),
    (["model=qwen3-8b", "intensity=-1"], "intensity: expected a finite FLOP per byte > 0"),
    (["model=qwen3-8b", "budget=-5"], "budget: expected a positive integer, got -5"),
    (["model=qwen3-8b", "window=abc"], "window: expected a positive integer, got 'abc'"),
    (["model=qwen3-8b", "full_fraction=7"], "full_fraction: expected a fraction of heads"),
    (["model=qwen3-8b", "full_fraction=nan"], "full_fraction: expected a fraction of heads"),
    (["model=qwen3-8b", "block_size=0"], "block_size: expected a positive integer, got 0"),
    (["model=qwen3-8b", "block_topk=1.5"], "block_topk: expected a positive integer, got 1.5"),
    (["model=qwen3-8b", "local=-1"], "local: expected a whole number of keys >= 0, got -1"),
])
def test_cli_bad_tts_input(settings, fragment):
    out = run("predict", "tts", "--hardware", "b200", *[a for s in settings for a in ("--set", s)])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert fragment in out.stderr


def test_frontier_tool(tmp_path):
    out = run("frontier", "tts", "--csv", str(DATA / "accuracy.csv"), "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    # per model, a point is on the frontier unless another is cheaper and at least as accurate: the long-CoT
    # rows of the shipped table are beaten by a Best-of-N row that is both cheaper and more accurate
    frontier = {(r["model"], r["strategy"], r["samples"]) for r in rows if r["frontier"]}
    assert ("qwen3-0.6b", "long-cot", 1) not in frontier and ("qwen3-8b", "long-cot", 1) not in frontier
    assert len(frontier) == 4 and (tmp_path / "tts_frontier.png").stat().st_size > 10_000


def test_tts_figures_are_drawn(tmp_path):
    out = run("figure", "tts", "--hardware", "b200", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for stem in ("tts_cost_vs_length_b200", "tts_dense_vs_blocktopk_b200"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000


def test_model_yaml_with_an_unknown_field(tmp_path):
    bad = tmp_path / "model.yaml"
    bad.write_text("name: m\nhidden: 64\nheads: 2\nhead_dim: 32\nintermediate: 128\nlayers: 2\nwidth: 3\n")
    out = run("predict", "tts", "--hardware", "b200", "--set", f"model={bad}")
    assert out.returncode == 2 and "width" in out.stderr and "Traceback" not in out.stderr


def test_block_topk_budget_beyond_the_context_reads_the_whole_context_by_hand():
    """Budget B = 64 + 16·256 = 4160 keys against a 10-token prompt and 100 generated tokens: every step reads
    its whole context, the dense continuum c·g + g²/2 = 10·100 + 100²/2 = 6000 key reads per head and layer, plus
    the block scoring, floor((2c + g)/b)·g = floor(120/16)·100 = 700 (compute, per head) — never negative."""
    from simlib.models.kinetics import _attention
    h, hk, dl = 16, 8, 128 * 28
    compute, memory = _attention("blocktopk", c=10, g=100, n=1, heads=h, kv_heads=hk, dl=dl, block_size=16,
                                 block_topk=256, local=64)
    assert compute == pytest.approx(4 * 6000 * h * dl + 7 * 100 * h * dl)
    assert memory == pytest.approx(4 * 6000 * hk * dl + 7 * 100 * hk * dl)


@pytest.mark.parametrize("body, fragment", [
    ("qwen3-0.6b,bon,4,1000,high\n", "accuracy: expected a number"),
    ("qwen3-0.6b,bon,4\n", "line 2: expected 5 comma-separated fields"),
    ("qwen3-0.6b,bon,4,1000,0.5,9\n", "line 2: expected 5 comma-separated fields"),
    ('qwen3-0.6b,bon,4,"100,200",0.5\n', "gen_len: expected one generation length per row"),
])
def test_frontier_bad_rows(tmp_path, body, fragment):
    table = tmp_path / "acc.csv"
    table.write_text("model,strategy,samples,gen_len,accuracy\n" + body)
    out = run("frontier", "tts", "--csv", str(table))
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr


@pytest.mark.parametrize("config, gated", [
    ({"model_type": "llama", "hidden_act": "silu"}, True),
    ({"model_type": "gemma", "hidden_act": "gelu_pytorch_tanh"}, True),     # GeGLU: the family list decides
    ({"architectures": ["Qwen2MoeForCausalLM"]}, True),                      # Qwen2Moe -> qwen2_moe
    ({"model_type": "somenew", "hidden_act": "silu"}, True),
    ({"model_type": "gpt_neox", "hidden_act": "gelu"}, False),
    ({"model_type": "opt", "activation_function": "relu"}, False),
    ({"model_type": "gpt2", "activation_function": "gelu_new"}, False),
    ({"model_type": "somenew", "hidden_act": "geglu"}, True),
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_act": "relu2"}, True),   # family first
])
def test_gated_mlp_rule(tmp_path, config, gated):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, "hidden_size": 4, "num_attention_heads": 2, "num_hidden_layers": 1,
                                "intermediate_size": 8, "vocab_size": 10}))
    assert load_model(str(path)).gated_mlp is gated


def test_parameter_estimate_gated_and_not_by_hand(tmp_path):
    # hidden 4, 2 heads / 1 KV head of 2, intermediate 8, 1 layer, vocab 10: embeddings 2*10*4 = 80; per layer
    # Q 4*2*2 = 16, K and V 2*4*1*2 = 16, O 16, norms 2*4 + 2*2 = 12; final norm 4. The MLP: two matrices
    # 2*4*8 = 64 (P = 80 + 124 + 4 = 208) or, gated, three: 96 (P = 240).
    shape = {"hidden_size": 4, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 2,
             "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 10}
    for act, expected in (("gelu", 208), ("silu", 240)):
        path = tmp_path / f"{act}.json"
        path.write_text(json.dumps({**shape, "hidden_act": act}))
        assert load_model(str(path)).parameter_count == expected
    assert not load_model("bert").gated_mlp and all(load_model(f"qwen3-{s}").gated_mlp
                                                    for s in ("0.6b", "1.7b", "4b", "8b", "14b", "32b"))


def test_config_that_does_not_say_whether_its_mlp_is_gated(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 4, "num_attention_heads": 2, "num_hidden_layers": 1,
                                "intermediate_size": 8, "vocab_size": 10}))
    out = run("predict", "tts", "--hardware", "b200", "--set", f"model={path}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "model_type" in out.stderr and "cannot tell whether the MLP is gated" in out.stderr


SHAPE = {"hidden_size": 4, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 8,
         "vocab_size": 10}


@pytest.mark.parametrize("extra, field, fragment", [
    # `architectures` must be a list of class names, not a number
    ({"model_type": "llama", "architectures": 5}, "architectures", "expected a list of class names"),
    ({"architectures": ["LlamaForCausalLM", 3]}, "architectures", "expected a list of class names"),
    ({"model_type": 7, "hidden_act": "silu"}, "model_type", "expected a string"),
    # an unknown family: the activation decides, and it must be a string
    ({"model_type": "somenew", "hidden_act": 5}, "hidden_act", "expected a string naming the MLP's activation"),
    # BitNet gates a squared ReLU and Nemotron does not: relu2 alone does not decide
    ({"model_type": "bitnet", "hidden_act": "relu2"}, "hidden_act", "gated_mlp: true or false"),
    ({"model_type": "somenew", "activation_function": "mystery"}, "activation_function", "gated_mlp"),
])
def test_config_fields_that_cannot_decide_the_mlp_exit_2_naming_the_field(tmp_path, extra, field, fragment):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SHAPE, **extra}))
    out = run("predict", "tts", "-H", "b200", "--set", f"model={path}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: {field}: " in out.stderr and fragment in out.stderr, out.stderr


def test_deepseek_style_mixture_of_experts_by_hand():
    """deepseek-moe-config.json: hidden 4, 2 heads / 1 KV head of 2, 1 layer, vocab 10, a gated MLP (deepseek_v3)
    of n_routed_experts = 4 experts of moe_intermediate_size 3, 2 active per token. Embeddings 2*10*4 = 80; the
    layer: Q 4*2*2 = 16, K and V 2*4*1*2 = 16, O 16, norms 2*4 + 2*2 = 12, router 4*4 = 16, experts 3*4*3 = 36
    each; final norm 4. P = 80 + (48 + 12 + 16 + 4*36) + 4 = 304; active (2 experts): 304 - 2*36 = 232. The
    dense intermediate_size 8 in the file is not the expert width. Best-of-3, g = 4: a token computes with the
    active parameters, 2*232*n*g = 5568 (not 2*304*3*4 = 7296)."""
    path = DATA / "deepseek-moe-config.json"
    m = load_model(str(path))
    assert (m.experts, m.active_experts, m.intermediate, m.gated_mlp) == (4, 2, 3, True)
    assert m.parameter_count == 304 and m.active_parameter_count == 232
    assert m.file_key("experts") == "n_routed_experts" and m.file_key("intermediate") == "moe_intermediate_size"
    out = run("predict", "tts", "-H", "b200", "--set", f"model={path}", "--set", "prompt_len=5", "--set", "gen_len=4",
              "--set", "samples=3", "--set", "intensity=2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["parameters"]["model_parameters"] == 304 and data["parameter_eflops"] == 5568


@pytest.mark.parametrize("change, field, fragment", [
    ({"num_attention_heads": 0}, "num_attention_heads", "expected a positive integer, got 0"),
    ({"num_attention_heads": "2"}, "num_attention_heads", 'expected a positive integer, got "2"'),
    ({"hidden_size": None}, "hidden_size", "expected a positive integer, got null"),
    ({"num_hidden_layers": 2.5}, "num_hidden_layers", "expected a positive integer, got 2.5"),
    ({"vocab_size": True}, "vocab_size", "expected a positive integer, got true"),
    ({"intermediate_size": -8}, "intermediate_size", "expected a positive integer, got -8"),
    ({"num_key_value_heads": 0}, "num_key_value_heads", "expected a positive integer, got 0"),
    ({"head_dim": "2"}, "head_dim", 'expected a positive integer, got "2"'),
    ({"num_experts": 0}, "num_experts", "expected a positive integer, got 0"),
    ({"hidden_size": 1}, "num_attention_heads", "leave hidden_size 1 less than one dimension per head"),
    # a DeepSeek-style expert width without any expert count is refused, not read as a dense MLP
    ({"moe_intermediate_size": 3, "num_experts_per_tok": 2}, "moe_intermediate_size",
     "no expert count; expected num_experts, num_local_experts or n_routed_experts"),
    # pydantic's own checks name the file's key too
    ({"name_or_path": 5}, "name_or_path", "Input should be a valid string"),
])
def test_config_counts_are_checked_before_use_naming_the_files_key(tmp_path, change, field, fragment):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SHAPE, "model_type": "llama", **change}))
    out = run("predict", "tts", "-H", "b200", "--set", f"model={path}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: {field}: " in out.stderr and fragment in out.stderr, out.stderr


def test_mixture_of_experts_computes_with_its_active_parameters():
    """moe-config.json (a Qwen3-MoE shape): hidden h = 2048, 32 heads and 4 KV heads of d = 128, 48 layers, 128
    experts of width 768 with 8 per token, vocab 151936, gated MLP. Active parameters, by hand:
    embeddings 2*151936*2048 = 622329856; per layer attention 2048*32*128*2 + 2*2048*4*128 = 18874368, the 8
    experts' 3*2048*768*8 = 37748736, router 2048*128 = 262144, norms 2*2048 + 2*128 = 4352: 56889600; x 48 =
    2730700800; final norm 2048. P_active = 3353032704. Dense, c = 1000, g = 2048, n = 2:
    compute = n*[2*P_active*g + 2*(2c + g)*g*H*d*L]; memory (no parameter reads) = 2*(2c + n*g)*g*Hkv*d*L."""
    p_active, c, g, n, heads, kv_heads, dl = 3353032704, 1000, 2048, 2, 32, 4, 128 * 48
    compute = n * (2 * p_active * g + 2 * (2 * c + g) * g * heads * dl)
    memory = 2 * (2 * c + n * g) * g * kv_heads * dl
    out = run("predict", "tts", "-H", "b200", "--set", f"model={DATA / 'moe-config.json'}", "--set", "prompt_len=1000",
              "--set", "gen_len=2048", "--set", "samples=2", "--set", "intensity=100", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["compute_flops"] == pytest.approx(compute, rel=1e-12)
    assert data["eflops"] == pytest.approx(compute + 100 * memory, rel=1e-12)
    assert data["parameter_eflops"] == pytest.approx(n * 2 * p_active * g, rel=1e-12)
    # the weights read per decode step stay all of them: the model file's total, about 9x the active count
    assert data["parameters"]["model_parameters"] == pytest.approx(load_model(str(DATA / "moe-config.json"))
                                                                   .parameter_count)
    sweep = simlib.sweep({"workload": "tts", "hardware": ["b200"], "axes": {"samples": [2]},
                                        "fixed": {"model": str(DATA / "moe-config.json"), "prompt_len": 1000,
                                                  "gen_len": 2048, "intensity": 100}})
    assert sweep.compute_flops[0] == pytest.approx(compute, rel=1e-12)       # the sweep counts the same way


# --- review fixes: prompt reads shared by position, window memory, top-k clamp, inputs, frontier, model heads ---

def test_window_memory_by_hand_reads_the_prompt_once_for_all_samples():
    """SMALL (H = 2, Hkv = 1, dL = 6), c = 5, g = 4, n = 3, w = 7: per step (midpoints t + 1/2) the window holds
    min(5.5, 7) + min(6.5, 7) + 7 + 7 = 26 keys (S), of which the sample's own min(t + 1/2, 7) = 0.5 + 1.5 + 2.5 +
    3.5 = 8 (G) and prompt keys 18, the same positions for the three samples: memory = 4·1·6·(18 + 3·8) = 1008
    bytes (not 3·4·26·6 = 1872); compute per sample 4·26·2·6: 3·1248 = 3744 plus 2Pg·n = 240."""
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=3, intensity=1.0, attention="window", window=7)
    assert r["memory_bytes"] == 1008 and r["compute_flops"] == 240 + 3744


@settings(max_examples=300, deadline=None)
@given(c=st.integers(0, 40), g=st.integers(1, 40), w=st.integers(1, 90), n=st.integers(1, 8))
def test_window_cost_matches_a_brute_force_enumeration_of_the_steps(c, g, w, n):
    """numpy enumeration of the g steps at their midpoints τ = t + 1/2 (the continuum, exact for integer c, w):
    the window reads min(c + τ, w) keys, min(c, max(0, w − τ)) of them prompt keys (read once for the n samples)
    and min(τ, w) the sample's own. Tolerance 1e-12 relative (sums of halves, exact in float64)."""
    tau = np.arange(g) + 0.5
    keys = np.minimum(c + tau, w)
    prompt, own = np.minimum(c, np.maximum(0, w - tau)), np.minimum(tau, w)
    assert np.array_equal(prompt + own, keys)
    r = tts_cost(**SMALL, prompt_len=c, gen_len=g, samples=n, intensity=1.0, attention="window", window=w)
    assert float(r["memory_bytes"]) == pytest.approx(4 * 1 * 6 * (prompt.sum() + n * own.sum()), rel=1e-12)
    assert float(r["compute_flops"]) == pytest.approx(n * (2 * 10 * g + 4 * keys.sum() * 2 * 6), rel=1e-12)


@pytest.mark.parametrize("shape, c, g, n", [(SMALL, 5, 4, 3), (QWEN3_4B, 1000, 16384, 4), (QWEN3_4B, 0, 7, 9)])
def test_a_window_over_the_whole_context_costs_exactly_dense(shape, c, g, n):
    """w >= c + g: every step reads its whole context, so memory is dense's 2(2c + n·g)g·Hkv·dL and compute
    dense's, exactly (the reference's worked example for Qwen3-4B: 8.158076e13 bytes). Duo with every head full
    (f = 1) is dense too."""
    dense = tts_cost(**shape, prompt_len=c, gen_len=g, samples=n, intensity=562.5)
    hand = 2 * (2 * c + n * g) * g * shape["kv_heads"] * shape["head_dim"] * shape["layers"]
    assert dense["memory_bytes"] == hand
    for w in (c + g, c + g + 1, 10 ** 9):
        for extra in ({"attention": "window", "window": w}, {"attention": "duo", "window": w, "full_fraction": 0.25},
                      {"attention": "duo", "window": 1, "full_fraction": 1.0}):
            if extra["attention"] == "duo" and extra["full_fraction"] == 1.0 and w != c + g:
                continue
            r = tts_cost(**shape, prompt_len=c, gen_len=g, samples=n, intensity=562.5, **extra)
            assert r["memory_bytes"] == hand and r["compute_flops"] == dense["compute_flops"], extra


def test_topk_with_a_budget_beyond_the_context_reads_the_whole_context():
    """SMALL, c = 5, g = 4: B >= c + g = 9 reads the whole context at every step, S = c·g + g²/2 = 20 + 8 = 28
    (one sample: exactly dense's 2(2c + g)g = 112 = 4·28 key reads per head and layer); B = 8 < c + g keeps the
    reference's "+", 8·4 + ½·3² = 36.5, the jump down at B = c + g. A budget of 100000 for Qwen3-4B (c = 1000,
    g = 16384, one sample) costs what dense does, not 1922x it."""
    s = lambda budget: float(tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=1, intensity=1.0, attention="topk",
                                      budget=budget)["memory_bytes"]) / (4 * 6)
    assert s(8) == 36.5 and s(9) == s(10) == s(100000) == 28
    dense = tts_cost(**QWEN3_4B, prompt_len=1000, gen_len=16384, samples=1, intensity=562.5)["eflops"]
    huge = tts_cost(**QWEN3_4B, prompt_len=1000, gen_len=16384, samples=1, intensity=562.5, attention="topk",
                    budget=100000)["eflops"]
    assert huge == pytest.approx(dense, rel=1e-15)


def test_block_topk_with_no_local_window_by_hand():
    """local = 0 is a valid B = w + b·k: SMALL, c = 5, g = 4, one sample, b = 2, k = 2: B = 4 <= c, S = 4·4 = 16;
    search compute floor(14/2)·4·2·6 = 336, memory floor(14/2)·4·1·6 = 168; compute 80 + 4·16·2·6 + 336 = 1184,
    memory 4·16·6 + 168 = 552."""
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=1, intensity=1.0, attention="blocktopk", block_size=2,
                 block_topk=2, local=0)
    assert r["compute_flops"] == 1184 and r["memory_bytes"] == 552
    out = run("predict", "tts", "-H", "b200", "--set", "model=qwen3-8b", "--set", "attention=blocktopk", "--set",
              "local=0", "--set", "block_size=16", "--set", "block_topk=4", "--json")
    assert out.returncode == 0, out.stderr


TINY_DECODE = dict(peak_flops=1000.0, bandwidth=100.0, parameter_bytes=200.0, active_parameters=100.0, heads=1,
                   kv_heads=1, head_dim=1, layers=1, prompt_len=3, gen_len=3, samples=2)


@pytest.mark.parametrize("attention, extra, seconds", [
    # w = 4: step t reads min(3 + t, 4) keys, min(3, max(0, 4 - t)) = 3, 3, 2 of them prompt keys shared by the
    # two samples, min(t, 4) = 0, 1, 2 each sample's own: bytes 200 + 4·(3 + 2·0, 3 + 2·1, 2 + 2·2) = 212, 220, 224
    ("window", {"window": 4}, (212 + 220 + 224) / 100),
    # top-k B = 4: 3, 4, 4 keys, chosen by each sample's query, none shared: 200 + 4·2·(3, 4, 4) = 224, 232, 232
    ("topk", {"budget": 4}, (224 + 232 + 232) / 100),
    # block top-k b = 2, k = 1, local 2 (B = 4): keys 3, 4, 4 per sample; blocks scored floor((3 + t)/2) = 1, 2, 2,
    # the prompt's floor(3/2) = 1 block shared, each summary 2 bytes per element... K and V: 4·(1/2) per block:
    # 200 + 4·(0.5 + 2·(3 + 0)) = 226, 200 + 4·(0.5 + 2·(4 + 0.5)) = 238, 238
    ("blocktopk", {"block_size": 2, "block_topk": 1, "local": 2}, (226 + 238 + 238) / 100),
])
def test_decode_time_shares_prompt_reads_by_position_by_hand(attention, extra, seconds):
    """H = Hkv = 1, dL = 1, P = 100 (200 B), c = 3, g = 3, n = 2, peak 1000 FLOP/s, 100 B/s: every step is memory
    bound (at most 2·(200 + 4·4 + 2·2) = 440 FLOPs, 0.44 s, against at least 2.12 s of bytes)."""
    got, compute_bound = decode_seconds(**TINY_DECODE, attention=attention, **extra)
    assert got == pytest.approx(seconds, rel=1e-15) and compute_bound == 0.0


def test_decode_time_of_duo_with_every_head_full_is_dense_exactly():
    """f = 1: every head reads the whole prompt by position, shared by the samples, like dense; f = 0 is the
    window variant. Qwen3-8B on B200 numbers, c = 1000, g = 4096, 8 samples, 3 requests."""
    shape = model_shape(load_model("qwen3-8b"))
    common = dict(peak_flops=4.5e15, bandwidth=8e12, parameter_bytes=8.19e9, active_parameters=8.19e9, **shape,
                  prompt_len=1000, gen_len=4096, samples=8, serving_batch=3)
    common.pop("parameters")
    dense = decode_seconds(**common)
    assert decode_seconds(**common, attention="duo", window=64, full_fraction=1.0) == dense
    assert decode_seconds(**common, attention="window", window=5096) == dense          # w >= c + g
    assert (decode_seconds(**common, attention="duo", window=64, full_fraction=0.0)
            == decode_seconds(**common, attention="window", window=64))


def test_decode_steps_are_evaluated_in_bounded_chunks(monkeypatch):
    """The same seconds and compute-bound fraction whether the steps go in one array or in chunks of 7 (a
    generation that is compute bound early and memory bound later: at 600 B/s step 0 takes 424 FLOPs, 0.424 s,
    against 212 B, 0.353 s; from t = 20 on 560 FLOPs, 0.56 s, against 360 B, 0.6 s), and memory stays within a
    few chunks: 2**18 steps in chunks of 1024 peak far below one float64 array of all steps (2 MiB)."""
    import tracemalloc
    args = dict(TINY_DECODE, bandwidth=600.0, gen_len=50, prompt_len=3)
    whole = decode_seconds(**args, attention="window", window=20)
    monkeypatch.setattr(kinetics, "DECODE_CHUNK", 7)
    chunked = decode_seconds(**args, attention="window", window=20)
    assert chunked[0] == pytest.approx(whole[0], rel=1e-14) and chunked[1] == whole[1] and 0 < whole[1] < 1
    monkeypatch.setattr(kinetics, "DECODE_CHUNK", 1024)
    tracemalloc.start()
    decode_seconds(**dict(args, gen_len=1 << 18), attention="duo", window=20, full_fraction=0.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < (1 << 18) * 8 / 4


def test_a_sweep_refuses_a_non_finite_fixed_intensity():
    for value in (float("nan"), float("inf")):
        with pytest.raises(simlib.SimlibInputError, match="intensity: expected a finite FLOP per byte > 0"):
            simlib.sweep({"workload": "tts", "hardware": ["b200"], "axes": {"samples": [2]},
                          "fixed": {"model": "qwen3-8b", "intensity": value}})


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-2"])
def test_frontier_refuses_a_non_finite_intensity(value):
    out = run("frontier", "tts", "--csv", str(DATA / "accuracy.csv"), "--intensity", value)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--intensity: expected a finite FLOP per byte > 0" in out.stderr, out.stderr


def test_frontier_prices_rows_by_hand_with_a_rows_own_intensity(tmp_path):
    """The reference's worked example as rows: Qwen3-4B, c = 1000, g = 16384, n = 4: at I = 562.5 4.677140e16
    eFLOPs; with the row's intensity 1: compute + memory = 8.822235e14 + 8.158076e13 = 9.638043e14. A top-k row
    (B = 500 <= c): S = 500·16384; compute 4·[2·4.02e9·16384 + 4S·32·4608], memory 4·4S·8·4608; at I = 562.5."""
    table = tmp_path / "acc.csv"
    table.write_text("model,strategy,samples,gen_len,accuracy,prompt_len,intensity,attention,budget\n"
                     "qwen3-4b,bon,4,16384,0.5,1000,,dense,\n"
                     "qwen3-4b,bon,4,16384,0.4,1000,1,dense,\n"
                     "qwen3-4b,bon,4,16384,0.3,1000,,topk,500\n")
    out = run("frontier", "tts", "--csv", str(table), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["accuracy"]: r for r in json.loads(out.stdout)}
    assert rows[0.5]["eflops"] == pytest.approx(4.677140e16, rel=5e-7) and rows[0.5]["intensity"] == 562.5
    assert rows[0.4]["eflops"] == pytest.approx(9.638043e14, rel=1e-6) and rows[0.4]["intensity"] == 1
    s, dl = 500 * 16384, 128 * 36
    topk = 4 * (2 * 4.02e9 * 16384 + 4 * s * 32 * dl) + 562.5 * 4 * 4 * s * 8 * dl
    assert rows[0.3]["eflops"] == pytest.approx(topk, rel=1e-12)
    # the row at intensity 1 is cheapest and the dense row at 562.5 the most accurate: both on the frontier
    assert rows[0.4]["frontier"] and rows[0.5]["frontier"] and not rows[0.3]["frontier"]


@pytest.mark.parametrize("header, body, fragment", [
    ("dtype", "bf16", "dtype: column not used by the frontier"),
    ("serving_batch", "7", "serving_batch: column not used by the frontier"),
    ("intensity", "nan", "line 2: intensity: expected a finite FLOP per byte > 0"),
    ("full_fraction", "x", "line 2: full_fraction: expected a fraction of heads"),
])
def test_frontier_refuses_columns_it_cannot_use_or_bad_values(tmp_path, header, body, fragment):
    table = tmp_path / "acc.csv"
    table.write_text(f"model,strategy,samples,gen_len,accuracy,{header}\nqwen3-8b,bon,4,1000,0.5,{body}\n")
    out = run("frontier", "tts", "--csv", str(table))
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr


def test_frontier_refuses_mixed_accuracy_scales(tmp_path):
    table = tmp_path / "acc.csv"
    table.write_text("model,strategy,samples,gen_len,accuracy\nqwen3-8b,bon,4,1000,0.5\nqwen3-8b,bon,8,1000,55\n")
    out = run("frontier", "tts", "--csv", str(table))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "line 2: accuracy: 0.5 reads as a fraction of 1, but line 3 gives 55" in out.stderr, out.stderr
    # one scale: percentages (0 belongs to both), or fractions
    for rows in ("0\n55\n70", "0.1\n0.55\n1"):
        table.write_text("model,strategy,samples,gen_len,accuracy\n" + "".join(
            f"qwen3-8b,bon,{i + 1},1000,{a}\n" for i, a in enumerate(rows.split())))
        out = run("frontier", "tts", "--csv", str(table), "--json")
        assert out.returncode == 0, out.stderr


@settings(max_examples=300, deadline=None)
@given(points=st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 5), st.integers(0, 5)), max_size=30))
def test_pareto_frontier_matches_a_brute_force_pairwise_check(points):
    """Against the O(n²) definition, enumerated with numpy: a point is dominated when a point of the same model
    has eflops <= and accuracy >= with one strict; small integer grids so that ties are common."""
    from simlib.plots.tts_figures import pareto_frontier
    model = np.array([p[0] for p in points], dtype=object)
    e = np.array([p[1] for p in points], dtype=float)
    a = np.array([p[2] for p in points], dtype=float)
    same = model[:, None] == model[None, :]
    dominates = same & (e[None, :] <= e[:, None]) & (a[None, :] >= a[:, None]) & \
        ((e[None, :] < e[:, None]) | (a[None, :] > a[:, None]))
    assert np.array_equal(pareto_frontier(model, e, a), ~dominates.any(axis=1))


@pytest.mark.parametrize("text, field", [
    ("name: m\nhidden: 64\nheads: 4\nkv_heads: 8\nhead_dim: 32\nintermediate: 128\nlayers: 2\nparameters: 1e6\n",
     "kv_heads"),
    ("name: m\nhidden: 64\nheads: 4\nkv_heads: 3\nhead_dim: 32\nintermediate: 128\nlayers: 2\nparameters: 1e6\n",
     "kv_heads"),
])
def test_model_yaml_kv_heads_must_divide_heads(tmp_path, text, field):
    path = tmp_path / "model.yaml"
    path.write_text(text)
    out = run("predict", "tts", "-H", "b200", "--set", f"model={path}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: {field}: " in out.stderr and "must divide the 4 query heads" in out.stderr, out.stderr


@pytest.mark.parametrize("kv", [3, 4])
def test_config_kv_heads_must_divide_heads(tmp_path, kv):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SHAPE, "model_type": "llama", "num_key_value_heads": kv}))
    out = run("predict", "tts", "-H", "b200", "--set", f"model={path}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: num_key_value_heads: {kv} key/value heads must divide the 2 query heads" in out.stderr


def test_a_config_that_is_not_utf8_is_an_input_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe{}")
    out = run("predict", "tts", "-H", "b200", "--set", f"model={path}")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}: cannot read a JSON config" in out.stderr


def test_a_config_is_named_by_its_saved_model_id(tmp_path):
    """transformers writes the model id as "_name_or_path"; the folder name is the fallback."""
    folder = tmp_path / "snapshot"
    folder.mkdir()
    path = folder / "config.json"
    path.write_text(json.dumps({**SHAPE, "model_type": "llama", "_name_or_path": "Qwen/Qwen3-8B"}))
    assert load_model(str(path)).name == "Qwen/Qwen3-8B"
    path.write_text(json.dumps({**SHAPE, "model_type": "llama"}))
    assert load_model(str(path)).name == "snapshot"


def test_more_active_experts_than_experts_is_refused(tmp_path):
    path = tmp_path / "moe.yaml"
    path.write_text("name: m\nhidden: 64\nheads: 4\nkv_heads: 4\nhead_dim: 16\nintermediate: 128\nlayers: 2\n"
                    "vocab: 100\nexperts: 4\nactive_experts: 8\n")
    out = run("predict", "tts", "-H", "b200", "--set", f"model={path}")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}: active_experts: 8 experts per token of 4; expected at most 4" in out.stderr
