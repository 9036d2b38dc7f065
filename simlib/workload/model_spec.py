"""Model architectures as data: the shipped ``workloads/models/*.yaml`` (Qwen3 family, the FuseMax paper's
BERT/TrXL/T5/XLM layer shapes) or a Hugging Face ``config.json`` read from disk.

``gated_mlp``: whether the MLP is gated (SwiGLU/GeGLU: down(act(gate·x) ⊙ up·x), three matrices, as in Llama,
Qwen and Mistral) or the classic two-matrix FFN down(act(up·x)) of the FuseMax paper's shapes (the default).
The Qwen3 files set it. A ``config.json`` has no such key; it is decided by ``mlp_is_gated`` (first rule that
applies):
  1. ``model_type``, or an ``architectures`` entry without its ``For...`` suffix (case and underscores ignored),
     names a family known to be gated (GATED_MODEL_TYPES) -> gated. This comes first because Gemma gates a
     GELU, which rule 2 alone would call ungated.
  2. the activation (``hidden_act``, ``hidden_activation``, ``activation_function`` or ``activation``, the
     first given) is a gated one (GATED_ACTIVATIONS: ``silu``, ``swish``, ``swiglu``, ``geglu``, ``reglu``)
     -> gated; a known ungated one (UNGATED_ACTIVATIONS: the GELU variants, ``relu``, ``relu6``,
     ``leaky_relu``; GPT-2, OPT, Falcon, GPT-NeoX, StarCoder2 pair these with two matrices) -> not gated; any
     other activation -> an input error naming that field, because the activation alone does not decide it
     (squared ReLU, ``relu2``, is gated in BitNet and ungated in Nemotron).
  3. none of these keys -> an input error asking for ``model_type`` or ``hidden_act`` (every config Hugging Face
     writes has ``model_type``), rather than a silent guess.
Where the rules cannot decide, a model YAML (workloads/models/*.yaml) with the config's shapes and
``gated_mlp: true`` or ``false`` states it. ``model_type`` must be a string, ``architectures`` a list of
strings and an activation a string; anything else is an input error naming the field.

Parameter count P: taken from the file when given (the Qwen3 files carry the Kinetics paper's counts);
otherwise estimated from the shapes the way that paper counts most of the family, every weight included and the
token embedding counted for input and output even when the two are tied (its Qwen3-4B figure counts it once):
    P = 2·vocab·hidden + layers·(hidden·H·d + 2·hidden·Hkv·d + H·d·hidden + g·hidden·intermediate·experts
        + router hidden·experts + 2·hidden + 2·d) + hidden
(attention Q, K, V, O; g = 3 matrices per expert for a gated MLP, 2 otherwise; RMS norms, Qwen3's per-head q/k
norms.) Active parameters use the active experts instead of all of them. A mixture of experts gives its expert
count as ``num_experts``, ``num_local_experts`` or (DeepSeek) ``n_routed_experts`` and the width of one expert as
``moe_intermediate_size``; a config with ``moe_intermediate_size`` and none of these counts is refused rather than
read as dense. The estimate puts the routed experts in every layer: DeepSeek's shared experts
(``n_shared_experts``), its dense first layers (``first_k_dense_replace``) and its low-rank attention projections
are not in the formula; a model YAML's ``parameters`` gives such a model's own count.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationError

from simlib.catalog_paths import WORKLOAD_DIR, resolve
from simlib.errors import SimlibInputError
from simlib.schema_errors import raise_for_validation
from simlib.strict_schema import StrictModel
from simlib.yaml_loading import load_yaml_file

MODEL_DIR = WORKLOAD_DIR / "models"


class ModelSpec(StrictModel):
    """A model's shapes. As in the hardware schema, numbers must be written as numbers (pydantic would read
    ``hidden: true`` as 1 and ``heads: '16'`` as 16), and ``gated_mlp`` as true or false."""

    name: str
    description: str = ""
    hidden: int = Field(gt=0)
    heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate: int = Field(gt=0)
    layers: int | None = Field(default=None, gt=0)
    kv_heads: int | None = Field(default=None, gt=0)
    vocab: int | None = Field(default=None, gt=0)
    parameters: float | None = Field(default=None, gt=0)
    experts: int = Field(default=1, gt=0)
    active_experts: int | None = Field(default=None, gt=0)
    gated_mlp: bool = False
    source_file: str | None = None
    # field -> the key the source file gave it under (a config.json's names); a YAML's keys are the fields
    _file_keys: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def key_value_heads(self) -> int:
        return self.kv_heads or self.heads

    def file_key(self, field: str) -> str:
        """The name ``field`` has in the file the model came from, for messages that point into that file (a
        config.json's ``num_experts`` or ``num_local_experts`` for ``experts``)."""
        return self._file_keys.get(field, field)

    def _estimate(self, experts: int) -> float:
        if self.layers is None or self.vocab is None:
            raise SimlibInputError(self.source_file or self.name, "parameters",
                                   "no parameter count given and no layers/vocab to estimate it from")
        h, d = self.hidden, self.head_dim
        attention = h * self.heads * d + 2 * h * self.key_value_heads * d + self.heads * d * h
        matrices = 3 if self.gated_mlp else 2
        mlp = matrices * h * self.intermediate * experts + (h * self.experts if self.experts > 1 else 0)
        return 2 * self.vocab * h + self.layers * (attention + mlp + 2 * h + 2 * d) + h

    @property
    def parameter_count(self) -> float:
        """P as the Kinetics paper counts it (the file's figure, else the estimate above)."""
        return self.parameters or self._estimate(self.experts)

    @property
    def active_parameter_count(self) -> float:
        if self.experts == 1 or self.active_experts is None:
            return self.parameter_count
        return self._estimate(self.active_experts)


GATED_MODEL_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
                               "gemma2", "gemma3", "gemma3_text", "phi3", "deepseek_v2", "deepseek_v3", "olmo",
                               "olmo2", "granite"})
GATED_ACTIVATIONS = frozenset({"silu", "swish", "swiglu", "geglu", "reglu"})
UNGATED_ACTIVATIONS = frozenset({"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python",
                                 "gelu_accurate", "gelu_10", "quick_gelu", "relu", "relu6", "leaky_relu"})
ACTIVATION_KEYS = ("hidden_act", "hidden_activation", "activation_function", "activation")
STATE_IT = ("state it in a model YAML with the config's shapes and gated_mlp: true or false "
            "(see workloads/models/*.yaml)")


def _family(name: str) -> str:
    return name.split("For")[0].replace("_", "").lower()


def mlp_is_gated(config: dict, source: str) -> bool:
    """Whether a Hugging Face config's MLP is gated, by the rules in the module docstring."""
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise SimlibInputError(source, "model_type", f"expected a string naming the model family, got "
                                                     f"{model_type!r}")
    architectures = config.get("architectures")
    if architectures is not None and (not isinstance(architectures, list)
                                      or not all(isinstance(a, str) for a in architectures)):
        raise SimlibInputError(source, "architectures", f"expected a list of class names (e.g. "
                                                        f"[\"LlamaForCausalLM\"]), got {architectures!r}")
    gated_families = {_family(t) for t in GATED_MODEL_TYPES}
    if any(_family(n) in gated_families for n in [model_type or "", *(architectures or [])] if n):
        return True
    for key in ACTIVATION_KEYS:
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise SimlibInputError(source, key, f"expected a string naming the MLP's activation (e.g. silu, gelu), "
                                                f"got {value!r}")
        if value.lower() in GATED_ACTIVATIONS:
            return True
        if value.lower() in UNGATED_ACTIVATIONS:
            return False
        raise SimlibInputError(source, key, f"cannot tell whether the MLP is gated: activation {value!r} is "
                                            f"neither a known gated one ({', '.join(sorted(GATED_ACTIVATIONS))}) "
                                            f"nor a known ungated one ({', '.join(sorted(UNGATED_ACTIVATIONS))}), "
                                            f"and the model_type is not a known gated family; {STATE_IT}")
    raise SimlibInputError(source, "model_type", f"cannot tell whether the MLP is gated: expected a model_type "
                                                 f"(gated families: {', '.join(sorted(GATED_MODEL_TYPES))}) or "
                                                 f"hidden_act (silu/swiglu: gated; gelu/relu: two matrices), or "
                                                 f"{STATE_IT}")


HF_FIELDS = {"hidden": "hidden_size", "heads": "num_attention_heads", "layers": "num_hidden_layers",
             "vocab": "vocab_size"}
# the expert count under each name a config.json uses for it (Qwen-MoE/OLMoE, Mixtral, DeepSeek), the first given
EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")
OPTIONAL_COUNTS = ("head_dim", "num_key_value_heads", "intermediate_size", "moe_intermediate_size", *EXPERT_KEYS,
                   "num_experts_per_tok")


def _positive_int(config: dict, key: str, source: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SimlibInputError(source, key, f"expected a positive integer, got {json.dumps(value)}")
    return value


def model_from_hf_config(path: str | Path) -> ModelSpec:
    """A decoder's shape from a Hugging Face ``config.json`` (no download: a file on disk); whether its MLP is
    gated by ``mlp_is_gated``. Every count the shape is derived from must be a positive integer (a key given as
    null counts as absent, as Hugging Face's own config classes read it); a mixture of experts gives its expert
    count as ``num_experts``, ``num_local_experts`` or ``n_routed_experts`` and the width of one expert as
    ``moe_intermediate_size`` (or ``intermediate_size``). A mistake is reported under the file's own key."""
    path = Path(path)
    source = str(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimlibInputError(source, None, f"cannot read a JSON config: {exc}") from None
    if not isinstance(config, dict):
        raise SimlibInputError(source, None, "expected a JSON object")
    for key in HF_FIELDS.values():
        if key not in config:
            raise SimlibInputError(source, key, f"missing; a decoder config needs {', '.join(HF_FIELDS.values())} "
                                                f"and intermediate_size")
        _positive_int(config, key, source)
    given = {key for key in OPTIONAL_COUNTS if config.get(key) is not None}
    for key in OPTIONAL_COUNTS:
        if key in given:
            _positive_int(config, key, source)
    intermediate_key = next((k for k in ("moe_intermediate_size", "intermediate_size") if k in given), None)
    if intermediate_key is None:
        raise SimlibInputError(source, "intermediate_size", "missing; expected the MLP width")
    experts_key = next((k for k in EXPERT_KEYS if k in given), None)
    if intermediate_key == "moe_intermediate_size" and experts_key is None:
        raise SimlibInputError(source, "moe_intermediate_size", f"gives the width of one expert, but the config "
                                                                f"has no expert count; expected "
                                                                f"{', '.join(EXPERT_KEYS[:-1])} or {EXPERT_KEYS[-1]} "
                                                                f"with it")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    if "head_dim" not in given and hidden < heads:
        raise SimlibInputError(source, "num_attention_heads", f"{heads} heads leave hidden_size {hidden} less "
                                                              f"than one dimension per head; expected at most "
                                                              f"hidden_size heads, or a head_dim")
    # transformers saves the model id as "_name_or_path"; a value that is not a string is refused under its key
    name_key = next((k for k in ("_name_or_path", "name_or_path") if config.get(k) is not None), "_name_or_path")
    file_keys = {**HF_FIELDS, "name": name_key,
                 "head_dim": "head_dim" if "head_dim" in given else "hidden_size",
                 "kv_heads": "num_key_value_heads" if "num_key_value_heads" in given else "num_attention_heads",
                 "intermediate": intermediate_key, "experts": experts_key or EXPERT_KEYS[0],
                 "active_experts": "num_experts_per_tok"}
    values = {"name": config.get(name_key) or path.parent.name or path.stem,
              "hidden": hidden, "heads": heads,
              "head_dim": config["head_dim"] if "head_dim" in given else hidden // heads,
              "intermediate": config[intermediate_key], "layers": config["num_hidden_layers"],
              "kv_heads": config.get("num_key_value_heads") or heads, "vocab": config["vocab_size"],
              "experts": config[experts_key] if experts_key else 1,
              "active_experts": config.get("num_experts_per_tok"),
              "gated_mlp": mlp_is_gated(config, source), "source_file": source}
    try:
        spec = ModelSpec(**values)
    except ValidationError as exc:
        try:
            raise_for_validation(source, ModelSpec, exc)
        except SimlibInputError as err:       # the field under the name the file gives it
            raise SimlibInputError(source, file_keys.get(err.field, err.field), err.message) from None
    spec._file_keys = file_keys
    check_kv_heads(spec)
    return spec


def load_model(name_or_path: str) -> ModelSpec:
    """A shipped model name, a model YAML path, or a Hugging Face config.json path."""
    text = str(name_or_path)
    if text.endswith(".json"):
        return model_from_hf_config(text)
    path = resolve(text, MODEL_DIR, "model")
    data = load_yaml_file(path)
    try:
        spec = ModelSpec.model_validate({**data, "source_file": str(path)})
    except ValidationError as exc:
        raise_for_validation(str(path), ModelSpec, exc)
    check_kv_heads(spec)
    return spec


def check_kv_heads(spec: ModelSpec) -> None:
    """Grouped-query attention: each of the Hkv key/value heads serves H / Hkv query heads, so Hkv must divide
    H (and so be at most H); an input error naming the file and its key (kv_heads, or a config.json's
    num_key_value_heads) otherwise."""
    if spec.heads % spec.key_value_heads:
        raise SimlibInputError(spec.source_file or spec.name, spec.file_key("kv_heads"),
                               f"{spec.key_value_heads} key/value heads must divide the {spec.heads} query heads "
                               f"(grouped-query attention: each key/value head serves heads / kv_heads query "
                               f"heads); expected a divisor of {spec.heads}")
    if spec.active_experts is not None and spec.active_experts > spec.experts:
        raise SimlibInputError(spec.source_file or spec.name, spec.file_key("active_experts"),
                               f"{spec.active_experts} experts per token of {spec.experts}; expected at most "
                               f"{spec.experts}")
