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
from simlib.models.kinetics import decode_seconds, prefill_cost, tts_cost, window_reads
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
    # B = 9 > c = 5: S = 9*4 + 0.5*(9-5)^2 = 44 (the max(0, B - c) corner, the + sign as the reference gives it)
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=1, intensity=1.0, attention="topk", budget=9)
    assert r["memory_bytes"] == 4 * 44 * 6


def test_blocktopk_parts_by_hand():
    # local 2 + block 2 x 3 blocks: B = 8 > c = 5: S = 8*4 - 0.5*9 = 27.5;
    # search compute floor((10+4)/2)*4*2*6 = 336 per sample; search memory floor((10+2*4)/2)*4*1*6 = 216
    r = tts_cost(**SMALL, prompt_len=5, gen_len=4, samples=2, intensity=1.0, attention="blocktopk", block_size=2,
                 block_topk=3, local=2)
    assert r["compute_flops"] == 2 * (80 + 4 * 27.5 * 2 * 6 + 336)
    assert r["memory_bytes"] == 2 * 4 * 27.5 * 6 + 216


def test_window_reads_by_hand():
    # c = 3, w = 5, g = 6: per token min(3 + t, 5) = 3, 4, 5, 5, 5, 5 -> 27
    assert window_reads(3, 6, 5) == sum(min(3 + t, 5) for t in range(6)) == 27
    assert window_reads(10, 6, 5) == 30 and window_reads(0, 3, 100) == 0 + 1 + 2


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


@pytest.mark.parametrize("settings, fragment", [
    (["model=qwen9-1b"], "unknown model 'qwen9-1b'"),
    ([f"model={DATA / 'missing-fields-config.json'}"], "intermediate_size"),
    (["model=qwen3-8b", "attention=topk", "budget=0"], "budget: expected a positive integer"),
    (["model=qwen3-8b", "samples=0"], "samples: expected a positive integer"),
    (["model=qwen3-8b", "attention=topk"], "attention=topk needs budget"),
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
